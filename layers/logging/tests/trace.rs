//! W3C trace context over a real socket: the caller's trace on every log line of the call, a
//! new trace without a valid parent, no trace headers in responses, and the server span a
//! span recorder receives (a capturing recorder, installed once for this test binary).

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use tonic::transport::Server;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_core::trace::{
    AttributeValue, FinishedSpan, SpanKind, SpanRecorder, TraceId, install_recorder,
};
use tonic_blueprint_logging::RequestLoggingLayer;
use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{Captured, FILE_DESCRIPTOR_SET, TestServer, UNARY};
use tower::ServiceBuilder;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A recorded span, owned.
#[derive(Clone, Debug)]
struct Recorded {
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent_id: Option<String>,
    remote_parent: bool,
    attributes: BTreeMap<String, String>,
    error: Option<String>,
}

/// Parent-based sampling, every span kept.
#[derive(Default)]
struct Capture(Mutex<Vec<Recorded>>);

impl SpanRecorder for Capture {
    fn should_sample(&self, _: TraceId, parent_sampled: Option<bool>) -> bool {
        parent_sampled.unwrap_or(true)
    }

    fn record(&self, span: &FinishedSpan<'_>) {
        let attributes = span
            .attributes
            .iter()
            .map(|a| {
                let value = match a.value {
                    AttributeValue::Str(s) => s.to_owned(),
                    AttributeValue::I64(n) => n.to_string(),
                    AttributeValue::Bool(b) => b.to_string(),
                };
                (a.key.to_owned(), value)
            })
            .collect();
        let recorded = Recorded {
            name: span.name.to_owned(),
            kind: span.kind,
            trace_id: span.context.trace_id().to_string(),
            span_id: span.context.span_id().to_string(),
            parent_id: span.context.parent_id().map(|p| p.to_string()),
            remote_parent: span.context.is_remote_parent(),
            attributes,
            error: span.error.map(str::to_owned),
        };
        self.0.lock().expect("lock").push(recorded);
    }
}

struct Shared(&'static Capture);

impl SpanRecorder for Shared {
    fn should_sample(&self, trace_id: TraceId, parent_sampled: Option<bool>) -> bool {
        self.0.should_sample(trace_id, parent_sampled)
    }

    fn record(&self, span: &FinishedSpan<'_>) {
        self.0.record(span);
    }
}

fn spans() -> &'static Capture {
    static SPANS: OnceLock<&'static Capture> = OnceLock::new();
    SPANS.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::default());
        install_recorder(Shared(capture)).expect("the only recorder");
        capture
    })
}

/// The spans recorded for `request_id`.
fn spans_of(request_id: &str) -> Vec<Recorded> {
    spans()
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.attributes.get("request_id").map(String::as_str) == Some(request_id))
        .cloned()
        .collect()
}

fn logs() -> &'static Captured {
    Captured::global_json(tracing::Level::DEBUG)
}

/// The JSON lines of the call with `request_id` (its span's lines).
fn lines_of(request_id: &str) -> Vec<Value> {
    logs()
        .text()
        .lines()
        .filter(|l| l.contains(request_id))
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON log line"))
        .filter(|l| l["span"]["request_id"] == request_id)
        .collect()
}

