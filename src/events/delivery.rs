//! What a handler receives, and what a handler is.

use super::context::{EventContext, headers};
use crate::core::{RequestId, TraceContext};
use async_nats::HeaderMap;
use std::fmt;
use std::future::Future;

/// One delivery of an event to a handler: the decoded event and what came with it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery<T> {
    /// The decoded event.
    pub event: T,
    /// The subject it was published on.
    pub subject: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// The request id of the RPC that published it (`x-request-id`), if any.
    pub request_id: Option<RequestId>,
    /// Its `Nats-Msg-Id`, if any.
    pub message_id: Option<String>,
    /// Which attempt this is, from 1: in-process retries for core consumers, the server's
    /// delivery count for JetStream.
    pub attempt: u32,
    /// JetStream: its sequence in the stream.
    pub stream_sequence: Option<u64>,
    /// The consumer span this attempt runs in: the publisher's trace continued (from its
    /// `traceparent`), or a new trace. The handler runs as the current call of this trace,
    /// so the calls it makes through the outgoing-call layer and the events it publishes
    /// carry it on.
    pub trace: Option<TraceContext>,
}

impl<T> Delivery<T> {
    /// A first delivery without headers (for handler unit tests).
    pub fn new(subject: impl Into<String>, event: T) -> Self {
        Self {
            event,
            subject: subject.into(),
            headers: HeaderMap::new(),
            request_id: None,
            message_id: None,
            attempt: 1,
            stream_sequence: None,
            trace: None,
        }
    }

    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }

    /// The context to publish follow-up events with: the same request id and trace.
    pub fn context(&self) -> EventContext {
        let context = match &self.request_id {
            Some(id) => EventContext::new().with_request_id(id.clone()),
            None => EventContext::new(),
        };
        match &self.trace {
            Some(trace) => context.with_trace(trace.clone()),
            None => context,
        }
    }

    pub(crate) fn received(
        event: T,
        subject: &str,
        message_headers: Option<&HeaderMap>,
        attempt: u32,
        stream_sequence: Option<u64>,
    ) -> Self {
        let headers = message_headers.cloned().unwrap_or_default();
        let request_id = headers
            .get(headers::REQUEST_ID)
            .and_then(|v| RequestId::from_generated(v.as_str()));
        let message_id = headers
            .get(headers::MESSAGE_ID)
            .map(|v| v.as_str().to_owned());
        Self {
            event,
            subject: subject.to_owned(),
            headers,
            request_id,
            message_id,
            attempt,
            stream_sequence,
            trace: None,
        }
    }
}

/// What consumes events: any `Fn(Delivery<T>) -> impl Future<Output = Result<(), E>>`
/// with `E: Display` (such as `tonic::Status`, `String` or a boxed error).
///
/// `Ok` acknowledges the event. `Err` is retried with backoff, then dead-lettered. A panic
/// counts as an `Err`.
pub trait EventHandler<T>: Send + Sync + 'static {
    /// The handler's error.
    type Error: fmt::Display + Send + 'static;
    /// The handling future.
    type Future: Future<Output = Result<(), Self::Error>> + Send + 'static;

    /// Handles one delivery.
    fn handle(&self, delivery: Delivery<T>) -> Self::Future;
}

impl<T, F, Fut, E> EventHandler<T> for F
where
    F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    type Error = E;
    type Future = Fut;

    fn handle(&self, delivery: Delivery<T>) -> Fut {
        self(delivery)
    }
}
