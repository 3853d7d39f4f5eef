//! Where finished spans go: one process-wide [`SpanRecorder`], installed at start-up.
//!
//! The layers that start spans (the logging layer's server span, the outgoing-call layer's
//! client span, the NATS consumers' span) ask it two things: whether a new trace or a
//! caller's trace is sampled, and, for sampled spans only, to record the finished span.
//! Without a recorder nothing is recorded and the sampled flag of the caller passes through
//! (a new trace is not sampled). The umbrella's `otel` feature installs one that exports
//! over OTLP.

use super::TraceContext;
use super::ids::TraceId;
use std::sync::OnceLock;
use std::time::SystemTime;

/// What kind of span, as OpenTelemetry names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A call this process serves.
    Server,
    /// A call this process makes.
    Client,
    /// A message this process publishes.
    Producer,
    /// A message this process handles.
    Consumer,
    /// Work inside this process.
    Internal,
}

/// An attribute's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttributeValue<'a> {
    /// Text.
    Str(&'a str),
    /// A whole number.
    I64(i64),
    /// A flag.
    Bool(bool),
}

/// One attribute of a span (`rpc.system = "grpc"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attribute<'a> {
    /// Its key, from the OpenTelemetry semantic conventions.
    pub key: &'static str,
    /// Its value.
    pub value: AttributeValue<'a>,
}

impl<'a> Attribute<'a> {
    /// A text attribute.
    pub fn str(key: &'static str, value: &'a str) -> Self {
        Self {
            key,
            value: AttributeValue::Str(value),
        }
    }

    /// A number attribute.
    pub fn i64(key: &'static str, value: i64) -> Self {
        Self {
            key,
            value: AttributeValue::I64(value),
        }
    }
}

/// A sampled span that has ended.
#[derive(Clone, Copy, Debug)]
pub struct FinishedSpan<'a> {
    /// Its name (`pkg.Service/Method` for RPC spans).
    pub name: &'a str,
    /// Its kind.
    pub kind: SpanKind,
    /// Its ids, its parent, its tracestate.
    pub context: &'a TraceContext,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes.
    pub attributes: &'a [Attribute<'a>],
    /// `Some` when it ended in error, with the description (OpenTelemetry's status Error).
    pub error: Option<&'a str>,
}

/// Where finished spans go. Implemented by the umbrella's OTLP exporter; implement it to send
/// spans elsewhere (or to capture them in a test).
///
/// `record` is called on the request path: it must not block (queue the span, drop it when
/// the queue is full).
pub trait SpanRecorder: Send + Sync + 'static {
    /// Whether a span of `trace_id` is sampled, when its parent is remote (another process's
    /// span: `Some(its sampled flag)`) or absent (a new trace: `None`). A span whose parent
    /// is in this process takes its parent's decision without asking.
    fn should_sample(&self, trace_id: TraceId, parent_sampled: Option<bool>) -> bool;

    /// Records a sampled span that ended.
    fn record(&self, span: &FinishedSpan<'_>);
}

static RECORDER: OnceLock<Box<dyn SpanRecorder>> = OnceLock::new();

/// Installs the process's recorder. There is one per process and it stays.
pub fn install_recorder(recorder: impl SpanRecorder) -> Result<(), AlreadyInstalled> {
    RECORDER
        .set(Box::new(recorder))
        .map_err(|_| AlreadyInstalled)
}

/// [`install_recorder`] was called before: the first recorder stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyInstalled;

impl std::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a span recorder is already installed")
    }
}

impl std::error::Error for AlreadyInstalled {}

/// The installed recorder, if any.
pub fn recorder() -> Option<&'static dyn SpanRecorder> {
    RECORDER.get().map(|r| &**r)
}

/// Whether a span of `trace_id` with a remote (or no) parent is sampled: the recorder's
/// decision, or without one the caller's flag (a new trace: not sampled).
pub(crate) fn decide(trace_id: TraceId, parent_sampled: Option<bool>) -> bool {
    match recorder() {
        Some(recorder) => recorder.should_sample(trace_id, parent_sampled),
        None => parent_sampled.unwrap_or(false),
    }
}

/// Records `span` if it is sampled and a recorder is installed.
pub fn record(span: &FinishedSpan<'_>) {
    if span.context.is_sampled()
        && let Some(recorder) = recorder()
    {
        recorder.record(span);
    }
}
