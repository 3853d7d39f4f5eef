//! The preset stack on a real tonic server: every RPC kind passes through all seven layers,
//! and through a stack with layers removed (each removed layer's branch passes the call
//! straight on).
#![cfg(feature = "server")]

use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::PresetStack;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{
    BIDI, CLIENT_STREAM, FILE_DESCRIPTOR_SET, SERVER_STREAM, TestServer, UNARY,
};

fn full() -> PresetStack {
    let config = Loader::from_pairs([("RATE_LIMIT_PER_MINUTE", "1000")])
        .load()
        .expect("config");
    PresetStack::from_config(&config, FILE_DESCRIPTOR_SET).expect("stack")
}

/// Each kind answers OK with what the handler sent; `echoes_id` says whether the logging
/// layer's `x-request-id` comes back.
async fn every_kind_passes(server: &TestServer, echoes_id: bool) {
    let raw = server.raw();
    let cases: [(&str, Vec<TestRequest>, usize); 4] = [
        (UNARY, vec![TestRequest::echo("one")], 1),
        (SERVER_STREAM, vec![TestRequest::echo("many").count(3)], 3),
        (
            CLIENT_STREAM,
            vec![TestRequest::echo("a"), TestRequest::echo("b")],
            1,
        ),
        (
            BIDI,
            vec![TestRequest::echo("x"), TestRequest::echo("y")],
            2,
        ),
    ];
    for (path, requests, answers) in cases {
        let response = raw
            .call(path, &requests, &[("x-user-id", "preset")])
            .await
            .expect("call");
        assert_eq!(
            response.status,
            http::StatusCode::OK,
            "{path}: {response:?}"
        );
        assert_eq!(
            response.grpc_status(),
            Some(Code::Ok),
            "{path}: {response:?}"
        );
        assert_eq!(response.messages.len(), answers, "{path}: {response:?}");
        assert_eq!(
            response.headers.contains_key("x-request-id"),
            echoes_id,
            "{path}: {response:?}"
        );
    }
}

#[tokio::test]
async fn every_rpc_kind_passes_all_seven_layers() {
    let server = TestServer::start(Server::builder().layer(full())).await;
    every_kind_passes(&server, true).await;

    // Panic recovery inside the stack: INTERNAL, trailers-only, no panic text.
    let panicked = server
        .raw()
        .call(UNARY, &[TestRequest::echo("boom").panic()], &[])
        .await
        .expect("call");
    assert_eq!(panicked.grpc_status(), Some(Code::Internal), "{panicked:?}");
    assert!(panicked.is_trailers_only(), "{panicked:?}");
    assert!(
        !panicked
            .all_text()
            .contains(tonic_blueprint_testkit::PANIC_TEXT),
        "{panicked:?}"
    );
    assert_eq!(server.service().counts().started(), 5);
}

#[tokio::test]
async fn a_stack_with_layers_removed_still_serves_every_kind() {
    let mut stack = full();
    stack.logging = None;
    #[cfg(feature = "validation")]
    {
        stack.validation = None;
    }
    stack.cache = None;
    stack.timeout = None;
    let server = TestServer::start(Server::builder().layer(stack)).await;
    every_kind_passes(&server, false).await;

    let server = TestServer::start(Server::builder().layer(PresetStack::empty())).await;
    every_kind_passes(&server, false).await;
}
