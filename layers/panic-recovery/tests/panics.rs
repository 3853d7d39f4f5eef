//! The PanicRecovery layer on a real tonic server over a real socket.

use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_panic_recovery::{INTERNAL_MESSAGE, PanicRecoveryLayer, RecoveredPanic};
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{
    ALL_METHODS, BIDI, PANIC_TEXT, RawResponse, SERVER_STREAM, TestServer, UNARY,
};

fn assert_internal_without_leak(response: &RawResponse, context: &str) {
    assert_eq!(
        response.status,
        http::StatusCode::OK,
        "{context}: {response:?}"
    );
    assert_eq!(
        response.grpc_status(),
        Some(Code::Internal),
        "{context}: {response:?}"
    );
    assert_eq!(
        response.grpc_message().as_deref(),
        Some(INTERNAL_MESSAGE),
        "{context}"
    );
    let text = response.all_text();
    assert!(
        !text.contains("hunter2"),
        "{context}: panic text leaked: {text}"
    );
    assert!(
        !text.contains("secret"),
        "{context}: panic text leaked: {text}"
    );
}

async fn echo_works(server: &TestServer, path: &str) {
    let response = server
        .raw()
        .call(path, &[TestRequest::echo("after")], &[])
        .await
        .expect("call after the panic");
    assert_eq!(
        response.grpc_status(),
        Some(Code::Ok),
        "{path}: {response:?}"
    );
    let messages = response.decode::<TestResponse>().expect("decode");
    assert_eq!(messages[0].payload, b"after", "{path}");
}

#[tokio::test]
async fn a_panic_before_the_first_response_is_internal_and_the_next_call_succeeds() {
    assert!(PANIC_TEXT.contains("hunter2"));
    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;
    for path in ALL_METHODS {
        let response = server
            .raw()
            .call(path, &[TestRequest::echo("x").panic()], &[])
            .await
            .expect("the server answers instead of resetting the stream");
        assert_internal_without_leak(&response, path);
        assert!(response.messages.is_empty(), "{path}");
        echo_works(&server, path).await;
    }
}

#[tokio::test]
async fn handler_future_panics_are_trailers_only() {
    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;
    for path in [UNARY, SERVER_STREAM] {
        let response = server
            .raw()
            .call(path, &[TestRequest::echo("x").panic()], &[])
            .await
            .expect("call");
        assert!(response.is_trailers_only(), "{path}: {response:?}");
    }
}

#[tokio::test]
async fn a_mid_stream_panic_ends_the_stream_with_internal_trailers_after_the_sent_messages() {
    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;

    let response = server
        .raw()
        .call(
            SERVER_STREAM,
            // The pause lets tonic flush the first message before the panic: tonic's encoder
            // batches messages that are ready together, and a panic unwinds that batch.
            &[TestRequest::echo("first")
                .count(5)
                .sleep_ms(10)
                .panic()
                .mid_stream()],
            &[],
        )
        .await
        .expect("call");
    assert_internal_without_leak(&response, "server stream");
    assert!(response.trailers.is_some(), "status must come in trailers");
    let messages = response.decode::<TestResponse>().expect("decode");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].payload, b"first");
    echo_works(&server, SERVER_STREAM).await;

    let response = server
        .raw()
        .call(
            BIDI,
            &[
                TestRequest::echo("a"),
                TestRequest::echo("b"),
                TestRequest::echo("c").sleep_ms(10).panic(),
            ],
            &[],
        )
        .await
        .expect("call");
    assert_internal_without_leak(&response, "bidi");
    let payloads: Vec<_> = response
        .decode::<TestResponse>()
        .expect("decode")
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
    echo_works(&server, BIDI).await;
}

