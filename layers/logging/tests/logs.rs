//! What a real server's logs show, captured as JSON from the global subscriber at TRACE level.
//! Each test finds its own lines by the request ids it sends.

use serde_json::Value;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_logging::RequestLoggingLayer;
use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{
    BIDI, Captured, FILE_DESCRIPTOR_SET, RawResponse, SERVER_STREAM, TestServer, UNARY,
};
use tower::ServiceBuilder;

fn logs() -> &'static Captured {
    Captured::global_json(tracing::Level::TRACE)
}

fn text() -> String {
    logs().text()
}

/// The JSON lines that mention `needle`.
fn lines_with(needle: &str) -> Vec<Value> {
    text()
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect()
}

fn finished(request_id: &str) -> Value {
    let lines: Vec<_> = lines_with(request_id)
        .into_iter()
        .filter(|l| l["message"] == "finished call")
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one finishing event for {request_id}: {lines:?}"
    );
    lines.into_iter().next().expect("one line")
}

fn layer() -> RequestLoggingLayer {
    let registry =
        MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors");
    RequestLoggingLayer::new()
        .with_registry(registry)
        .sensitive_header("x-internal-secret")
}

async fn server() -> TestServer {
    logs();
    let stack = ServiceBuilder::new()
        .layer(layer())
        .layer(PanicRecoveryLayer::new());
    TestServer::start(Server::builder().layer(stack)).await
}

fn echoed(response: &RawResponse) -> String {
    response.headers["x-request-id"]
        .to_str()
        .expect("text")
        .to_owned()
}

#[tokio::test]
async fn a_client_request_id_is_in_the_span_the_event_and_the_response() {
    let server = server().await;
    let response = server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[("x-request-id", "req-client-0001")],
        )
        .await
        .expect("call");
    assert_eq!(echoed(&response), "req-client-0001");

    let event = finished("req-client-0001");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["request_id"], "req-client-0001");
    assert_eq!(event["grpc.service"], "blueprint.test.v1.TestService");
    assert_eq!(event["grpc.method"], "Unary");
    assert_eq!(event["grpc.method_type"], "unary");
    assert_eq!(event["grpc.code"], "OK");
    assert!(event["grpc.time_ms"].as_f64().expect("time") >= 0.0);
    assert!(
        event["peer.address"]
            .as_str()
            .expect("peer")
            .starts_with("127.0.0.1:")
    );
    let span = &event["span"];
    assert_eq!(span["name"], "grpc.request");
    assert_eq!(span["request_id"], "req-client-0001");
    assert_eq!(span["grpc.method"], "Unary");
}

#[tokio::test]
async fn an_absurd_client_deadline_is_served_and_logged_without_a_date() {
    let server = server().await;
    let response = server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[
                ("x-request-id", "far-deadline"),
                ("grpc-timeout", "99999999H"),
            ],
        )
        .await
        .expect("the connection survives");
    assert_eq!(response.grpc_status(), Some(tonic::Code::Ok));
    let event = finished("far-deadline");
    assert!(event["span"].get("grpc.request.deadline").is_none());
    // A near deadline is shown.
    server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[("x-request-id", "near-deadline"), ("grpc-timeout", "5S")],
        )
        .await
        .expect("call");
    let event = finished("near-deadline");
    assert!(
        event["span"]["grpc.request.deadline"]
            .as_str()
            .expect("date")
            .ends_with('Z')
    );
}

#[tokio::test]
async fn a_missing_or_unusable_request_id_is_replaced_by_a_uuid_v7() {
    let server = server().await;
    let long = "x".repeat(129);
    for headers in [
        vec![],
        vec![("x-request-id", "has space")],
        vec![("x-request-id", long.as_str())],
    ] {
        let response = server
            .raw()
            .call(UNARY, &[TestRequest::echo("x")], &headers)
            .await
            .expect("call");
        let id = echoed(&response);
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "7", "UUID version 7: {id}");
        assert_eq!(finished(&id)["grpc.code"], "OK");
    }
}

