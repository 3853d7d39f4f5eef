//! The Timeout layer on a real tonic server over a real socket.

use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{
    ALL_METHODS, BIDI, CLIENT_STREAM, RawResponse, SERVER_STREAM, TestServer, UNARY,
};
use tonic_blueprint_timeout::{DEADLINE_EXCEEDED_MESSAGE, TimeoutLayer};

/// A method policy key.
fn key(key: &str) -> tonic_blueprint_core::MethodKey {
    key.parse().expect("a valid key")
}

const SLOW_MS: u32 = 1000;
/// Far below SLOW_MS: the answer must come from the deadline, not from the handler.
const LONG_BEFORE: Duration = Duration::from_millis(600);

fn assert_http_200(response: &RawResponse) {
    assert_eq!(response.status, http::StatusCode::OK, "{response:?}");
    assert_eq!(response.headers["content-type"], "application/grpc");
}

fn assert_deadline_exceeded(response: &RawResponse) {
    assert_http_200(response);
    assert_eq!(
        response.grpc_status(),
        Some(Code::DeadlineExceeded),
        "{response:?}"
    );
    assert_eq!(
        response.grpc_message().as_deref(),
        Some(DEADLINE_EXCEEDED_MESSAGE)
    );
}

async fn timed_call(
    server: &TestServer,
    path: &str,
    request: TestRequest,
    headers: &[(&str, &str)],
) -> (RawResponse, Duration) {
    let started = Instant::now();
    let response = server
        .raw()
        .call(path, &[request], headers)
        .await
        .expect("call");
    (response, started.elapsed())
}

