//! Streams told from calls, on a real tonic server over a real socket: with the service's
//! descriptors the request timeout bounds unary and client-streaming calls only; server and
//! bidi streams run without a server deadline unless a stream timeout (or an entry of their
//! own) sets one; a client's `grpc-timeout` still ends any of them.

use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{
    BIDI, CLIENT_STREAM, FILE_DESCRIPTOR_SET, RawResponse, SERVER_STREAM, TestServer, UNARY,
};
use tonic_blueprint_timeout::{DEADLINE_EXCEEDED_MESSAGE, TimeoutLayer};

/// A method policy key.
fn key(key: &str) -> tonic_blueprint_core::MethodKey {
    key.parse().expect("a valid key")
}

/// The request timeout of these tests: short, so that a stream visibly outlives it.
const REQUEST: Duration = Duration::from_millis(200);

fn registry() -> MethodRegistry {
    MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors")
}

async fn call(
    server: &TestServer,
    path: &str,
    messages: &[TestRequest],
    headers: &[(&str, &str)],
) -> (RawResponse, Duration) {
    let started = Instant::now();
    let response = server
        .raw()
        .call(path, messages, headers)
        .await
        .expect("call");
    (response, started.elapsed())
}

fn assert_deadline_exceeded(response: &RawResponse, what: &str) {
    assert_eq!(
        response.status,
        http::StatusCode::OK,
        "{what}: {response:?}"
    );
    assert_eq!(
        response.grpc_status(),
        Some(Code::DeadlineExceeded),
        "{what}: {response:?}"
    );
    assert_eq!(
        response.grpc_message().as_deref(),
        Some(DEADLINE_EXCEEDED_MESSAGE),
        "{what}"
    );
}

#[tokio::test]
async fn streams_outlive_the_request_timeout_and_calls_do_not() {
    let layer = TimeoutLayer::new(REQUEST).with_registry(registry());
    let server = TestServer::start(Server::builder().layer(layer)).await;

    // Unary and client-streaming calls: the request timeout.
    for path in [UNARY, CLIENT_STREAM] {
        let (response, elapsed) =
            call(&server, path, &[TestRequest::echo("x").sleep_ms(2000)], &[]).await;
        assert_deadline_exceeded(&response, path);
        assert!(elapsed < Duration::from_millis(1500), "{path}: {elapsed:?}");
    }

    // A server stream running five times the request timeout ends by itself, every message
    // delivered, and its handler saw no deadline.
    let (response, elapsed) = call(
        &server,
        SERVER_STREAM,
        &[TestRequest::echo("tick").count(20).sleep_ms(50)],
        &[],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::Ok), "{response:?}");
    assert!(elapsed >= REQUEST * 4, "{elapsed:?}");
    let received = response.decode::<TestResponse>().expect("decode");
    assert_eq!(received.len(), 20);
    assert!(received.iter().all(|m| m.deadline_remaining_ms == -1));

    // A bidi stream whose last message takes three times the request timeout.
    let (response, elapsed) = call(
        &server,
        BIDI,
        &[TestRequest::echo("a"), TestRequest::echo("b").sleep_ms(600)],
        &[],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::Ok), "{response:?}");
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert_eq!(response.decode::<TestResponse>().expect("decode").len(), 2);
}

#[tokio::test]
async fn a_stream_timeout_ends_streams_in_their_trailers() {
    let layer = TimeoutLayer::new(Duration::from_secs(30))
        .with_registry(registry())
        .stream_timeout(Some(Duration::from_millis(300)));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let (response, elapsed) = call(
        &server,
        SERVER_STREAM,
        &[TestRequest::echo("tick").count(1000).sleep_ms(20)],
        &[],
    )
    .await;
    assert_deadline_exceeded(&response, "server stream");
    assert!(!response.is_trailers_only(), "{response:?}");
    assert!(
        (Duration::from_millis(290)..Duration::from_secs(2)).contains(&elapsed),
        "{elapsed:?}"
    );
    let received = response.decode::<TestResponse>().expect("decode");
    assert!((2..1000).contains(&received.len()), "{}", received.len());
    // The handler saw the stream timeout as its deadline.
    assert!((1..=300).contains(&received[0].deadline_remaining_ms));

    // Unary calls keep the request timeout (30 s here).
    let (response, _) = call(&server, UNARY, &[TestRequest::echo("x").sleep_ms(500)], &[]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok), "{response:?}");
}

#[tokio::test]
async fn a_clients_deadline_still_ends_a_stream_without_a_server_deadline() {
    let layer = TimeoutLayer::new(REQUEST).with_registry(registry());
    let server = TestServer::start(Server::builder().layer(layer)).await;
    for path in [SERVER_STREAM, BIDI] {
        let (response, elapsed) = call(
            &server,
            path,
            &[TestRequest::echo("tick").count(1000).sleep_ms(2000)],
            &[("grpc-timeout", "700m")],
        )
        .await;
        assert_deadline_exceeded(&response, path);
        assert!(
            (Duration::from_millis(650)..Duration::from_millis(1500)).contains(&elapsed),
            "{path}: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_methods_own_entry_beats_its_kind() {
    let layer = TimeoutLayer::new(Duration::from_secs(30))
        .with_registry(registry())
        .stream_timeout(Some(Duration::from_secs(30)))
        .with_timeout(key(&SERVER_STREAM[1..]), Duration::from_millis(250))
        .without_timeout(key(&UNARY[1..]));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let (response, elapsed) = call(
        &server,
        SERVER_STREAM,
        &[TestRequest::echo("tick").count(1000).sleep_ms(20)],
        &[],
    )
    .await;
    assert_deadline_exceeded(&response, "server stream");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let (response, _) = call(&server, UNARY, &[TestRequest::echo("x")], &[]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    let seen = response.decode::<TestResponse>().expect("decode")[0].deadline_remaining_ms;
    assert_eq!(seen, -1, "no server deadline for Unary");
}
