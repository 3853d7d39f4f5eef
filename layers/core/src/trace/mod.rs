//! W3C Trace Context: the trace a call belongs to, as the [`TraceContext`] request extension.
//!
//! The RequestLogging layer reads the caller's `traceparent`, `tracestate` and `baggage`
//! ([W3C Trace Context](https://www.w3.org/TR/trace-context/),
//! [W3C Baggage](https://www.w3.org/TR/baggage/)) with the strict parsers of this module,
//! starts the call's span in that trace (or a new trace when there is no valid parent), and
//! stores the result in the request extensions, where handlers, the NATS helpers and the
//! outgoing-call layer read it to carry the trace on.
//!
//! - an invalid `traceparent` is ignored whole (and its `tracestate` with it): the call starts
//!   a new trace. An invalid `tracestate` or `baggage` is ignored alone;
//! - nothing in these headers changes anything but the trace: baggage is carried on, never
//!   read as an identity, a tenant or a setting;
//! - ids come from a fast non-cryptographic generator (unique, not secret);
//! - whether a span is recorded is decided once, when it starts, by the installed
//!   [`SpanRecorder`]'s sampler (none installed: the caller's sampled flag passes through).
//!
//! ```
//! use tonic_blueprint_core::trace::TraceContext;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
//! );
//! let call = TraceContext::incoming(&headers);
//! assert_eq!(call.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(call.parent_id().unwrap().to_string(), "00f067aa0ba902b7");
//! assert!(call.is_sampled()); // no recorder installed: the caller's flag
//!
//! // What goes out with a call this one makes: the same trace, this span as the parent.
//! let mut outgoing = http::HeaderMap::new();
//! call.inject(&mut outgoing);
//! let sent = outgoing["traceparent"].to_str().unwrap();
//! assert_eq!(sent, format!("00-{}-{}-01", call.trace_id(), call.span_id()));
//!
//! // No (valid) parent: a new trace.
//! let fresh = TraceContext::incoming(&http::HeaderMap::new());
//! assert_ne!(fresh.trace_id(), call.trace_id());
//! assert!(fresh.parent_id().is_none());
//! ```

mod ids;
mod parse;
mod recorder;
mod sampler;

pub use ids::{Hex, SpanId, TraceId};
pub use parse::{
    BAGGAGE, MAX_BAGGAGE_ENTRIES, MAX_BAGGAGE_LEN, MAX_TRACESTATE_ENTRIES, MAX_TRACESTATE_LEN,
    TRACEPARENT, TRACESTATE, TraceParent, parse_baggage, parse_traceparent, parse_tracestate,
};
pub use recorder::{
    AlreadyInstalled, Attribute, AttributeValue, FinishedSpan, SpanKind, SpanRecorder,
    install_recorder, record, recorder,
};
pub use sampler::Sampler;

use http::{HeaderMap, HeaderValue};
use std::fmt;

/// The trace of one span: its ids, its parent, whether it is sampled, and the `tracestate`
/// and `baggage` it carries on. Cloning is cheap.
///
/// The RequestLogging layer stores the server span's context in the request extensions;
/// read it with [`TraceContext::of`] in a handler or [`TraceContext::from_extensions`].
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: Option<SpanId>,
    remote_parent: bool,
    sampled: bool,
    tracestate: Option<HeaderValue>,
    baggage: Option<HeaderValue>,
}

impl TraceContext {
    /// The context of a span that continues the caller's trace from `headers`
    /// (`traceparent`, `tracestate`, `baggage`), or starts a new trace when there is no valid
    /// `traceparent`. Sampled as the installed recorder decides.
    pub fn incoming(headers: &HeaderMap) -> Self {
        Self::incoming_with(headers, recorder::decide)
    }

    /// [`incoming`](Self::incoming) with your own sampling decision:
    /// `sample(trace_id, Some(caller's flag))`, or `sample(trace_id, None)` for a new trace.
    pub fn incoming_with(
        headers: &HeaderMap,
        sample: impl FnOnce(TraceId, Option<bool>) -> bool,
    ) -> Self {
        let baggage = if headers.contains_key(BAGGAGE) {
            parse_baggage(headers)
        } else {
            None
        };
        match TraceParent::from_headers(headers) {
            Some(parent) => Self {
                trace_id: parent.trace_id,
                span_id: SpanId::random(),
                parent_id: Some(parent.parent_id),
                remote_parent: true,
                sampled: sample(parent.trace_id, Some(parent.sampled)),
                tracestate: if headers.contains_key(TRACESTATE) {
                    parse_tracestate(headers)
                } else {
                    None
                },
                baggage,
            },
            None => {
                let mut root = Self::new_root_with(sample);
                root.baggage = baggage;
                root
            }
        }
    }

    /// A new trace, sampled as the installed recorder decides for a new trace.
    pub fn new_root() -> Self {
        Self::new_root_with(recorder::decide)
    }

    fn new_root_with(sample: impl FnOnce(TraceId, Option<bool>) -> bool) -> Self {
        let trace_id = TraceId::random();
        Self {
            trace_id,
            span_id: SpanId::random(),
            parent_id: None,
            remote_parent: false,
            sampled: sample(trace_id, None),
            tracestate: None,
            baggage: None,
        }
    }

