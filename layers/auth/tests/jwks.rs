//! Keys from a JWKS served over a real socket: rotation mid-test, refresh failures, and a
//! flood of made-up `kid`s.

mod common;

use common::*;
use std::time::Duration;
use tonic::Code;
use tonic_blueprint_auth::{AuthLayer, Jwks, JwksOptions, JwtVerifier};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestServer, UNARY};

async fn code(server: &TestServer, token: &str) -> Option<Code> {
    server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[("authorization", &bearer(token))],
        )
        .await
        .expect("call")
        .grpc_status()
}

fn options() -> JwksOptions {
    let mut options = JwksOptions::default();
    // No background refresh during the test: only the early refreshes it provokes.
    options.refresh_interval = Duration::from_secs(3600);
    options.min_early_refresh = Duration::from_secs(3600);
    options.retry_backoff = Duration::from_millis(10);
    options
}

#[tokio::test]
async fn keys_rotate_mid_test_and_calls_keep_working() {
    let (key1, jwk1) = es256_key("k1");
    let (key2, jwk2) = es256_key("k2");
    let jwks_server = JwksServer::start(vec![jwk1]).await;
    let jwks = Jwks::fetch_with(&jwks_server.url(), options())
        .await
        .expect("fetch");
    let (server, seen) = server(AuthLayer::new().jwt(JwtVerifier::new().jwks(jwks))).await;

    assert_eq!(
        code(&server, &es256("k1", &key1, &claims("alice"))).await,
        Some(Code::Ok)
    );
    assert_eq!(jwks_server.fetches(), 1);

    // The issuer rotates: k2 in, k1 out. The first token signed with k2 makes the layer
    // refresh the set once, and is accepted.
    jwks_server.set_keys(vec![jwk2]);
    assert_eq!(
        code(&server, &es256("k2", &key2, &claims("bob"))).await,
        Some(Code::Ok)
    );
    assert_eq!(jwks_server.fetches(), 2);
    assert_eq!(
        code(&server, &es256("k2", &key2, &claims("bob"))).await,
        Some(Code::Ok)
    );
    assert_eq!(jwks_server.fetches(), 2, "a known kid needs no fetch");

    // k1 is gone from the set: a token it signs now no longer verifies (one it verified
    // before is remembered until the token cache's TTL at most).
    assert_eq!(
        code(&server, &es256("k1", &key1, &claims("carol"))).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            Some("alice".to_owned()),
            Some("bob".to_owned()),
            Some("bob".to_owned())
        ]
    );
}

#[tokio::test]
async fn made_up_kids_cost_at_most_one_fetch_per_interval() {
    let (key, jwk) = es256_key("real");
    let jwks_server = JwksServer::start(vec![jwk]).await;
    let jwks = Jwks::fetch_with(&jwks_server.url(), options())
        .await
        .expect("fetch");
    let (server, _) = server(AuthLayer::new().jwt(JwtVerifier::new().jwks(jwks))).await;
    for i in 0..30 {
        let token = es256(&format!("made-up-{i}"), &key, &claims("mallory"));
        assert_eq!(code(&server, &token).await, Some(Code::Unauthenticated));
    }
    assert_eq!(
        jwks_server.fetches(),
        2,
        "the start-up fetch and one early refresh"
    );
    assert_eq!(
        code(&server, &es256("real", &key, &claims("alice"))).await,
        Some(Code::Ok)
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_keys() {
    let (key, jwk) = es256_key("k1");
    let jwks_server = JwksServer::start(vec![jwk]).await;
    let jwks = Jwks::fetch_with(&jwks_server.url(), options())
        .await
        .expect("fetch");
    let (server, _) = server(AuthLayer::new().jwt(JwtVerifier::new().jwks(jwks.clone()))).await;

    jwks_server.fail_with(500);
    let error = jwks.refresh().await.expect_err("the issuer answers 500");
    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(
        jwks_server.fetches(),
        1 + 3,
        "bounded retries: three attempts"
    );
    assert_eq!(jwks.len(), 1);
    assert_eq!(
        code(&server, &es256("k1", &key, &claims("alice"))).await,
        Some(Code::Ok)
    );
}

#[tokio::test]
async fn an_unreachable_jwks_fails_start_up_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    drop(listener);
    let mut options = options();
    options.attempts = 2;
    let error = Jwks::fetch_with(&url, options)
        .await
        .expect_err("nothing listens");
    assert!(
        error.to_string().contains("could not be fetched"),
        "{error}"
    );
    assert!(Jwks::fetch("ftp://example.test/jwks").await.is_err());
}
