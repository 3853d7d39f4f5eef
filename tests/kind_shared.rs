//! A layer that knows a call's kind (from descriptors) shares it with the layers further in
//! through the call's observer: a logging layer built without descriptors, inside metrics
//! built with them, still logs a server-streaming call as `server_stream`. Real server, real
//! client; logs captured as JSON from the global subscriber.
#![cfg(feature = "server")]

use serde_json::Value;
use std::sync::Arc;
use tonic::transport::Server;
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint::metrics::MetricsLayer;
use tonic_blueprint::metrics::exporter;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{Captured, FILE_DESCRIPTOR_SET, SERVER_STREAM, TestServer};
use tower::ServiceBuilder;

fn logs() -> &'static Captured {
    Captured::global_json(tracing::Level::INFO)
}

fn registry() -> MethodRegistry {
    MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors")
}

async fn stream(server: &TestServer, request_id: &str) {
    let response = server
        .raw()
        .call(
            SERVER_STREAM,
            &[TestRequest::echo("s").count(2)],
            &[("x-request-id", request_id)],
        )
        .await
        .expect("call");
    assert_eq!(response.grpc_status(), Some(tonic::Code::Ok));
}

#[tokio::test]
async fn logging_without_descriptors_inside_metrics_with_them_logs_the_kind() {
    logs();
    let metrics = MetricsLayer::new()
        .with_registry(registry())
        .with_recorder(Arc::new(exporter::recorder()));
    let stack = ServiceBuilder::new()
        .layer(metrics)
        .layer(RequestLoggingLayer::new());
    let server = TestServer::start(Server::builder().layer(stack)).await;
    stream(&server, "kind-shared-logging-1").await;
    let finished: Vec<Value> = logs()
        .text()
        .lines()
        .filter(|l| l.contains("kind-shared-logging-1") && l.contains("finished call"))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(
        finished[0]["grpc.method_type"], "server_stream",
        "{finished:?}"
    );
}
