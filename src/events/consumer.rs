//! Queue-group consumers on core NATS: a concurrency limit, retries with backoff, a
//! dead-letter subject; and what both kinds of consumer share.

use super::config::ConsumerOptions;
use super::connection::Events;
use super::counters::{DEAD_LETTERED, DELIVERED, FAILED, TIMED_OUT, count};
use super::delivery::{Delivery, EventHandler};
use super::error::EventsError;
use super::subject::{Subject, check_literal, check_name};
use crate::core::CurrentCall;
use crate::core::trace::{
    self, Attribute, BAGGAGE, FinishedSpan, SpanKind, TRACEPARENT, TRACESTATE, TraceContext,
};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument;

/// A running consumer: stop it alone, or let [`Events::drain`] stop them all.
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    pub(crate) control: ConsumerControl,
}

impl ConsumerHandle {
    /// Spawns a consumer task (`run`, given the task's side of the controls) and registers
    /// it with `events` for [`Events::drain`].
    pub(crate) fn spawn<F>(
        events: &Events,
        subject: &Subject,
        run: impl FnOnce(Signals) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (control, signals) = ConsumerControl::new(subject.as_str());
        tokio::spawn(run(signals));
        events.register(control.clone());
        Self { control }
    }

    /// The subject it consumes.
    pub fn subject(&self) -> &str {
        &self.control.subject
    }

    /// Whether it has stopped (stopped, drained, or its subscription ended).
    pub fn is_finished(&self) -> bool {
        self.control.is_finished()
    }

    /// Stops taking messages, lets the ones being handled finish, and waits for that.
    pub async fn stop(&self) {
        self.control.stop();
        self.control.finished().await;
    }
}

/// The owner's side of a consumer task.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerControl {
    subject: Arc<str>,
    stop: Arc<watch::Sender<bool>>,
    done: watch::Receiver<bool>,
}

/// The task's side.
#[derive(Debug)]
pub(crate) struct Signals {
    stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
}

impl ConsumerControl {
    pub(crate) fn new(subject: &str) -> (Self, Signals) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        (
            Self {
                subject: subject.into(),
                stop: Arc::new(stop_tx),
                done: done_rx,
            },
            Signals {
                stop: stop_rx,
                done: done_tx,
            },
        )
    }

    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn is_finished(&self) -> bool {
        *self.done.borrow() || self.done.has_changed().is_err()
    }

    pub(crate) async fn finished(&self) {
        let mut done = self.done.clone();
        // An error means the task is gone (it panicked): finished too.
        let _ = done.wait_for(|d| *d).await;
    }
}

impl Signals {
    /// Resolves once the consumer is asked to stop.
    pub(crate) async fn stopped(&mut self) {
        // The sender lives in the registry as long as the consumer does; if it is gone,
        // nobody can stop the consumer any more, so stop now.
        let _ = self.stop.wait_for(|s| *s).await;
    }

    pub(crate) fn finish(self) {
        self.done.send_replace(true);
    }
}

/// What a consumer task runs a message with.
pub(crate) struct Worker<T, H> {
    pub(crate) events: Events,
    pub(crate) subject: Subject,
    pub(crate) dead_letter: String,
    pub(crate) options: ConsumerOptions,
    pub(crate) handler: H,
    pub(crate) limit: Arc<Semaphore>,
    _event: PhantomData<fn() -> T>,
}

