//! The Redis and two-tier stores against real Redis servers: the shared one for sharing
//! entries between replicas, and one this test starts and kills itself for the outage.
#![cfg(feature = "redis")]

use fred::prelude::*;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_cache::{MokaStore, RedisStore, ResponseCacheLayer, TwoTierStore};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{OwnRedis, RawResponse, TestServer, UNARY, free_port, unique_prefix};

const METHOD: &str = "blueprint.test.v1.TestService/Unary";

async fn client(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).expect("url"))
        .with_connection_config(|c| c.connection_timeout = Duration::from_millis(500))
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .expect("client");
    client.init().await.expect("connect to redis");
    client
}

async fn call(server: &TestServer, payload: &str) -> RawResponse {
    let response = server
        .raw()
        .call(UNARY, &[TestRequest::echo(payload)], &[])
        .await
        .expect("call");
    assert_eq!(response.status, http::StatusCode::OK);
    response
}

fn x_cache(response: &RawResponse) -> &str {
    response.header("x-cache")
}

#[tokio::test]
async fn replicas_share_entries_through_redis_and_they_expire() {
    let prefix = unique_prefix("cache-shared");
    let layer = |client| {
        ResponseCacheLayer::new()
            .cache(METHOD.parse().expect("key"), Duration::from_millis(500))
            .store(RedisStore::new(client, prefix.clone()))
    };
    let a =
        TestServer::start(Server::builder().layer(layer(client("redis://127.0.0.1:6379").await)))
            .await;
    let b =
        TestServer::start(Server::builder().layer(layer(client("redis://127.0.0.1:6379").await)))
            .await;
    assert_eq!(x_cache(&call(&a, "shared").await), "miss");
    let from_b = call(&b, "shared").await;
    assert_eq!(
        (x_cache(&from_b), from_b.grpc_status()),
        ("hit", Some(Code::Ok))
    );
    assert_eq!(
        b.service().counts().started(),
        0,
        "replica B never ran the handler"
    );
    tokio::time::sleep(Duration::from_millis(650)).await; // the Redis TTL itself is under test
    assert_eq!(x_cache(&call(&b, "shared").await), "miss");
}

#[tokio::test]
async fn two_tier_serves_local_hits_and_fills_from_redis() {
    let prefix = unique_prefix("cache-two-tier");
    let layer = |client| {
        let store = TwoTierStore::new(
            MokaStore::new(1 << 20),
            RedisStore::new(client, prefix.clone()),
            Duration::from_secs(30),
        );
        ResponseCacheLayer::new()
            .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
            .store(store)
    };
    let a =
        TestServer::start(Server::builder().layer(layer(client("redis://127.0.0.1:6379").await)))
            .await;
    let b =
        TestServer::start(Server::builder().layer(layer(client("redis://127.0.0.1:6379").await)))
            .await;
    assert_eq!(x_cache(&call(&a, "tiered").await), "miss");
    assert_eq!(x_cache(&call(&b, "tiered").await), "hit");
    assert_eq!(x_cache(&call(&b, "tiered").await), "hit");
    assert_eq!(
        a.service().counts().started() + b.service().counts().started(),
        1
    );
}

#[tokio::test]
async fn a_redis_killed_mid_test_fails_no_rpc() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let store = RedisStore::new(client(&redis.url()).await, unique_prefix("cache-outage"));
    let layer = ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
        .lookup_timeout(Duration::from_millis(100))
        .store(store);
    let server = TestServer::start(Server::builder().layer(layer)).await;
    assert_eq!(x_cache(&call(&server, "k").await), "miss");
    assert_eq!(x_cache(&call(&server, "k").await), "hit");

    redis.kill();
    for i in 0..10 {
        let started = Instant::now();
        let response = call(&server, "k").await;
        assert_eq!(
            response.grpc_status(),
            Some(Code::Ok),
            "call {i} during the outage"
        );
        assert_eq!(x_cache(&response), "miss", "served by the handler");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "call {i} stalled"
        );
    }

    // Back up (empty): the cache fills again without a restart.
    let _redis = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut hit = false;
    while Instant::now() < deadline {
        if x_cache(&call(&server, "after").await) == "hit" {
            hit = true;
            break;
        }
    }
    assert!(hit, "caching did not resume after Redis came back");
}

#[tokio::test]
async fn a_tag_invalidated_on_one_replica_is_gone_for_the_other() {
    let prefix = unique_prefix("cache-tags");
    let layer = |client| {
        ResponseCacheLayer::new()
            .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
            .store(RedisStore::new(client, prefix.clone()))
    };
    let layer_a = layer(client("redis://127.0.0.1:6379").await);
    let invalidator = layer_a.invalidator();
    let a = TestServer::start(Server::builder().layer(layer_a)).await;
    let b =
        TestServer::start(Server::builder().layer(layer(client("redis://127.0.0.1:6379").await)))
            .await;
    let request = || TestRequest::echo("tagged").respond_with("x-cache-tags", "payment:42");
    let call_with = |server: &TestServer| {
        let raw = server.raw();
        async move { raw.call(UNARY, &[request()], &[]).await.expect("call") }
    };
    assert_eq!(x_cache(&call_with(&a).await), "miss");
    assert_eq!(x_cache(&call_with(&b).await), "hit");
    assert_eq!(
        invalidator
            .invalidate_tag("payment:42")
            .await
            .expect("invalidate"),
        1
    );
    assert_eq!(x_cache(&call_with(&b).await), "miss");
}
