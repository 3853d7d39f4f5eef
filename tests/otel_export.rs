//! OpenTelemetry export end to end: the kit configured by the standard variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`), the preset stack with auth, and a
//! real OTLP/gRPC receiver on a local port (opentelemetry-proto's generated tonic server).
//! Sampled calls arrive as server spans with the RPC attributes; an unsampled caller's call
//! does not arrive.
#![cfg(all(feature = "server", feature = "otel"))]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{Server, init_logging};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{FILE_DESCRIPTOR_SET, TestService};

const SECRET: &str = "otel-test-secret-0123456789-abcdef";
const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const PARENT: &str = "eee19b7ec3c1b174";

/// What the receiver was sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ResourceSpans>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .lock()
            .expect("lock")
            .extend(request.into_inner().resource_spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        });
        addr
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let received = self.0.lock().expect("lock");
        received
            .iter()
            .flat_map(|resource| {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| {
                        r.attributes
                            .iter()
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                    })
                    .unwrap_or_default();
                resource
                    .scope_spans
                    .iter()
                    .flat_map(|scope| scope.spans.clone())
                    .map(move |span| (service.clone(), span))
            })
            .collect()
    }
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "sub": sub, "exp": now + 600 }),
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("sign")
}

// Multi-threaded: the receiver runs on this runtime while the test waits for the export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_calls_reach_an_otlp_receiver_as_server_spans_with_the_rpc_attributes() {
    let receiver = Receiver::default();
    let endpoint = format!("http://{}", receiver.start().await);
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "off"),
        ("SERVICE_NAME", "ignored-for-spans"),
        ("OTEL_SERVICE_NAME", "otel-export-test"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("AUTH_JWT_SECRET", SECRET),
        ("LOG_LEVEL", "warn"),
        ("SHUTDOWN_DRAIN_DELAY_SECONDS", "0"),
    ])
    .load()
    .expect("config");
    let logs = init_logging(&config).expect("logging and the exporter");
    let otel = logs.otel().expect("an exporter: the endpoint is set");

    let server = Server::new(config)
        .descriptors(FILE_DESCRIPTOR_SET)
        .start(tonic::service::Routes::new(
            TestService::default().into_server(),
        ))
        .await
        .expect("server");
    let mut client = TestServiceClient::connect(format!("http://{}", server.local_addr()))
        .await
        .expect("connect");
    let bearer = format!("Bearer {}", token("alice"));
    for (request_id, flags, request) in [
        ("otel-ok", "01", TestRequest::echo("x")),
        ("otel-unsampled", "00", TestRequest::echo("x")),
        ("otel-internal", "01", TestRequest::echo("x").panic()),
    ] {
        let mut call = Request::new(request);
        let metadata = call.metadata_mut();
        metadata.insert("authorization", bearer.parse().expect("value"));
        metadata.insert("x-request-id", request_id.parse().expect("value"));
        metadata.insert(
            "traceparent",
            format!("00-{TRACE}-{PARENT}-{flags}")
                .parse()
                .expect("value"),
        );
        let _ = client.unary(call).await;
    }
    assert!(
        tokio::task::block_in_place(|| otel.flush()),
        "the queue was exported in time"
    );
    assert_eq!(otel.dropped_spans(), 0);

    let spans = receiver.spans();
    let by_request = |id: &str| {
        spans
            .iter()
            .filter(|(_, span)| attributes(span).get("request_id").map(String::as_str) == Some(id))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        by_request("otel-unsampled").is_empty(),
        "the caller did not sample: nothing exported"
    );

    let ok = by_request("otel-ok");
    assert_eq!(ok.len(), 1, "{spans:?}");
    let (service, span) = &ok[0];
    assert_eq!(service, "otel-export-test");
    assert_eq!(span.name, "blueprint.test.v1.TestService/Unary");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.trace_id), TRACE);
    assert_eq!(hex(&span.parent_span_id), PARENT);
    assert_eq!(span.span_id.len(), 8);
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    let found = attributes(span);
    let port = server.local_addr().port().to_string();
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "blueprint.test.v1.TestService"),
        ("rpc.method", "Unary"),
        ("rpc.grpc.status_code", "0"),
        ("server.address", "127.0.0.1"),
        ("server.port", port.as_str()),
        ("network.peer.address", "127.0.0.1"),
        ("enduser.id", "alice"),
    ] {
        assert_eq!(
            found.get(key).map(String::as_str),
            Some(value),
            "{key}: {found:?}"
        );
    }
    assert_ne!(
        span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );

    let internal = by_request("otel-internal");
    assert_eq!(internal.len(), 1, "{spans:?}");
    let (_, span) = &internal[0];
    let status = span.status.as_ref().expect("a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "Internal");
    assert_eq!(attributes(span)["rpc.grpc.status_code"], "13");

    server.shutdown().await.expect("shutdown");
}
