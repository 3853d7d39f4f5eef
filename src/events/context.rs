//! What an event carries from the RPC that caused it: the request id, the trace, and the
//! message id.

use crate::core::{CurrentCall, Deadline, RequestId, TraceContext};

/// The headers the events helper writes and reads.
pub mod headers {
    /// The request id of the RPC that published the event (from the RequestLogging layer).
    pub const REQUEST_ID: &str = crate::core::request_id::HEADER;
    /// W3C `traceparent` of the span that published the event: consumers continue its trace.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C `tracestate` carried with [`TRACEPARENT`].
    pub const TRACESTATE: &str = "tracestate";
    /// W3C `baggage` carried with [`TRACEPARENT`].
    pub const BAGGAGE: &str = "baggage";
    /// The payload encoding: [`JSON`].
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// The `Content-Type` of a JSON payload.
    pub const JSON: &str = "application/json";
    /// The unique message id JetStream de-duplicates on (a NUID unless given).
    pub const MESSAGE_ID: &str = "Nats-Msg-Id";
    /// On a dead letter: how many attempts failed.
    pub const DEAD_LETTER_ATTEMPTS: &str = "x-dead-letter-attempts";
    /// On a dead letter: the last error (one line, at most 512 bytes).
    pub const DEAD_LETTER_ERROR: &str = "x-dead-letter-error";
    /// On a dead letter: the subject the message was first published on.
    pub const DEAD_LETTER_SUBJECT: &str = "x-dead-letter-subject";
}

/// What an event publish carries besides the event: the request id and the trace of the RPC
/// that caused it, and optionally a message id of the caller's choosing.
///
/// Build it from the current call, so the consumer's logs carry the same request id and
/// trace id (a context without a trace takes the one of the call being served, when the
/// publish happens inside one):
///
/// ```
/// use tonic_blueprint::core::RequestId;
/// use tonic_blueprint::events::EventContext;
///
/// let mut request = tonic::Request::new(());
/// request.extensions_mut().insert(RequestId::from_static("req-1"));
/// let ctx = EventContext::from_request(&request);
/// assert_eq!(ctx.request_id().map(|id| id.as_str()), Some("req-1"));
///
/// // No RequestLogging layer, no request id.
/// assert!(EventContext::from_request(&tonic::Request::new(())).request_id().is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    request_id: Option<RequestId>,
    message_id: Option<String>,
    deadline: Option<Deadline>,
    trace: Option<TraceContext>,
}

impl EventContext {
    /// No request id; a new message id for every publish.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request id and trace stored in these extensions (by the RequestLogging layer), if
    /// any.
    ///
    /// With the call's [`Deadline`] (put there by the Timeout layer), a publish is on the
    /// request path: bounded by `request_publish_timeout_ms` and the deadline, and failing at
    /// once while disconnected.
    pub fn from_extensions(extensions: &tonic::Extensions) -> Self {
        Self {
            request_id: RequestId::from_extensions(extensions).cloned(),
            message_id: None,
            deadline: extensions.get::<Deadline>().copied(),
            trace: TraceContext::from_extensions(extensions).cloned(),
        }
    }

    /// The request id of a tonic request, if any.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Self {
        Self::from_extensions(request.extensions())
    }

    /// The request id of an HTTP request (inside a tower layer), if any.
    pub fn from_http_request<B>(request: &tonic::codegen::http::Request<B>) -> Self {
        Self::from_extensions(request.extensions())
    }

    /// With this request id.
    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// In this trace: the event carries `traceparent` (this span as the parent), and the
    /// trace's `tracestate` and `baggage`.
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace the event carries: the one given, else the current call's (the handler
    /// being served on this thread, see [`CurrentCall`]).
    pub fn trace(&self) -> Option<TraceContext> {
        self.trace
            .clone()
            .or_else(|| CurrentCall::get().map(|call| call.trace().clone()))
    }

    /// On the request path of a call that must answer by `deadline`: the publish (retries
    /// included) ends by `request_publish_timeout_ms` and before the deadline, leaving a
    /// tenth of what remains for the handler to answer, and fails at once while the
    /// connection is down. A publish that must not be lost then needs an outbox that
    /// publishes it again later.
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The call's deadline, when the publish is on the request path.
    pub fn deadline(&self) -> Option<&Deadline> {
        self.deadline.as_ref()
    }

    /// With this message id (`Nats-Msg-Id`) instead of a new one: a publish retried with
    /// the same id is stored once by a JetStream stream (within its duplicate window).
    pub fn with_message_id(mut self, message_id: impl Into<String>) -> Self {
        self.message_id = Some(message_id.into());
        self
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// The message id given, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }
}