async fn server(layer: RequestLoggingLayer) -> TestServer {
    logs();
    spans();
    let registry =
        MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors");
    let stack = ServiceBuilder::new()
        .layer(layer.with_registry(registry))
        .layer(PanicRecoveryLayer::new());
    TestServer::start(Server::builder().layer(stack)).await
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[tokio::test]
async fn every_line_of_a_call_carries_the_callers_trace_and_nothing_is_echoed() {
    let server = server(RequestLoggingLayer::new()).await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    // A panic: the recovery layer logs a line of its own inside the call's span.
    let response = server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x").panic()],
            &[
                ("x-request-id", "trace-joined"),
                ("traceparent", &traceparent),
                ("tracestate", "vendor=opaque"),
                ("baggage", "tier=gold"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(response.grpc_status(), Some(tonic::Code::Internal));
    for name in ["traceparent", "tracestate", "baggage"] {
        assert!(
            !response.all_text().contains(name),
            "{name} echoed: {}",
            response.all_text()
        );
    }

    let lines = lines_of("trace-joined");
    assert!(
        lines.len() >= 3,
        "metadata, panic and finishing lines: {lines:?}"
    );
    let span_id = lines[0]["span"]["span_id"]
        .as_str()
        .expect("span_id")
        .to_owned();
    assert!(is_hex(&span_id, 16) && span_id != PARENT, "{span_id}");
    for line in &lines {
        assert_eq!(line["span"]["trace_id"], TRACE, "{line}");
        assert_eq!(line["span"]["span_id"], span_id.as_str(), "{line}");
    }
    assert!(lines.iter().any(|l| l["message"] == "finished call"));
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "ERROR" && l["message"] != "finished call")
    );

    let recorded = spans_of("trace-joined");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let span = &recorded[0];
    assert_eq!(span.trace_id, TRACE);
    assert_eq!(span.span_id, span_id);
    assert_eq!(span.parent_id.as_deref(), Some(PARENT));
    assert!(span.remote_parent);
    assert_eq!(span.error.as_deref(), Some("Internal"));
}

#[tokio::test]
async fn a_sampled_call_is_a_server_span_with_the_rpc_conventions() {
    let server = server(RequestLoggingLayer::new()).await;
    let raw = server.raw();
    for (id, request) in [
        ("span-ok", TestRequest::echo("x")),
        (
            "span-not-found",
            TestRequest::echo("x").fail(tonic::Code::NotFound, "no"),
        ),
        (
            "span-unavailable",
            TestRequest::echo("x").fail(tonic::Code::Unavailable, "down"),
        ),
    ] {
        raw.call(
            UNARY,
            &[request],
            &[
                ("x-request-id", id),
                ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
            ],
        )
        .await
        .expect("call");
    }
    let ok = spans_of("span-ok").pop().expect("recorded");
    assert_eq!(ok.name, "blueprint.test.v1.TestService/Unary");
    assert_eq!(ok.kind, SpanKind::Server);
    let expected = [
        ("rpc.system", "grpc"),
        ("rpc.service", "blueprint.test.v1.TestService"),
        ("rpc.method", "Unary"),
        ("rpc.grpc.status_code", "0"),
        ("server.address", "127.0.0.1"),
        ("server.port", &server.addr().port().to_string()),
        ("network.peer.address", "127.0.0.1"),
    ];
    for (key, value) in expected {
        assert_eq!(
            ok.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}: {ok:?}"
        );
    }
    assert!(ok.attributes.contains_key("network.peer.port"));
    assert!(
        !ok.attributes.contains_key("enduser.id"),
        "nobody authenticated"
    );
    assert_eq!(ok.error, None);

    let not_found = spans_of("span-not-found").pop().expect("recorded");
    assert_eq!(not_found.attributes["rpc.grpc.status_code"], "5");
    assert_eq!(
        not_found.error, None,
        "a client's error is not the server's"
    );
    let unavailable = spans_of("span-unavailable").pop().expect("recorded");
    assert_eq!(unavailable.error.as_deref(), Some("Unavailable"));
}

#[tokio::test]
async fn an_unsampled_caller_is_followed_and_nothing_is_recorded() {
    let server = server(RequestLoggingLayer::new()).await;
    server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[
                ("x-request-id", "trace-unsampled"),
                ("traceparent", &format!("00-{TRACE}-{PARENT}-00")),
            ],
        )
        .await
        .expect("call");
    let lines = lines_of("trace-unsampled");
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["span"]["trace_id"] == TRACE));
    assert!(spans_of("trace-unsampled").is_empty());
}

#[tokio::test]
async fn an_invalid_or_missing_parent_starts_a_new_trace() {
    let server = server(RequestLoggingLayer::new()).await;
    let raw = server.raw();
    let cases = [
        ("new-trace-none", None),
        (
            "new-trace-upper",
            Some(format!("00-{}-{PARENT}-01", TRACE.to_uppercase())),
        ),
        (
            "new-trace-zero",
            Some(format!("00-{}-{PARENT}-01", "0".repeat(32))),
        ),
        ("new-trace-short", Some(format!("00-{TRACE}-{PARENT}-1"))),
        ("new-trace-ff", Some(format!("ff-{TRACE}-{PARENT}-01"))),
        (
            "new-trace-long",
            Some(format!("00-{TRACE}-{PARENT}-01-extra")),
        ),
    ];
    let mut seen = Vec::new();
    for (id, traceparent) in &cases {
        let mut headers = vec![("x-request-id", *id), ("tracestate", "vendor=dropped")];
        if let Some(value) = traceparent {
            headers.push(("traceparent", value.as_str()));
        }
        raw.call(UNARY, &[TestRequest::echo("x")], &headers)
            .await
            .expect("call");
        let lines = lines_of(id);
        let trace_id = lines[0]["span"]["trace_id"]
            .as_str()
            .expect("trace_id")
            .to_owned();
        assert!(
            is_hex(&trace_id, 32) && trace_id != TRACE,
            "{id}: {trace_id}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l["span"]["trace_id"] == trace_id.as_str())
        );
        // A new trace is sampled by the recorder's root decision, without a parent.
        let span = spans_of(id).pop().expect("recorded");
        assert_eq!(span.trace_id, trace_id);
        assert_eq!(span.parent_id, None);
        seen.push(trace_id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), cases.len(), "a new trace every call");
}

#[tokio::test]
async fn without_trace_context_the_layer_reads_no_trace_header() {
    let server = server(RequestLoggingLayer::new().trace_context(false)).await;
    server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[
                ("x-request-id", "trace-off"),
                ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
            ],
        )
        .await
        .expect("call");
    let lines = lines_of("trace-off");
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["span"].get("trace_id").is_none()));
    assert!(spans_of("trace-off").is_empty());
}