    /// A span inside this one (an outgoing call, a published event): the same trace,
    /// sampled flag, tracestate and baggage, a new span id, this span as its parent.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            parent_id: Some(self.span_id),
            remote_parent: false,
            sampled: self.sampled,
            tracestate: self.tracestate.clone(),
            baggage: self.baggage.clone(),
        }
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent span, if any.
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }

    /// Whether the parent is another process's span (it came in a `traceparent`).
    pub fn is_remote_parent(&self) -> bool {
        self.remote_parent
    }

    /// Whether this span is recorded (the `sampled` flag it passes on).
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The caller's valid `tracestate`, carried on unchanged.
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.tracestate.as_ref()
    }

    /// The caller's valid `baggage`, carried on unchanged.
    pub fn baggage(&self) -> Option<&HeaderValue> {
        self.baggage.as_ref()
    }

    /// One baggage entry's value, percent-decoded. Baggage is whatever the caller wrote:
    /// never treat it as proof of anything.
    pub fn baggage_value(&self, key: &str) -> Option<String> {
        let baggage = self.baggage.as_ref()?.to_str().ok()?;
        parse::baggage_value(baggage, key)
    }

    /// The `traceparent` that makes this span the parent of the receiver's:
    /// `00-<trace id>-<this span id>-<flags>`.
    pub fn traceparent(&self) -> HeaderValue {
        let mut text = [0u8; 55];
        text[..3].copy_from_slice(b"00-");
        text[3..35].copy_from_slice(self.trace_id.to_hex().as_bytes());
        text[35] = b'-';
        text[36..52].copy_from_slice(self.span_id.to_hex().as_bytes());
        text[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        // Hex digits and dashes are always a valid header value.
        HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
    }

    /// Writes `traceparent` (this span as the parent), and the `tracestate` and `baggage`
    /// carried, into the headers of an outgoing call or message.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT, self.traceparent());
        match &self.tracestate {
            Some(state) => headers.insert(TRACESTATE, state.clone()),
            None => headers.remove(TRACESTATE),
        };
        if let Some(baggage) = &self.baggage {
            headers.insert(BAGGAGE, baggage.clone());
        }
    }

    /// The context in these extensions, if any: the call's
    /// ([`CurrentCall`](crate::CurrentCall), where the RequestLogging layer keeps it), or
    /// one stored on its own.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Self> {
        extensions.get::<Self>().or_else(|| {
            crate::CurrentCall::from_extensions(extensions).map(crate::CurrentCall::trace)
        })
    }

    /// The context of a handler's request, if any.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Self> {
        Self::from_extensions(request.extensions())
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("parent_id", &self.parent_id)
            .field("remote_parent", &self.remote_parent)
            .field("sampled", &self.sampled)
            .field("tracestate", &self.tracestate)
            .field("baggage", &self.baggage.as_ref().map(HeaderValue::len))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn a_valid_parent_is_continued_with_its_state_and_baggage() {
        let map = headers(&[
            ("traceparent", PARENT),
            ("tracestate", "vendor=abc"),
            ("baggage", "tier=gold"),
        ]);
        let call = TraceContext::incoming_with(&map, |_, parent| parent.unwrap_or(true));
        assert_eq!(
            call.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(call.is_remote_parent());
        assert!(!call.is_sampled(), "the caller did not sample");
        assert_eq!(
            call.tracestate().map(|v| v.as_bytes()),
            Some(&b"vendor=abc"[..])
        );
        assert_eq!(call.baggage_value("tier").as_deref(), Some("gold"));

        let child = call.child();
        assert_eq!(child.trace_id(), call.trace_id());
        assert_eq!(child.parent_id(), Some(call.span_id()));
        assert!(!child.is_remote_parent());
        assert_ne!(child.span_id(), call.span_id());

        let mut out = HeaderMap::new();
        out.insert(TRACESTATE, HeaderValue::from_static("stale=1"));
        child.inject(&mut out);
        assert_eq!(
            out[TRACEPARENT],
            format!("00-{}-{}-00", child.trace_id(), child.span_id())
        );
        assert_eq!(out[TRACESTATE], "vendor=abc");
        assert_eq!(out[BAGGAGE], "tier=gold");
        assert_eq!(
            parse_traceparent(out[TRACEPARENT].as_bytes()).map(|p| p.parent_id),
            Some(child.span_id())
        );
    }

    #[test]
    fn an_invalid_parent_starts_a_new_trace_without_its_state() {
        let map = headers(&[
            ("traceparent", "00-not-a-parent-01"),
            ("tracestate", "vendor=abc"),
            ("baggage", "tier=gold"),
        ]);
        let mut asked = None;
        let call = TraceContext::incoming_with(&map, |_, parent| {
            asked = Some(parent);
            true
        });
        assert_eq!(asked, Some(None), "sampled as a new trace");
        assert!(call.parent_id().is_none());
        assert!(call.tracestate().is_none());
        assert_eq!(
            call.baggage_value("tier").as_deref(),
            Some("gold"),
            "baggage is a header of its own"
        );
        let mut out = HeaderMap::new();
        call.inject(&mut out);
        assert_eq!(out[TRACEPARENT].len(), 55);
        assert!(out[TRACEPARENT].to_str().expect("text").ends_with("-01"));
    }
}