#[tokio::test]
async fn tonic_clients_see_internal_with_the_generic_message() {
    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;
    let mut client = server.client().await;

    let status = client
        .unary(TestRequest::echo("x").panic())
        .await
        .expect_err("panics");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Internal, INTERNAL_MESSAGE)
    );

    let mut stream = client
        .server_stream(
            TestRequest::echo("x")
                .count(3)
                .sleep_ms(10)
                .panic()
                .mid_stream(),
        )
        .await
        .expect("headers arrive")
        .into_inner();
    let first = stream.message().await.expect("first message");
    assert!(first.is_some());
    let status = stream.message().await.expect_err("then the panic");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Internal, INTERNAL_MESSAGE)
    );

    let upload = tokio_stream::iter(vec![TestRequest::echo("a"), TestRequest::echo("b").panic()]);
    let status = client.client_stream(upload).await.expect_err("panics");
    assert_eq!(status.code(), Code::Internal);

    // Many panics in a row: the server keeps serving.
    for _ in 0..50 {
        let status = client
            .unary(TestRequest::echo("x").panic())
            .await
            .expect_err("panics");
        assert_eq!(status.code(), Code::Internal);
    }
    let reply = client
        .unary(TestRequest::echo("alive"))
        .await
        .expect("still serving");
    assert_eq!(reply.get_ref().payload, b"alive");
}

#[tokio::test]
async fn a_custom_hook_builds_the_status() {
    let layer = PanicRecoveryLayer::with_status(|panic: &RecoveredPanic<'_>| {
        tonic::Status::unavailable(format!("{} failed, retry later", panic.rpc.method()))
    });
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let response = server
        .raw()
        .call(
            SERVER_STREAM,
            &[TestRequest::echo("x").count(2).panic().mid_stream()],
            &[],
        )
        .await
        .expect("call");
    assert_eq!(response.grpc_status(), Some(Code::Unavailable));
    assert_eq!(
        response.grpc_message().as_deref(),
        Some("ServerStream failed, retry later")
    );
}

#[tokio::test]
async fn a_hook_that_panics_itself_falls_back_to_internal() {
    let layer = PanicRecoveryLayer::with_status(|_: &RecoveredPanic<'_>| -> tonic::Status {
        panic!("the hook is broken too")
    });
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let response = server
        .raw()
        .call(UNARY, &[TestRequest::echo("x").panic()], &[])
        .await
        .expect("call");
    assert_internal_without_leak(&response, "broken hook");
    echo_works(&server, UNARY).await;
}

#[tokio::test]
async fn errors_and_successes_pass_through_untouched() {
    let layer = tower::ServiceBuilder::new().layer(PanicRecoveryLayer::new());
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let mut client = server.client().await;
    let status = client
        .unary(TestRequest::echo("x").fail(Code::AlreadyExists, "exists"))
        .await
        .expect_err("fails");
    assert_eq!(
        (status.code(), status.message()),
        (Code::AlreadyExists, "exists")
    );
    let mut stream = client
        .server_stream(TestRequest::echo("s").count(4))
        .await
        .expect("stream")
        .into_inner();
    let mut n = 0;
    while stream.message().await.expect("message").is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
}

#[tokio::test]
async fn the_generic_message_follows_the_callers_language() {
    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;
    for request in [
        TestRequest::echo("x").panic(),
        TestRequest::echo("x").count(2).panic().mid_stream(),
    ] {
        let response = server
            .raw()
            .call(
                SERVER_STREAM,
                std::slice::from_ref(&request),
                &[("accept-language", "es")],
            )
            .await
            .expect("call");
        assert_eq!(response.grpc_status(), Some(Code::Internal));
        // grpc-message stays English; the caller's language is in a LocalizedMessage.
        assert_eq!(response.grpc_message().as_deref(), Some(INTERNAL_MESSAGE));
        assert_eq!(
            response.localized_message(),
            Some(("es".into(), "error interno".into()))
        );
        assert!(!response.all_text().contains("hunter2"));
        let english = server
            .raw()
            .call(SERVER_STREAM, &[request], &[])
            .await
            .expect("call");
        assert_eq!(english.grpc_message().as_deref(), Some(INTERNAL_MESSAGE));
        assert_eq!(english.localized_message(), None);
    }
}
