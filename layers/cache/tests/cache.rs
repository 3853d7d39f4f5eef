//! The ResponseCache layer with the in-process store, on a real server over a real socket.

use std::time::Duration;
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_cache::ResponseCacheLayer;
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{RawResponse, SERVER_STREAM, TestServer, UNARY};

const METHOD: &str = "blueprint.test.v1.TestService/Unary";

async fn server(layer: ResponseCacheLayer) -> TestServer {
    TestServer::start(Server::builder().layer(layer)).await
}

async fn call(server: &TestServer, request: TestRequest, headers: &[(&str, &str)]) -> RawResponse {
    let response = server
        .raw()
        .call(UNARY, &[request], headers)
        .await
        .expect("call");
    assert_eq!(response.status, http::StatusCode::OK);
    response
}

fn x_cache(response: &RawResponse) -> &str {
    response.header("x-cache")
}

fn payload(response: &RawResponse) -> Vec<u8> {
    response.decode::<TestResponse>().expect("decode")[0]
        .payload
        .clone()
}

#[tokio::test]
async fn a_repeated_request_is_served_from_the_cache_with_its_trailers() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    let first = call(&server, TestRequest::echo("one"), &[]).await;
    assert_eq!(
        (x_cache(&first), first.grpc_status()),
        ("miss", Some(Code::Ok))
    );
    let second = call(&server, TestRequest::echo("one"), &[]).await;
    assert_eq!(
        (x_cache(&second), second.grpc_status()),
        ("hit", Some(Code::Ok))
    );
    assert!(
        second.trailers.is_some(),
        "the status comes in trailers, as the handler sent it"
    );
    assert_eq!(payload(&second), b"one");
    assert_eq!(server.service().counts().started(), 1);
    // Another request message is another key.
    let other = call(&server, TestRequest::echo("two"), &[]).await;
    assert_eq!(
        (x_cache(&other), payload(&other)),
        ("miss", b"two".to_vec())
    );
    assert_eq!(server.service().counts().started(), 2);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_millis(300)),
    )
    .await;
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("t"), &[]).await),
        "miss"
    );
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("t"), &[]).await),
        "hit"
    );
    tokio::time::sleep(Duration::from_millis(450)).await; // the TTL itself is under test
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("t"), &[]).await),
        "miss"
    );
}

#[tokio::test]
async fn callers_with_different_vary_metadata_never_share_a_response() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    let alice = [("x-user-id", "alice")];
    let bob = [("x-user-id", "bob")];
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("me"), &alice).await),
        "miss"
    );
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("me"), &bob).await),
        "miss"
    );
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("me"), &alice).await),
        "hit"
    );
    let with_token = [("authorization", "Bearer a")];
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("me"), &with_token).await),
        "miss"
    );
}

#[tokio::test]
async fn errors_are_never_cached() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    for _ in 0..2 {
        let response = call(
            &server,
            TestRequest::echo("x").fail(Code::NotFound, "nope"),
            &[],
        )
        .await;
        assert_eq!(response.grpc_status(), Some(Code::NotFound));
        assert_eq!(x_cache(&response), "miss");
    }
    assert_eq!(server.service().counts().started(), 2);
}

#[tokio::test]
async fn concurrent_misses_for_one_key_run_the_handler_once() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    let calls = (0..20).map(|_| call(&server, TestRequest::echo("same").sleep_ms(200), &[]));
    let responses = futures_util::future::join_all(calls).await;
    assert_eq!(server.service().counts().started(), 1);
    let misses = responses.iter().filter(|r| x_cache(r) == "miss").count();
    assert_eq!(misses, 1);
    for response in &responses {
        assert_eq!(
            (response.grpc_status(), payload(response)),
            (Some(Code::Ok), b"same".to_vec())
        );
    }
}

#[tokio::test]
async fn no_cache_skips_the_lookup_and_refreshes_the_entry() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    call(&server, TestRequest::echo("n"), &[]).await;
    let fresh = call(
        &server,
        TestRequest::echo("n"),
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(x_cache(&fresh), "miss");
    assert_eq!(server.service().counts().started(), 2);
    assert_eq!(
        x_cache(&call(&server, TestRequest::echo("n"), &[]).await),
        "hit"
    );
}

#[tokio::test]
async fn large_responses_are_served_whole_but_not_stored() {
    let layer = ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
        .max_entry_bytes(64);
    let server = server(layer).await;
    let big = vec![b'z'; 500];
    for _ in 0..2 {
        let response = call(&server, TestRequest::echo(big.clone()), &[]).await;
        assert_eq!(response.grpc_status(), Some(Code::Ok));
        assert_eq!(payload(&response), big);
        assert_eq!(x_cache(&response), "miss");
    }
    assert_eq!(server.service().counts().started(), 2);
}

#[tokio::test]
async fn methods_not_opted_in_pass_through() {
    let server = server(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60)),
    )
    .await;
    let response = server
        .raw()
        .call(SERVER_STREAM, &[TestRequest::echo("s").count(3)], &[])
        .await
        .expect("call");
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    assert_eq!(response.messages.len(), 3);
    assert!(response.headers.get("x-cache").is_none());
}

#[tokio::test]
async fn tags_methods_and_single_requests_can_be_invalidated() {
    let layer =
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(60));
    let invalidator = layer.invalidator();
    let server = server(layer).await;
    let one = || TestRequest::echo("p1").respond_with("x-cache-tags", "payment:1, user:7");
    let two = || TestRequest::echo("p2").respond_with("x-cache-tags", "payment:2");
    let first = call(&server, one(), &[]).await;
    assert!(
        first.headers.get("x-cache-tags").is_none(),
        "tags never leave the server"
    );
    call(&server, two(), &[]).await;
    assert_eq!(x_cache(&call(&server, one(), &[]).await), "hit");
    assert_eq!(x_cache(&call(&server, two(), &[]).await), "hit");

    assert_eq!(
        invalidator
            .invalidate_tag("payment:1")
            .await
            .expect("invalidate"),
        1
    );
    let after = call(&server, one(), &[]).await;
    assert_eq!(x_cache(&after), "miss");
    assert!(after.headers.get("x-cache-tags").is_none());
    assert_eq!(
        x_cache(&call(&server, two(), &[]).await),
        "hit",
        "other tags untouched"
    );

    invalidator
        .invalidate_method(METHOD)
        .await
        .expect("invalidate");
    assert_eq!(x_cache(&call(&server, one(), &[]).await), "miss");
    assert_eq!(x_cache(&call(&server, two(), &[]).await), "miss");

    let message = prost::Message::encode_to_vec(&two());
    invalidator
        .invalidate_request(METHOD, &message, &http::HeaderMap::new(), None)
        .await
        .expect("invalidate");
    assert_eq!(x_cache(&call(&server, two(), &[]).await), "miss");
    assert_eq!(x_cache(&call(&server, one(), &[]).await), "hit");
}
