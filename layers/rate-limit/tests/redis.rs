//! The Redis backend against real Redis servers: the shared one on 127.0.0.1:6379 for the
//! shared quota, and one this test starts and kills itself for the outage.
#![cfg(feature = "redis")]

use fred::prelude::*;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_rate_limit::redis::{FailurePolicy, RedisBackend};
use tonic_blueprint_rate_limit::{KeySource, Quota, RateLimitLayer};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{OwnRedis, TestServer, UNARY, free_port, unique_prefix};

async fn client(url: &str) -> Client {
    let config = Config::from_url(url).expect("redis url");
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_millis(500);
        })
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .expect("client");
    client.init().await.expect("connect to redis");
    client
}

fn layer(backend: RedisBackend, quota: Quota) -> RateLimitLayer {
    RateLimitLayer::new(quota)
        .key(KeySource::Metadata("x-user-id".parse().expect("name")))
        // Replicas sharing Redis share the secret (each layer's own is random otherwise).
        .key_secret_text("shared by every replica")
        .redis(backend)
}

async fn code(server: &TestServer, user: &str) -> Option<Code> {
    let response = server
        .raw()
        .call(UNARY, &[TestRequest::echo("x")], &[("x-user-id", user)])
        .await
        .expect("call");
    assert_eq!(response.status, http::StatusCode::OK);
    response.grpc_status()
}

#[tokio::test]
async fn two_servers_sharing_redis_enforce_one_quota() {
    let prefix = unique_prefix("shared");
    let quota = Quota::per_minute(200);
    let a = TestServer::start(
        Server::builder().layer(layer(
            RedisBackend::new(client("redis://127.0.0.1:6379").await, &prefix)
                .timeout(Duration::from_secs(2)),
            quota,
        )),
    )
    .await;
    let b = TestServer::start(
        Server::builder().layer(layer(
            RedisBackend::new(client("redis://127.0.0.1:6379").await, &prefix)
                .timeout(Duration::from_secs(2)),
            quota,
        )),
    )
    .await;
    let mut admitted = 0;
    for round in 0..60 {
        // Ten calls at once, alternating between the replicas.
        let calls = (0..10).map(|i| {
            let server = if (round + i) % 2 == 0 { &a } else { &b };
            code(server, "shared-user")
        });
        for result in futures_util::future::join_all(calls).await {
            match result {
                Some(Code::Ok) => admitted += 1,
                Some(Code::ResourceExhausted) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(
        (198..=202).contains(&admitted),
        "{admitted} of 600 admitted for a quota of 200"
    );
    // Another caller is untouched.
    assert_eq!(code(&a, "someone-else").await, Some(Code::Ok));
}

#[tokio::test]
async fn a_redis_outage_fails_no_rpc_under_fail_open_and_limiting_resumes_after() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = redis.url();
    let backend = RedisBackend::new(client(&url).await, unique_prefix("outage"))
        .timeout(Duration::from_millis(100))
        .on_failure(FailurePolicy::FailOpen);
    let server =
        TestServer::start(Server::builder().layer(layer(backend, Quota::per_minute(5)))).await;

    for _ in 0..5 {
        assert_eq!(code(&server, "frank").await, Some(Code::Ok));
    }
    assert_eq!(
        code(&server, "frank").await,
        Some(Code::ResourceExhausted),
        "limiting works"
    );

    redis.kill();
    for i in 0..20 {
        let started = Instant::now();
        assert_eq!(
            code(&server, "frank").await,
            Some(Code::Ok),
            "call {i} during the outage"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the outage stalled call {i}"
        );
    }

    let _redis = OwnRedis::start(port);
    // The client reconnects by itself; once it has, the (empty) Redis counts again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = false;
    while Instant::now() < deadline {
        if code(&server, "frank").await == Some(Code::ResourceExhausted) {
            refused = true;
            break;
        }
    }
    assert!(refused, "limiting did not resume after Redis came back");
}

/// A flood of made-up keys does not grow Redis without bound: past the in-process capacity,
/// new keys count under their address's overflow key, and every key written expires.
#[tokio::test]
async fn a_key_flood_leaves_a_bounded_number_of_expiring_keys_in_redis() {
    let prefix = unique_prefix("flood");
    let redis = client("redis://127.0.0.1:6379").await;
    let capacity = 50;
    let server = TestServer::start(
        Server::builder().layer(
            layer(
                RedisBackend::new(redis.clone(), &prefix).timeout(Duration::from_secs(2)),
                Quota::per_minute(5),
            )
            .capacity(capacity),
        ),
    )
    .await;
    let flood = 3 * tonic_blueprint_rate_limit::SWEEP_EVERY as usize;
    for i in 0..flood {
        code(&server, &format!("random-{i}")).await;
    }
    let keys: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}*")])
        .await
        .expect("KEYS");
    // The capacity, the keys added before the limiter next checks its size, and the overflow
    // key of the one flooding address.
    let bound = capacity + tonic_blueprint_rate_limit::SWEEP_EVERY as usize + 1;
    assert!(
        keys.len() <= bound,
        "{} keys in Redis after {flood} made-up ones (bound {bound})",
        keys.len()
    );
    for key in keys.iter().take(20) {
        let ttl: i64 = redis
            .custom(fred::cmd!("PTTL"), vec![key.clone()])
            .await
            .expect("PTTL");
        assert!(ttl > 0, "{key} never expires ({ttl})");
    }
}