impl<T, H> Worker<T, H>
where
    T: DeserializeOwned + Send + 'static,
    H: EventHandler<T>,
{
    pub(crate) fn new(
        events: &Events,
        subject: &Subject,
        options: &ConsumerOptions,
        handler: H,
    ) -> Result<Self, EventsError> {
        let dead_letter = match &options.dead_letter_subject {
            Some(explicit) => {
                check_literal(explicit).map_err(EventsError::Config)?;
                explicit.clone()
            }
            None => subject.dead_letter(),
        };
        Ok(Self {
            events: events.clone(),
            subject: subject.clone(),
            dead_letter,
            options: options.clone(),
            handler,
            limit: Arc::new(Semaphore::new(options.concurrency())),
            _event: PhantomData,
        })
    }

    /// Waits until no handler runs.
    pub(crate) async fn idle(&self) {
        let all = u32::try_from(self.options.concurrency()).unwrap_or(u32::MAX);
        let _ = self.limit.acquire_many(all).await;
    }

    /// Handles `message` on a task of its own, holding `permit` until it is done.
    pub(crate) fn spawn<M, F>(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        message: M,
        handle: impl FnOnce(Arc<Self>, M) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let handling = handle(self.clone(), message);
        tokio::spawn(async move {
            handling.await;
            drop(permit);
        });
    }

    /// The end of a consumer task: waits for the handlers still running, logs that
    /// `consumer` stopped, and tells the owner.
    pub(crate) async fn finish(&self, signals: Signals, consumer: &str) {
        self.idle().await;
        tracing::info!(nats.subject = %self.subject, "{consumer} stopped");
        signals.finish();
    }

    /// Counts and logs a delivery.
    pub(crate) fn delivered(&self, headers: Option<&HeaderMap>, attempt: u32) {
        count(DELIVERED, self.subject.as_str());
        tracing::debug!(
            nats.subject = %self.subject,
            nats.attempt = attempt,
            request_id = request_id(headers),
            "event delivered"
        );
    }

    /// Decodes the payload and runs the handler once, for at most `handler_timeout_ms`; the
    /// error text on failure (a bad payload, an `Err`, a panic, the timeout), counted and
    /// logged. On timeout the handler's future is dropped.
    ///
    /// The attempt is a consumer span (`nats.process`) in the publisher's trace (its
    /// `traceparent`, else a new trace): every line it and the handler log carries
    /// `trace_id` and `span_id`, the handler runs as the current call of that trace, and a
    /// sampled span is recorded (`process <subject>`, `messaging.*` attributes).
    pub(crate) async fn attempt(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &Bytes,
        attempt: u32,
        stream_sequence: Option<u64>,
    ) -> Result<(), Failure> {
        let trace = TraceContext::incoming(&trace_headers(headers));
        let (trace_id, span_id) = (trace.trace_id().to_hex(), trace.span_id().to_hex());
        let span = tracing::info_span!(
            "nats.process",
            messaging.system = "nats",
            messaging.destination.name = subject,
            nats.attempt = attempt,
            request_id = request_id(headers),
            trace_id = trace_id.as_str(),
            span_id = span_id.as_str(),
        );
        let start = SystemTime::now();
        let outcome = self
            .run(subject, headers, payload, attempt, stream_sequence, &trace)
            .instrument(span)
            .await;
        if trace.is_sampled() {
            let name = format!("process {subject}");
            let mut attributes = vec![
                Attribute::str("messaging.system", "nats"),
                Attribute::str("messaging.destination.name", subject),
                Attribute::str("messaging.operation.type", "process"),
                Attribute::str("messaging.operation.name", "process"),
                Attribute::i64("messaging.nats.attempt", i64::from(attempt)),
            ];
            if let Some(id) = headers.and_then(|h| h.get(super::context::headers::MESSAGE_ID)) {
                attributes.push(Attribute::str("messaging.message.id", id.as_str()));
            }
            if let Some(id) = request_id(headers) {
                attributes.push(Attribute::str("request_id", id));
            }
            trace::record(&FinishedSpan {
                name: &name,
                kind: SpanKind::Consumer,
                context: &trace,
                start,
                end: SystemTime::now(),
                attributes: &attributes,
                error: outcome.as_ref().err().map(|f| f.error.as_str()),
            });
        }
        outcome
    }

    /// [`attempt`](Self::attempt) inside its span.
    async fn run(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &Bytes,
        attempt: u32,
        stream_sequence: Option<u64>,
        trace: &TraceContext,
    ) -> Result<(), Failure> {
        let event = match serde_json::from_slice::<T>(payload) {
            Ok(event) => event,
            Err(e) => {
                let failure = Failure {
                    error: format!("the payload is not a valid event: {e}"),
                    retryable: false,
                };
                self.failed(headers, attempt, &failure.error);
                return Err(failure);
            }
        };
        let mut delivery = Delivery::received(event, subject, headers, attempt, stream_sequence);
        delivery.trace = Some(trace.clone());
        let request_id = delivery.request_id.clone();
        let limit = self.options.handler_timeout();
        let call = CurrentCall::new(trace.clone(), request_id.clone(), None);
        let handling = AssertUnwindSafe(call.scope(async { self.handler.handle(delivery).await }))
            .catch_unwind();
        let Ok(outcome) = tokio::time::timeout(limit, handling).await else {
            let error = format!("the handler timed out after {} ms", limit.as_millis());
            count(TIMED_OUT, self.subject.as_str());
            self.failed(headers, attempt, &error);
            return Err(Failure {
                error,
                retryable: true,
            });
        };
        let error = match outcome {
            Ok(Ok(())) => {
                tracing::debug!(
                    nats.subject = %self.subject,
                    nats.attempt = attempt,
                    request_id = request_id.as_ref().map(|id| id.as_str()),
                    "event handled"
                );
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(panic) => format!("the handler panicked: {}", panic_text(panic.as_ref())),
        };
        self.failed(headers, attempt, &error);
        Err(Failure {
            error,
            retryable: true,
        })
    }

    fn failed(&self, headers: Option<&HeaderMap>, attempt: u32, error: &str) {
        count(FAILED, self.subject.as_str());
        tracing::warn!(
            nats.subject = %self.subject,
            nats.attempt = attempt,
            request_id = request_id(headers),
            error,
            "event handler failed"
        );
    }

    /// Publishes to the dead-letter subject; whether it was published.
    pub(crate) async fn dead_letter(
        &self,
        headers: Option<&HeaderMap>,
        payload: Bytes,
        attempts: u32,
        error: &str,
    ) -> bool {
        let published = self
            .events
            .publish_dead_letter(
                &self.dead_letter,
                &self.subject,
                headers,
                payload,
                attempts,
                error,
            )
            .await;
        match published {
            Ok(()) => {
                count(DEAD_LETTERED, self.subject.as_str());
                tracing::error!(
                    nats.subject = %self.subject,
                    nats.dead_letter = %self.dead_letter,
                    nats.attempt = attempts,
                    request_id = request_id(headers),
                    error,
                    "event dead-lettered"
                );
                true
            }
            Err(publish_error) => {
                tracing::error!(
                    nats.subject = %self.subject,
                    nats.dead_letter = %self.dead_letter,
                    nats.attempt = attempts,
                    request_id = request_id(headers),
                    error,
                    publish_error,
                    "could not publish the event to its dead-letter subject"
                );
                false
            }
        }
    }
}

/// A failed attempt.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: String,
    /// False when retrying cannot help (the payload does not decode).
    pub(crate) retryable: bool,
}

