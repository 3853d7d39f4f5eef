//! One trace across two servers: server A's handler calls server B through the
//! `PropagateLayer`, both behind the preset stack, over real sockets. B's call is a child of
//! A's (server span → client span → B's server span, one trace id), carries A's request id,
//! and gets what is left of A's deadline as its `grpc-timeout`: the client's, or A's own
//! server timeout noted by the preset. A call whose deadline has passed never goes out.
#![cfg(feature = "server")]

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_blueprint::config::Loader;
use tonic_blueprint::core::trace::{
    AttributeValue, FinishedSpan, SpanKind, SpanRecorder, TraceContext, TraceId, install_recorder,
};
use tonic_blueprint::core::{CurrentCall, Deadline, DeadlineSource};
use tonic_blueprint::logging::{Propagate, PropagateLayer};
use tonic_blueprint::server::{Running, Server};
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::pb::test_service_server::{self, TestServiceServer};
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{Captured, FILE_DESCRIPTOR_SET, TestServer, TestService};
use tower::ServiceBuilder;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[derive(Clone, Debug)]
struct Recorded {
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent_id: Option<String>,
    attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Capture(Mutex<Vec<Recorded>>);

struct Shared(&'static Capture);

impl SpanRecorder for Shared {
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
        self.0.0.lock().expect("lock").push(Recorded {
            kind: span.kind,
            trace_id: span.context.trace_id().to_string(),
            span_id: span.context.span_id().to_string(),
            parent_id: span.context.parent_id().map(|p| p.to_string()),
            attributes,
        });
    }
}

/// The spans recorded so far, and the captured JSON logs (both installed once).
fn capture() -> (&'static Capture, &'static Captured) {
    static CAPTURE: OnceLock<(&'static Capture, Captured)> = OnceLock::new();
    let (spans, logs) = CAPTURE.get_or_init(|| {
        let spans: &'static Capture = Box::leak(Box::default());
        install_recorder(Shared(spans)).expect("the only recorder");
        (spans, Captured::global_json(tracing::Level::INFO).clone())
    });
    (spans, logs)
}

fn spans_in(trace_id: &str) -> Vec<Recorded> {
    capture()
        .0
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect()
}

/// Server A's handler: calls B and answers what it saw, its own deadline in the payload.
struct Relay {
    b: Propagate<Channel>,
}

#[tonic::async_trait]
impl test_service_server::TestService for Relay {
    async fn unary(&self, request: Request<TestRequest>) -> Result<Response<TestResponse>, Status> {
        let mine = request
            .extensions()
            .get::<Deadline>()
            .map_or(-1, |d| d.remaining().as_millis() as i64);
        let mut b = TestServiceClient::new(self.b.clone());
        let answer = b.unary(TestRequest::echo("from A")).await?.into_inner();
        Ok(Response::new(TestResponse {
            payload: mine.to_string().into_bytes(),
            index: 0,
            deadline_remaining_ms: answer.deadline_remaining_ms,
        }))
    }

    type ServerStreamStream = tokio_stream::Empty<Result<TestResponse, Status>>;

    async fn server_stream(
        &self,
        _: Request<TestRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Err(Status::unimplemented("relay: unary only"))
    }

    async fn client_stream(
        &self,
        _: Request<tonic::Streaming<TestRequest>>,
    ) -> Result<Response<TestResponse>, Status> {
        Err(Status::unimplemented("relay: unary only"))
    }

    type BidiStream = tokio_stream::Empty<Result<TestResponse, Status>>;

    async fn bidi(
        &self,
        _: Request<tonic::Streaming<TestRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        Err(Status::unimplemented("relay: unary only"))
    }
}

async fn kit_server(routes: tonic::service::Routes, request_timeout: &str) -> Running {
    capture();
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "off"),
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("REQUEST_TIMEOUT_SECONDS", request_timeout),
        ("SHUTDOWN_DRAIN_DELAY_SECONDS", "0"),
    ])
    .load()
    .expect("config");
    Server::new(config)
        .descriptors(FILE_DESCRIPTOR_SET)
        .start(routes)
        .await
        .expect("server")
}

/// B (the test service), and A relaying to it with `a_timeout` as its server timeout.
async fn servers(a_timeout: &str) -> (Running, Running) {
    let b = kit_server(
        tonic::service::Routes::new(TestService::default().into_server()),
        "30",
    )
    .await;
    let endpoint = Endpoint::from_shared(format!("http://{}", b.local_addr())).expect("uri");
    let relay = Relay {
        b: ServiceBuilder::new()
            .layer(PropagateLayer::new().target(endpoint.uri()))
            .service(endpoint.connect_lazy()),
    };
    let a = kit_server(
        tonic::service::Routes::new(TestServiceServer::new(relay)),
        a_timeout,
    )
    .await;
    (a, b)
}

