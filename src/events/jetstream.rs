//! JetStream consumers: durable, pull, explicit acknowledgement, redelivery with backoff,
//! a dead-letter subject.

use super::config::ConsumerOptions;
use super::connection::Events;
use super::consumer::{ConsumerHandle, Failure, Signals, Worker, request_id};
use super::delivery::EventHandler;
use super::error::EventsError;
use super::subject::{Subject, check_name};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

impl Events {
    /// Consumes `subject` from JetStream stream `stream` with durable consumer `durable`,
    /// with the configured consumer defaults.
    ///
    /// See [`Events::consume_with`].
    pub async fn consume<T, H>(
        &self,
        stream: &str,
        durable: &str,
        subject: &Subject,
        handler: H,
    ) -> Result<ConsumerHandle, EventsError>
    where
        T: DeserializeOwned + Send + 'static,
        H: EventHandler<T>,
    {
        let options = self.inner.config.consumer.clone();
        self.consume_with(stream, durable, subject, &options, handler)
            .await
    }

    /// Consumes `subject` from JetStream stream `stream` (which must exist, see
    /// [`Events::ensure_stream`]) with the durable pull consumer `durable`, created or
    /// updated here: explicit acknowledgement, `ack_wait_ms`. Every replica of a service
    /// uses the same durable name to share the work.
    ///
    /// At least once: `Ok` acknowledges the message (and waits for the server to confirm).
    /// `Err`, a panic, or a handler still running after `handler_timeout_ms` (its future is
    /// dropped) asks for redelivery (nak) after a delay drawn between zero and a backoff that
    /// starts at `backoff_initial_ms` and doubles with each delivery (full jitter). The
    /// delivery that reaches `max_attempts` and fails is published to the dead-letter subject
    /// (`<subject>.dlq` unless set; stored by JetStream when a stream holds that subject) and
    /// terminated; if that publish fails the message is redelivered and tried again, going to
    /// the dead-letter subject without running the handler. While a handler runs, the
    /// consumer tells the server every half `ack_wait_ms` that work is in progress, so the
    /// message is not redelivered meanwhile; a message not acknowledged within `ack_wait_ms`
    /// of its last sign of life (a crashed replica) is redelivered and counts as an
    /// attempt.
    pub async fn consume_with<T, H>(
        &self,
        stream: &str,
        durable: &str,
        subject: &Subject,
        options: &ConsumerOptions,
        handler: H,
    ) -> Result<ConsumerHandle, EventsError>
    where
        T: DeserializeOwned + Send + 'static,
        H: EventHandler<T>,
    {
        let context = self.jetstream_context()?;
        check_name("stream", stream).map_err(EventsError::Config)?;
        check_name("durable consumer", durable).map_err(EventsError::Config)?;
        let worker = Arc::new(Worker::new(self, subject, options, handler)?);
        let failed = |reason: String| EventsError::Subscribe {
            subject: subject.to_string(),
            reason,
        };
        let stream_handle = context
            .get_stream(stream)
            .await
            .map_err(|e| EventsError::Stream {
                stream: stream.to_owned(),
                reason: e.to_string(),
            })?;
        let consumer: PullConsumer = stream_handle
            .create_consumer(pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: subject.to_string(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_millis(options.ack_wait_ms.max(1)),
                // Unlimited: this side counts attempts and dead-letters, so the server never
                // drops a message silently.
                max_deliver: -1,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(format!("consumer {durable} on stream {stream}: {e}")))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(options.concurrency())
            .messages()
            .await
            .map_err(|e| failed(format!("consumer {durable} on stream {stream}: {e}")))?;
        let handle = ConsumerHandle::spawn(self, subject, |signals| {
            run_jetstream(worker, messages, signals)
        });
        tracing::info!(
            nats.subject = %subject,
            nats.stream = stream,
            nats.consumer = durable,
            concurrency = options.concurrency(),
            max_attempts = options.attempts(),
            "JetStream consumer started"
        );
        Ok(handle)
    }
}

async fn run_jetstream<T, H>(
    worker: Arc<Worker<T, H>>,
    mut messages: pull::Stream,
    mut signals: Signals,
) where
    T: DeserializeOwned + Send + 'static,
    H: EventHandler<T>,
{
    loop {
        let permit = tokio::select! {
            biased;
            () = signals.stopped() => break,
            permit = worker.limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            biased;
            () = signals.stopped() => break,
            next = messages.next() => next,
        };
        match next {
            None => break,
            Some(Ok(message)) => worker.spawn(permit, message, handle_jetstream),
            Some(Err(e)) => match e.kind() {
                MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::PushBasedConsumer => {
                    tracing::error!(nats.subject = %worker.subject, error = %e, "JetStream consumer ended");
                    break;
                }
                _ => {
                    // Missed heartbeats, a reconnection: the stream keeps pulling.
                    tracing::warn!(nats.subject = %worker.subject, error = %e, "JetStream consumer error");
                }
            },
        }
    }
    // Messages fetched but not started are redelivered after `ack_wait`.
    drop(messages);
    worker.finish(signals, "JetStream consumer").await;
}

async fn handle_jetstream<T, H>(worker: Arc<Worker<T, H>>, message: async_nats::jetstream::Message)
where
    T: DeserializeOwned + Send + 'static,
    H: EventHandler<T>,
{
    let (delivered, sequence) = match message.info() {
        Ok(info) => (
            u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
            Some(info.stream_sequence),
        ),
        Err(_) => (1, None),
    };
    let headers = message.headers.as_ref();
    worker.delivered(headers, delivered);
    let max = worker.options.attempts();

    let failure = if delivered > max {
        // The handler had its attempts (it outlasted ack_wait, its replica died, or the
        // dead-letter publish failed): straight to the dead-letter subject.
        Failure {
            error: format!(
                "delivered {delivered} times, more than max_attempts ({max}); the earlier \
                 attempts were not acknowledged in time or could not be dead-lettered"
            ),
            retryable: false,
        }
    } else {
        let attempt = worker.attempt(
            &message.subject,
            headers,
            &message.payload,
            delivered,
            sequence,
        );
        match in_progress(&worker, &message, attempt).await {
            Ok(()) => {
                if let Err(e) = message.double_ack().await {
                    // Not confirmed: the server redelivers after ack_wait (at least once).
                    tracing::warn!(
                        nats.subject = %worker.subject,
                        nats.attempt = delivered,
                        request_id = request_id(headers),
                        error = %e,
                        "JetStream ack not confirmed"
                    );
                }
                return;
            }
            Err(failure) => failure,
        }
    };

    if failure.retryable && delivered < max {
        nak(&worker, &message, delivered).await;
        return;
    }
    let attempts = if delivered > max {
        delivered - 1
    } else {
        delivered
    };
    if worker
        .dead_letter(headers, message.payload.clone(), attempts, &failure.error)
        .await
    {
        if let Err(e) = message.double_ack_with(AckKind::Term).await {
            tracing::warn!(
                nats.subject = %worker.subject,
                error = %e,
                "JetStream term not confirmed; the message may come back and be dead-lettered again"
            );
        }
    } else {
        nak(&worker, &message, delivered).await;
    }
}

/// Runs `attempt`, telling the server every half `ack_wait` that the message is still being
/// worked on, so it is not redelivered while the handler runs (within its own timeout).
async fn in_progress<T, H, F>(
    worker: &Worker<T, H>,
    message: &async_nats::jetstream::Message,
    attempt: F,
) -> F::Output
where
    F: std::future::Future,
{
    let every = Duration::from_millis((worker.options.ack_wait_ms / 2).max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            biased;
            outcome = &mut attempt => return outcome,
            _ = ticks.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(nats.subject = %worker.subject, error = %e, "JetStream progress not sent");
                }
            }
        }
    }
}

/// Asks for redelivery after the (jittered) backoff of delivery `delivered`.
async fn nak<T, H>(
    worker: &Worker<T, H>,
    message: &async_nats::jetstream::Message,
    delivered: u32,
) {
    let delay = worker.options.jittered_backoff(delivered);
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::warn!(nats.subject = %worker.subject, error = %e, "JetStream nak failed; redelivery after ack_wait");
    }
}