/// The W3C trace headers of a message, as HTTP headers for the parsers.
fn trace_headers(headers: Option<&HeaderMap>) -> tonic::codegen::http::HeaderMap {
    let mut map = tonic::codegen::http::HeaderMap::new();
    let Some(headers) = headers else {
        return map;
    };
    for name in [TRACEPARENT, TRACESTATE, BAGGAGE] {
        for value in headers.get_all(name.as_str()) {
            if let Ok(value) = tonic::codegen::http::HeaderValue::from_str(value.as_str()) {
                map.append(name.clone(), value);
            }
        }
    }
    map
}

pub(crate) fn request_id(headers: Option<&HeaderMap>) -> Option<&str> {
    headers
        .and_then(|h| h.get(super::context::headers::REQUEST_ID))
        .map(|v| v.as_str())
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl Events {
    /// Consumes `subject` in queue group `group` (each message goes to one member of the
    /// group, across replicas) with the configured consumer defaults.
    ///
    /// See [`Events::subscribe_queue_with`].
    pub async fn subscribe_queue<T, H>(
        &self,
        subject: &Subject,
        group: &str,
        handler: H,
    ) -> Result<ConsumerHandle, EventsError>
    where
        T: DeserializeOwned + Send + 'static,
        H: EventHandler<T>,
    {
        let options = self.inner.config.consumer.clone();
        self.subscribe_queue_with(subject, group, &options, handler)
            .await
    }

    /// Consumes `subject` in queue group `group` on core NATS (at most once).
    ///
    /// Returns once the server has the subscription. Up to `concurrency` messages are
    /// handled at once, each for at most `handler_timeout_ms` (then it counts as failed). A
    /// failed attempt is retried after a wait drawn between zero and a backoff that starts at
    /// `backoff_initial_ms` and doubles (full jitter), up to `max_attempts` attempts; then the message (payload and headers, plus
    /// `x-dead-letter-attempts`, `x-dead-letter-error` and `x-dead-letter-subject`) is
    /// published to the dead-letter subject (`<subject>.dlq` unless set). A payload that
    /// does not decode as `T` goes there at once.
    pub async fn subscribe_queue_with<T, H>(
        &self,
        subject: &Subject,
        group: &str,
        options: &ConsumerOptions,
        handler: H,
    ) -> Result<ConsumerHandle, EventsError>
    where
        T: DeserializeOwned + Send + 'static,
        H: EventHandler<T>,
    {
        check_name("queue group", group).map_err(EventsError::Config)?;
        let worker = Arc::new(Worker::new(self, subject, options, handler)?);
        let subscribing = self
            .inner
            .client
            .queue_subscribe(subject.to_string(), group.to_owned());
        // The server has the subscription once this returns.
        let subscriber = self
            .flushed(subscribing, |reason| EventsError::Subscribe {
                subject: subject.to_string(),
                reason,
            })
            .await?;
        let handle = ConsumerHandle::spawn(self, subject, |signals| {
            run_core(worker, subscriber, signals)
        });
        tracing::info!(
            nats.subject = %subject,
            nats.queue_group = group,
            concurrency = options.concurrency(),
            max_attempts = options.attempts(),
            "queue consumer started"
        );
        Ok(handle)
    }
}

async fn run_core<T, H>(
    worker: Arc<Worker<T, H>>,
    mut subscriber: async_nats::Subscriber,
    mut signals: Signals,
) where
    T: DeserializeOwned + Send + 'static,
    H: EventHandler<T>,
{
    let mut draining = false;
    loop {
        let Ok(permit) = worker.limit.clone().acquire_owned().await else {
            break;
        };
        let message = if draining {
            subscriber.next().await
        } else {
            tokio::select! {
                biased;
                () = signals.stopped() => {
                    // No new messages; those already received are still handled.
                    draining = true;
                    if let Err(e) = subscriber.drain().await {
                        tracing::warn!(nats.subject = %worker.subject, error = %e, "could not drain the subscription");
                        break;
                    }
                    continue;
                }
                message = subscriber.next() => message,
            }
        };
        let Some(message) = message else { break };
        worker.spawn(permit, message, handle_core);
    }
    worker.finish(signals, "queue consumer").await;
}

async fn handle_core<T, H>(worker: Arc<Worker<T, H>>, message: async_nats::Message)
where
    T: DeserializeOwned + Send + 'static,
    H: EventHandler<T>,
{
    let headers = message.headers.as_ref();
    worker.delivered(headers, 1);
    let attempts = worker.options.attempts();
    let mut attempt = 1;
    let failure = loop {
        match worker
            .attempt(&message.subject, headers, &message.payload, attempt, None)
            .await
        {
            Ok(()) => return,
            Err(failure) if !failure.retryable || attempt >= attempts => break failure,
            Err(_) => {
                tokio::time::sleep(worker.options.jittered_backoff(attempt)).await;
                attempt += 1;
            }
        }
    };
    // Core NATS has no redelivery: a failed dead-letter publish loses the message (logged).
    worker
        .dead_letter(headers, message.payload.clone(), attempt, &failure.error)
        .await;
}
