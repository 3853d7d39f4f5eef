//! Typed publishes (JSON), core and JetStream, and dead letters.

use super::config::exponential;
use super::connection::Events;
use super::context::{EventContext, headers};
use super::counters::{PUBLISHED, count};
use super::error::EventsError;
use super::subject::Subject;
use async_nats::HeaderMap;
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;

/// The longest dead-letter error text kept in [`headers::DEAD_LETTER_ERROR`].
const MAX_ERROR_HEADER: usize = 512;
/// The longest wait between two JetStream publish attempts.
const MAX_PUBLISH_BACKOFF_MS: u64 = 5_000;

/// What a publish returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The `Nats-Msg-Id` it carried.
    pub message_id: String,
    /// JetStream: the stream that stored it.
    pub stream: Option<String>,
    /// JetStream: its sequence in that stream.
    pub sequence: Option<u64>,
    /// JetStream: the stream already had this message id (a retried publish).
    pub duplicate: bool,
}

impl Events {
    /// Publishes `event` as JSON on core NATS and flushes it to the server (at most once:
    /// subscribers connected now receive it).
    ///
    /// Headers: `x-request-id` (when `ctx` has one), `traceparent` with `tracestate` and
    /// `baggage` (when `ctx` or the call being served has a trace), `Content-Type:
    /// application/json`, `Nats-Msg-Id`.
    ///
    /// On the request path (a context with the call's deadline, such as
    /// [`EventContext::from_request`] gives behind the Timeout layer) it fails at once while
    /// disconnected and ends within `request_publish_timeout_ms` (default 100 ms), never past
    /// the deadline.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        subject: &Subject,
        event: &T,
        ctx: &EventContext,
    ) -> Result<Published, EventsError> {
        let payload = encode(subject, event)?;
        let (headers, message_id) = self.headers(ctx);
        let sent = self
            .inner
            .client
            .publish_with_headers(subject.to_string(), headers, payload);
        let flushed = self.flushed(sent, |reason| EventsError::Publish {
            subject: subject.to_string(),
            reason,
        });
        self.bounded(subject, ctx, flushed).await?;
        count(PUBLISHED, subject.as_str());
        tracing::debug!(
            nats.subject = %subject,
            nats.message_id = %message_id,
            request_id = ctx.request_id().map(|id| id.as_str()),
            "event published"
        );
        Ok(Published {
            message_id,
            stream: None,
            sequence: None,
            duplicate: false,
        })
    }

    /// Publishes `event` as JSON to the JetStream stream that holds `subject` and waits for
    /// the stream's acknowledgement (at least once).
    ///
    /// An unacknowledged publish is retried (`publish_attempts`, `publish_backoff_ms`) with
    /// the same `Nats-Msg-Id`, so the stream stores it once. Give the context a message id
    /// ([`EventContext::with_message_id`]) to keep that guarantee across your own retries.
    ///
    /// On the request path (a context with the call's deadline) the whole, retries included,
    /// fails at once while disconnected and ends within `request_publish_timeout_ms`
    /// (default 100 ms), never past the deadline: an event that must not be lost needs an
    /// outbox that publishes it again.
    pub async fn publish_jetstream<T: Serialize + ?Sized>(
        &self,
        subject: &Subject,
        event: &T,
        ctx: &EventContext,
    ) -> Result<Published, EventsError> {
        self.jetstream_context()?;
        let payload = encode(subject, event)?;
        let (headers, message_id) = self.headers(ctx);
        let published = async {
            self.jetstream_publish(subject.as_str(), headers, payload, true)
                .await
                .map_err(|(_, reason)| EventsError::Publish {
                    subject: subject.to_string(),
                    reason,
                })
        };
        let ack = self.bounded(subject, ctx, published).await?;
        count(PUBLISHED, subject.as_str());
        tracing::debug!(
            nats.subject = %subject,
            nats.message_id = %message_id,
            nats.stream = %ack.stream,
            nats.sequence = ack.sequence,
            nats.duplicate = ack.duplicate,
            request_id = ctx.request_id().map(|id| id.as_str()),
            "event published to JetStream"
        );
        Ok(Published {
            message_id,
            stream: Some(ack.stream),
            sequence: Some(ack.sequence),
            duplicate: ack.duplicate,
        })
    }

    /// Runs a publish. On the request path (a context with the call's deadline) it fails at
    /// once while the connection is down, and ends within `request_publish_timeout_ms` and
    /// before nine tenths of what is left of the deadline.
    async fn bounded<T>(
        &self,
        subject: &Subject,
        ctx: &EventContext,
        publish: impl Future<Output = Result<T, EventsError>>,
    ) -> Result<T, EventsError> {
        let Some(deadline) = ctx.deadline() else {
            return publish.await;
        };
        let failed = |reason: String| EventsError::Publish {
            subject: subject.to_string(),
            reason,
        };
        if self.inner.client.connection_state() != State::Connected {
            return Err(failed("not connected to NATS".to_owned()));
        }
        let left = deadline.remaining();
        let limit = Duration::from_millis(self.inner.config.request_publish_timeout_ms)
            .min(left - left / 10);
        tokio::time::timeout(limit, publish)
            .await
            .unwrap_or_else(|_| Err(failed(format!("no acknowledgement within {limit:?}"))))
    }

    /// A new unique id (a NUID).
    pub fn new_message_id(&self) -> String {
        // The client's inboxes end with a NUID token.
        let inbox = self.inner.client.new_inbox();
        inbox.rsplit('.').next().unwrap_or(&inbox).to_owned()
    }

    fn headers(&self, ctx: &EventContext) -> (HeaderMap, String) {
        let mut map = HeaderMap::new();
        if let Some(id) = ctx.request_id() {
            map.insert(headers::REQUEST_ID, id.as_str());
        }
        if let Some(trace) = ctx.trace() {
            // The publishing span is the consumer's parent.
            if let Ok(parent) = trace.traceparent().to_str() {
                map.insert(headers::TRACEPARENT, parent);
            }
            for (name, value) in [
                (headers::TRACESTATE, trace.tracestate()),
                (headers::BAGGAGE, trace.baggage()),
            ] {
                if let Some(text) = value.and_then(|v| v.to_str().ok()) {
                    map.insert(name, text);
                }
            }
        }
        map.insert(headers::CONTENT_TYPE, headers::JSON);
        let message_id = ctx
            .message_id()
            .map_or_else(|| self.new_message_id(), str::to_owned);
        map.insert(headers::MESSAGE_ID, message_id.as_str());
        (map, message_id)
    }

    /// A JetStream publish with retries; the error says whether no stream holds the subject.
    async fn jetstream_publish(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
        retry_without_stream: bool,
    ) -> Result<PublishAck, (PublishErrorKind, String)> {
        let Some(context) = self.jetstream() else {
            return Err((
                PublishErrorKind::Other,
                EventsError::JetStreamDisabled.to_string(),
            ));
        };
        let config = &self.inner.config;
        let attempts = config.publish_attempts.max(1);
        let mut attempt = 1;
        loop {
            let sent: Result<PublishAckFuture, _> = context
                .publish_with_headers(subject.to_owned(), headers.clone(), payload.clone())
                .await;
            let result = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(ack) => return Ok(ack),
                Err(e) => e,
            };
            let kind = error.kind();
            let retryable = match kind {
                PublishErrorKind::MaxPayloadExceeded
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::WrongLastSequence => false,
                PublishErrorKind::StreamNotFound => retry_without_stream,
                _ => true,
            };
            tracing::warn!(
                nats.subject = subject,
                nats.attempt = attempt,
                error = %error,
                "JetStream publish not acknowledged"
            );
            if !retryable || attempt >= attempts {
                return Err((kind, error.to_string()));
            }
            let wait = exponential(config.publish_backoff_ms, MAX_PUBLISH_BACKOFF_MS, attempt);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Publishes a failed message to `dead_letter`: same payload, its headers (less
    /// JetStream's own `Nats-*` ones), plus the attempts, the error and the original
    /// subject. Stored by JetStream when a stream holds `dead_letter`; otherwise published
    /// on core NATS and flushed.
    pub(crate) async fn publish_dead_letter(
        &self,
        dead_letter: &str,
        original: &Subject,
        original_headers: Option<&HeaderMap>,
        payload: Bytes,
        attempts: u32,
        error: &str,
    ) -> Result<(), String> {
        let mut map = HeaderMap::new();
        let mut message_id = None;
        if let Some(original_headers) = original_headers {
            for (name, values) in original_headers.iter() {
                let name = name.to_string();
                if name.eq_ignore_ascii_case(headers::MESSAGE_ID) {
                    message_id = values.first().map(|v| v.as_str().to_owned());
                }
                if name
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("nats-"))
                {
                    continue;
                }
                for value in values {
                    map.append(name.as_str(), value.clone());
                }
            }
        }
        // Its own id, derived from the original's, so retried dead letters are stored once
        // and never taken for the original by a stream that holds both subjects.
        let message_id = message_id.map_or_else(|| self.new_message_id(), |id| format!("{id}-dlq"));
        map.insert(headers::MESSAGE_ID, message_id.as_str());
        map.insert(headers::DEAD_LETTER_ATTEMPTS, attempts.to_string());
        map.insert(headers::DEAD_LETTER_ERROR, header_text(error));
        map.insert(headers::DEAD_LETTER_SUBJECT, original.as_str());

        if self.jetstream().is_some() {
            match self
                .jetstream_publish(dead_letter, map.clone(), payload.clone(), false)
                .await
            {
                Ok(_) => return Ok(()),
                Err((PublishErrorKind::StreamNotFound, _)) => {}
                Err((_, reason)) => return Err(reason),
            }
        }
        self.inner
            .client
            .publish_with_headers(dead_letter.to_owned(), map, payload)
            .await
            .map_err(|e| e.to_string())?;
        self.inner.client.flush().await.map_err(|e| e.to_string())
    }
}

fn encode<T: Serialize + ?Sized>(subject: &Subject, event: &T) -> Result<Bytes, EventsError> {
    serde_json::to_vec(event)
        .map(Bytes::from)
        .map_err(|source| EventsError::Encode {
            subject: subject.to_string(),
            source,
        })
}

/// One line of printable text, at most [`MAX_ERROR_HEADER`] bytes.
fn header_text(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_ERROR_HEADER {
        let mut end = MAX_ERROR_HEADER;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::header_text;

    #[test]
    fn error_header_is_one_bounded_line() {
        assert_eq!(header_text("a\r\nb"), "a  b");
        assert_eq!(header_text(&"é".repeat(400)).len(), 512);
    }
}