#[tokio::test]
async fn the_level_follows_the_outcome() {
    let server = server().await;
    let raw = server.raw();
    raw.call(
        UNARY,
        &[TestRequest::echo("x")],
        &[("x-request-id", "lvl-ok")],
    )
    .await
    .expect("call");
    raw.call(
        UNARY,
        &[TestRequest::echo("x").fail(tonic::Code::NotFound, "nope")],
        &[("x-request-id", "lvl-notfound")],
    )
    .await
    .expect("call");
    raw.call(
        UNARY,
        &[TestRequest::echo("x").panic()],
        &[("x-request-id", "lvl-panic")],
    )
    .await
    .expect("call");
    assert_eq!(finished("lvl-ok")["level"], "INFO");
    let not_found = finished("lvl-notfound");
    assert_eq!(
        (not_found["level"].as_str(), not_found["grpc.code"].as_str()),
        (Some("WARN"), Some("NotFound"))
    );
    let panic = finished("lvl-panic");
    assert_eq!(
        (panic["level"].as_str(), panic["grpc.code"].as_str()),
        (Some("ERROR"), Some("Internal"))
    );
    // The panic event of the layer below carries the request id through the span.
    let recovered: Vec<_> = lines_with("lvl-panic")
        .into_iter()
        .filter(|l| l["message"] == "panic recovered, answering INTERNAL")
        .collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["span"]["request_id"], "lvl-panic");
}

#[tokio::test]
async fn streams_log_their_message_counts_and_their_trailer_status() {
    let server = server().await;
    let raw = server.raw();
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("s").count(3)],
        &[("x-request-id", "stream-ok")],
    )
    .await
    .expect("call");
    raw.call(
        BIDI,
        &[
            TestRequest::echo("a"),
            TestRequest::echo("b"),
            TestRequest::echo("c")
                .sleep_ms(5)
                .fail(tonic::Code::Aborted, "stop"),
        ],
        &[("x-request-id", "bidi-aborted")],
    )
    .await
    .expect("call");
    let stream = finished("stream-ok");
    assert_eq!(stream["grpc.method_type"], "server_stream");
    assert_eq!(stream["grpc.messages_received"], 1);
    assert_eq!(stream["grpc.messages_sent"], 3);
    let bidi = finished("bidi-aborted");
    assert_eq!(bidi["grpc.code"], "Aborted");
    assert_eq!(bidi["level"], "WARN");
    assert_eq!(bidi["grpc.messages_received"], 3);
    assert_eq!(bidi["grpc.messages_sent"], 2);
}

#[tokio::test]
async fn a_client_that_goes_away_is_logged_as_canceled() {
    let server = server().await;
    let mut client = server.client().await;
    let mut request = tonic::Request::new(TestRequest::echo("x").sleep_ms(5000));
    request
        .metadata_mut()
        .insert("x-request-id", "gone-away".parse().expect("value"));
    let abandoned = tokio::time::timeout(Duration::from_millis(100), client.unary(request)).await;
    assert!(abandoned.is_err());
    assert_eq!(
        server
            .service()
            .counts()
            .wait_cancelled(1, Duration::from_secs(5))
            .await,
        1
    );
    let event = finished("gone-away");
    assert_eq!(
        (event["grpc.code"].as_str(), event["level"].as_str()),
        (Some("Canceled"), Some("WARN"))
    );
}

#[tokio::test]
async fn sensitive_metadata_never_reaches_the_logs() {
    let server = server().await;
    let secrets = [
        ("authorization", "Bearer sekrit-token-1"),
        ("cookie", "session=sekrit-cookie-2"),
        ("x-api-key", "sekrit-key-3"),
        ("x-internal-secret", "sekrit-custom-4"),
    ];
    let mut headers = secrets.to_vec();
    headers.push(("x-request-id", "redaction-check"));
    headers.push(("x-tenant-id", "tenant-visible"));
    server
        .raw()
        .call(UNARY, &[TestRequest::echo("x")], &headers)
        .await
        .expect("call");
    let metadata: Vec<_> = lines_with("redaction-check")
        .into_iter()
        .filter(|l| l["message"] == "request metadata")
        .collect();
    assert_eq!(metadata.len(), 1, "the debug metadata event is there");
    let logged = metadata[0]["grpc.request.metadata"]
        .as_str()
        .expect("metadata text");
    assert!(logged.contains("tenant-visible"), "{logged}");
    assert!(logged.contains("authorization=[REDACTED]"), "{logged}");
    let all = text();
    assert!(!all.contains("sekrit"), "a sensitive value was logged");
}
