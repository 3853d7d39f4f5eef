//! Two-tier invalidation across two server instances: shared Redis, local moka tiers kept for
//! an hour, invalidations broadcast over the real NATS server.
#![cfg(feature = "nats")]

use fred::prelude::*;
use std::time::{Duration, Instant};
use tonic::transport::Server;
use tonic_blueprint_cache::{MokaStore, RedisStore, ResponseCacheLayer, TwoTierStore};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{RawResponse, TestServer, UNARY, unique_prefix};

const METHOD: &str = "blueprint.test.v1.TestService/Unary";

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn replica(prefix: &str, subject: &str) -> ResponseCacheLayer {
    let redis = Client::new(
        Config::from_url("redis://127.0.0.1:6379").expect("url"),
        None,
        None,
        None,
    );
    redis.init().await.expect("redis on 127.0.0.1:6379");
    let nats = async_nats::connect(nats_url()).await.expect("NATS");
    let store = TwoTierStore::new(
        MokaStore::default(),
        RedisStore::new(redis, prefix),
        // Local copies would outlive the test: only the broadcast can drop them.
        Duration::from_secs(3600),
    )
    .broadcast_over_nats(nats, subject)
    .await
    .expect("subscribe");
    ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(600))
        .store(store)
}

async fn call(server: &TestServer, payload: &str) -> RawResponse {
    let request = TestRequest::echo(payload).respond_with("x-cache-tags", "payment:42");
    server
        .raw()
        .call(UNARY, &[request], &[])
        .await
        .expect("call")
}

#[tokio::test]
async fn an_invalidation_on_one_replica_drops_the_others_local_copy() {
    let prefix = unique_prefix("cache-nats");
    let subject = format!("test.cache.{}.invalidated", prefix.replace([':', '.'], "_"));
    let layer_a = replica(&prefix, &subject).await;
    let invalidator = layer_a.invalidator();
    let a = TestServer::start(Server::builder().layer(layer_a)).await;
    let b = TestServer::start(Server::builder().layer(replica(&prefix, &subject).await)).await;
    let other = call(&b, "not tagged with the same key").await;
    assert_eq!(other.header("x-cache"), "miss");

    assert_eq!(call(&a, "p42").await.header("x-cache"), "miss");
    assert_eq!(call(&b, "p42").await.header("x-cache"), "hit");
    // From b's local tier now: even with Redis emptied behind it, b keeps hitting.
    assert_eq!(call(&b, "p42").await.header("x-cache"), "hit");

    assert_eq!(
        invalidator
            .invalidate_tag("payment:42")
            .await
            .expect("invalidate"),
        2,
        "both entries tagged payment:42"
    );
    // Delivery to b is asynchronous: b answers from its local copy until the message lands.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = call(&b, "p42").await;
        if response.header("x-cache") == "miss" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b still serves its local copy 5 s after the invalidation"
        );
    }
    assert_eq!(b.service().counts().started(), 2, "b's handler ran again");
}