#[tokio::test]
async fn client_deadline_ends_every_rpc_kind_with_deadline_exceeded() {
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    for (i, path) in ALL_METHODS.into_iter().enumerate() {
        let slow = TestRequest::echo("x").sleep_ms(SLOW_MS);
        let (response, elapsed) = timed_call(&server, path, slow, &[("grpc-timeout", "50m")]).await;
        assert_deadline_exceeded(&response);
        assert!(elapsed < LONG_BEFORE, "{path}: answered after {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(45), "{path}: {elapsed:?}");
        // The handler was cancelled, not left running.
        let cancelled = server
            .service()
            .counts()
            .wait_cancelled(i as u64 + 1, Duration::from_secs(5))
            .await;
        assert_eq!(cancelled, i as u64 + 1, "{path}");
    }
    assert_eq!(server.service().counts().completed(), 0);
}

#[tokio::test]
async fn unary_expiry_is_trailers_only() {
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    for path in [UNARY, CLIENT_STREAM] {
        let slow = TestRequest::echo("x").sleep_ms(SLOW_MS);
        let (response, _) = timed_call(&server, path, slow, &[("grpc-timeout", "50m")]).await;
        assert!(response.is_trailers_only(), "{path}: {response:?}");
        assert!(response.trailers.is_none());
    }
}

#[tokio::test]
async fn server_policy_per_method_applies_without_a_client_deadline() {
    let mut layer = TimeoutLayer::new(Duration::from_secs(30));
    for path in ALL_METHODS {
        layer = layer.with_timeout(key(&path[1..]), Duration::from_millis(100));
    }
    let server = TestServer::start(Server::builder().layer(layer)).await;
    for path in ALL_METHODS {
        let slow = TestRequest::echo("x").sleep_ms(SLOW_MS);
        let (response, elapsed) = timed_call(&server, path, slow, &[]).await;
        assert_deadline_exceeded(&response);
        assert!(elapsed < LONG_BEFORE, "{path}: {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(95), "{path}: {elapsed:?}");
    }
}

#[tokio::test]
async fn per_service_policy_leaves_other_methods_alone() {
    let layer = TimeoutLayer::new(Duration::from_millis(100))
        .with_timeout(
            key("blueprint.test.v1.TestService/*"),
            Duration::from_secs(30),
        )
        .with_timeout(
            key("blueprint.test.v1.TestService/Unary"),
            Duration::from_millis(100),
        );
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let quick = TestRequest::echo("x").sleep_ms(200);
    let (response, _) = timed_call(&server, CLIENT_STREAM, quick.clone(), &[]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok), "{response:?}");
    let (response, _) = timed_call(&server, UNARY, quick, &[]).await;
    assert_deadline_exceeded(&response);
}

#[tokio::test]
async fn a_server_stream_running_at_the_deadline_ends_with_deadline_exceeded_trailers() {
    let layer = TimeoutLayer::new(Duration::from_millis(300));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let endless = TestRequest::echo("tick").count(1000).sleep_ms(20);
    let (response, elapsed) = timed_call(&server, SERVER_STREAM, endless, &[]).await;
    assert_deadline_exceeded(&response);
    assert!(!response.is_trailers_only());
    assert!(
        response.trailers.is_some(),
        "the status must be in the trailers"
    );
    let received = response.decode::<TestResponse>().expect("messages decode");
    assert!(
        (2..1000).contains(&received.len()),
        "{} messages",
        received.len()
    );
    // Every message that did arrive is intact and in order.
    for (i, message) in received.iter().enumerate() {
        assert_eq!(
            (message.index as usize, &message.payload[..]),
            (i, &b"tick"[..])
        );
    }
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let cancelled = server
        .service()
        .counts()
        .wait_cancelled(1, Duration::from_secs(5))
        .await;
    assert_eq!(cancelled, 1);
}

#[tokio::test]
async fn bidi_stream_with_a_client_deadline_ends_in_trailers_after_its_messages() {
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    let messages = [
        TestRequest::echo("a"),
        TestRequest::echo("b"),
        TestRequest::echo("c").sleep_ms(SLOW_MS),
    ];
    let started = Instant::now();
    let response = server
        .raw()
        .call(BIDI, &messages, &[("grpc-timeout", "200m")])
        .await
        .expect("call");
    assert!(started.elapsed() < LONG_BEFORE);
    assert_deadline_exceeded(&response);
    let received = response.decode::<TestResponse>().expect("decode");
    let payloads: Vec<_> = received.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
}

#[tokio::test]
async fn malformed_grpc_timeout_is_ignored_and_the_server_policy_still_applies() {
    let layer = TimeoutLayer::new(Duration::from_secs(20));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    for value in [
        "",
        "abc",
        "123456789m",
        "10s",
        "-5m",
        "1.5S",
        "5 S",
        "99999999",
    ] {
        let (response, _) = timed_call(
            &server,
            UNARY,
            TestRequest::echo("ok"),
            &[("grpc-timeout", value)],
        )
        .await;
        assert_http_200(&response);
        assert_eq!(response.grpc_status(), Some(Code::Ok), "{value:?}");
        // The handler saw the server's 20 s deadline, not the malformed one.
        let seen = response.decode::<TestResponse>().expect("decode")[0].deadline_remaining_ms;
        assert!((15_000..=20_000).contains(&seen), "{value:?}: {seen} ms");
    }

    let strict = TimeoutLayer::new(Duration::from_millis(100));
    let server = TestServer::start(Server::builder().layer(strict)).await;
    let (response, elapsed) = timed_call(
        &server,
        UNARY,
        TestRequest::echo("x").sleep_ms(SLOW_MS),
        &[("grpc-timeout", "123456789S")],
    )
    .await;
    assert_deadline_exceeded(&response);
    assert!(elapsed < LONG_BEFORE);
}

#[tokio::test]
async fn a_zero_timeout_expires_at_once() {
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    for value in ["0m", "0n", "00000000S"] {
        let (response, _) = timed_call(
            &server,
            UNARY,
            TestRequest::echo("x").sleep_ms(SLOW_MS),
            &[("grpc-timeout", value)],
        )
        .await;
        assert_deadline_exceeded(&response);
    }
}

#[tokio::test]
async fn the_handler_sees_the_effective_deadline() {
    let layer = TimeoutLayer::new(Duration::from_secs(2))
        .without_timeout(key("blueprint.test.v1.TestService/ClientStream"));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let remaining = |response: RawResponse| {
        assert_eq!(response.grpc_status(), Some(Code::Ok));
        response.decode::<TestResponse>().expect("decode")[0].deadline_remaining_ms
    };
    // Client's 10 s is longer than the server's 2 s: 2 s wins.
    let (response, _) = timed_call(
        &server,
        UNARY,
        TestRequest::echo("x"),
        &[("grpc-timeout", "10S")],
    )
    .await;
    assert!((1_000..=2_000).contains(&remaining(response)));
    // Client's 500 ms is shorter.
    let (response, _) = timed_call(
        &server,
        UNARY,
        TestRequest::echo("x"),
        &[("grpc-timeout", "500m")],
    )
    .await;
    assert!((100..=500).contains(&remaining(response)));
    // No server timeout for this method and no client deadline: none.
    let (response, _) = timed_call(&server, CLIENT_STREAM, TestRequest::echo("x"), &[]).await;
    assert_eq!(remaining(response), -1);
    // No server timeout, but the client's applies.
    let (response, _) = timed_call(
        &server,
        CLIENT_STREAM,
        TestRequest::echo("x"),
        &[("grpc-timeout", "3S")],
    )
    .await;
    assert!((2_000..=3_000).contains(&remaining(response)));
}

#[tokio::test]
async fn client_deadlines_answer_deadline_exceeded_not_tonics_cancelled() {
    // tonic's server runs its own timer on the same grpc-timeout outside every layer and
    // answers CANCELLED when it wins. Ours must win every time.
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    for _ in 0..100 {
        let (response, _) = timed_call(
            &server,
            UNARY,
            TestRequest::echo("x").sleep_ms(SLOW_MS),
            &[("grpc-timeout", "7m")],
        )
        .await;
        assert_deadline_exceeded(&response);
    }
}

#[tokio::test]
async fn every_rpc_kind_still_works_through_the_layer_with_tonics_client() {
    let layer = tower::ServiceBuilder::new().layer(TimeoutLayer::new(Duration::from_secs(5)));
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let mut client = server.client().await;

    let reply = client.unary(TestRequest::echo("one")).await.expect("unary");
    assert_eq!(reply.get_ref().payload, b"one");

    let mut stream = client
        .server_stream(TestRequest::echo("s").count(5))
        .await
        .expect("server stream")
        .into_inner();
    let mut n = 0;
    while let Some(message) = stream.message().await.expect("message") {
        assert_eq!(message.index, n);
        n += 1;
    }
    assert_eq!(n, 5);

    let upload = tokio_stream::iter(vec![TestRequest::echo("a"), TestRequest::echo("b")]);
    let reply = client.client_stream(upload).await.expect("client stream");
    assert_eq!(
        (reply.get_ref().payload.as_slice(), reply.get_ref().index),
        (&b"ab"[..], 2)
    );

    let chat = tokio_stream::iter(vec![TestRequest::echo("x"), TestRequest::echo("y")]);
    let mut replies = client.bidi(chat).await.expect("bidi").into_inner();
    let mut got = Vec::new();
    while let Some(message) = replies.message().await.expect("message") {
        got.push(message.payload);
    }
    assert_eq!(got, [b"x".to_vec(), b"y".to_vec()]);

    // Errors from the handler pass through untouched.
    let status = client
        .unary(TestRequest::echo("x").fail(Code::NotFound, "no such thing"))
        .await
        .expect_err("fails");
    assert_eq!(
        (status.code(), status.message()),
        (Code::NotFound, "no such thing")
    );
}

#[tokio::test]
async fn the_message_follows_the_callers_language_in_headers_and_trailers() {
    let server = TestServer::start(Server::builder().layer(TimeoutLayer::default())).await;
    for path in [UNARY, SERVER_STREAM] {
        let slow = TestRequest::echo("x").sleep_ms(SLOW_MS);
        let headers = [("grpc-timeout", "50m"), ("grpc-accept-language", "es")];
        let (response, _) = timed_call(&server, path, slow, &headers).await;
        assert_eq!(
            response.grpc_status(),
            Some(Code::DeadlineExceeded),
            "{path}"
        );
        // grpc-message is English; the caller's language is in a LocalizedMessage detail.
        assert_eq!(
            response.grpc_message().as_deref(),
            Some(DEADLINE_EXCEEDED_MESSAGE),
            "{path}"
        );
        assert_eq!(
            response.localized_message(),
            Some(("es".into(), "plazo excedido".into())),
            "{path}"
        );
        let english = [("grpc-timeout", "50m")];
        let slow = TestRequest::echo("x").sleep_ms(SLOW_MS);
        let (response, _) = timed_call(&server, path, slow, &english).await;
        assert_eq!(
            response.grpc_message().as_deref(),
            Some(DEADLINE_EXCEEDED_MESSAGE),
            "{path}"
        );
        assert_eq!(response.localized_message(), None, "{path}");
    }
}