async fn call_a(a: &Running, metadata: &[(&'static str, &str)]) -> (i64, i64) {
    let mut client = TestServiceClient::connect(format!("http://{}", a.local_addr()))
        .await
        .expect("connect");
    let mut request = Request::new(TestRequest::echo("x"));
    for (key, value) in metadata {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("metadata"));
    }
    let answer = client.unary(request).await.expect("call").into_inner();
    let a_left: i64 = String::from_utf8(answer.payload)
        .expect("text")
        .parse()
        .expect("a number");
    (a_left, answer.deadline_remaining_ms)
}

#[tokio::test]
async fn a_relayed_call_is_one_trace_with_the_request_id_and_a_shrinking_deadline() {
    let (a, b) = servers("30").await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (a_left, b_left) = call_a(
        &a,
        &[
            ("traceparent", &traceparent),
            ("x-request-id", "hop-request-1"),
            ("grpc-timeout", "2S"),
        ],
    )
    .await;
    assert!(0 < a_left && a_left <= 2000, "A had {a_left} ms");
    assert!(
        0 < b_left && b_left <= a_left,
        "B had {b_left} ms, A {a_left} ms"
    );

    let spans = spans_in(TRACE);
    let server_of = |port: u16| {
        spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server
                    && s.attributes.get("server.port") == Some(&port.to_string())
            })
            .unwrap_or_else(|| panic!("a server span on port {port}: {spans:?}"))
    };
    let a_server = server_of(a.local_addr().port());
    let b_server = server_of(b.local_addr().port());
    let a_client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("a client span: {spans:?}"));
    assert_eq!(a_server.parent_id.as_deref(), Some(PARENT));
    assert_eq!(a_client.parent_id.as_ref(), Some(&a_server.span_id));
    assert_eq!(b_server.parent_id.as_ref(), Some(&a_client.span_id));
    assert_eq!(
        a_client.attributes.get("rpc.method").map(String::as_str),
        Some("Unary")
    );
    assert_eq!(
        a_client.attributes.get("server.port"),
        Some(&b.local_addr().port().to_string())
    );
    assert_eq!(
        b_server.attributes.get("request_id").map(String::as_str),
        Some("hop-request-1"),
        "B logs A's request id"
    );

    // B's log lines carry the trace and A's request id.
    let b_lines: Vec<Value> = capture()
        .1
        .text()
        .lines()
        .filter(|l| l.contains(&b_server.span_id))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let finished = b_lines
        .iter()
        .find(|l| l["message"] == "finished call")
        .expect("B's finishing line");
    assert_eq!(finished["span"]["trace_id"], TRACE);
    assert_eq!(finished["span"]["request_id"], "hop-request-1");
    a.shutdown().await.expect("shutdown A");
    b.shutdown().await.expect("shutdown B");
}

#[tokio::test]
async fn without_a_client_timeout_the_callee_gets_the_callers_server_timeout() {
    // A's own REQUEST_TIMEOUT_SECONDS (3 s), noted by the preset inside Timeout, not B's 30 s.
    let (a, b) = servers("3").await;
    let (a_left, b_left) = call_a(&a, &[("x-request-id", "hop-server-timeout")]).await;
    assert!(0 < a_left && a_left <= 3000, "A had {a_left} ms");
    assert!(
        0 < b_left && b_left <= a_left,
        "B had {b_left} ms, A {a_left} ms"
    );
    // No traceparent: A started a trace of its own, and B joined it.
    let spans: Vec<Recorded> = capture()
        .0
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| {
            s.attributes.get("request_id").map(String::as_str) == Some("hop-server-timeout")
        })
        .cloned()
        .collect();
    assert_eq!(spans.len(), 2, "A's and B's server spans: {spans:?}");
    assert_eq!(spans[0].trace_id, spans[1].trace_id);
    a.shutdown().await.expect("shutdown A");
    b.shutdown().await.expect("shutdown B");
}

#[tokio::test]
async fn a_call_whose_deadline_has_passed_never_goes_out() {
    capture();
    let b = TestServer::start(tonic::transport::Server::builder()).await;
    let channel = Endpoint::from_shared(b.uri()).expect("uri").connect_lazy();
    let mut client = TestServiceClient::new(
        ServiceBuilder::new()
            .layer(PropagateLayer::new())
            .service(channel),
    );
    let call = CurrentCall::new(
        TraceContext::new_root(),
        None,
        Some(Deadline::after(Duration::ZERO, DeadlineSource::Client)),
    );
    let status = call
        .scope(client.unary(TestRequest::echo("late")))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(b.service().counts().started(), 0, "nothing reached B");

    // Outside any call, nothing is added and the call goes through.
    let answer = client
        .unary(TestRequest::echo("plain"))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(answer.deadline_remaining_ms, -1);
}
