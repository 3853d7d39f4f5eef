//! A Redis of the test's own hung with SIGSTOP (connections open, nothing answers): the
//! layer, its invalidator and the cache client each give up within their bounds and within
//! the call's deadline, and everything works again once Redis does.
#![cfg(feature = "redis")]

use fred::prelude::*;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_cache::{CacheClient, RedisStore, ResponseCacheLayer};
use tonic_blueprint_core::{Deadline, DeadlineSource};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{OwnRedis, TestServer, UNARY, free_port, unique_prefix};

const METHOD: &str = "blueprint.test.v1.TestService/Unary";

async fn redis(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).expect("url"))
        .with_connection_config(|c| c.connection_timeout = Duration::from_millis(500))
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .expect("client");
    client.init().await.expect("connect to redis");
    client
}

async fn elapsed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = future.await;
    (value, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_each_operation_its_bound_and_no_more() {
    let own = OwnRedis::start(free_port());
    let store = RedisStore::new(redis(&own.url()).await, unique_prefix("cache-hung"));
    let layer = ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
        .store(store.clone());
    let invalidator = layer.invalidator();
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let cache = CacheClient::new(store, "svc");
    let call = || async {
        let response = server
            .raw()
            .call(UNARY, &[TestRequest::echo("k")], &[])
            .await
            .expect("call");
        assert_eq!(response.grpc_status(), Some(Code::Ok));
        response.header("x-cache").to_owned()
    };
    assert_eq!(call().await, "miss");
    assert_eq!(call().await, "hit");

    own.pause();
    // The layer: a lookup gives up after 50 ms and the handler answers; nothing is stored.
    for _ in 0..3 {
        let (x_cache, took) = elapsed(call()).await;
        assert_eq!(x_cache, "miss");
        assert!(took < Duration::from_millis(400), "a call took {took:?}");
    }
    // The invalidator: 100 ms by default, less when the call's deadline is nearer.
    let (result, took) = elapsed(invalidator.invalidate_tag("user:7")).await;
    assert!(result.is_err());
    assert!(
        (Duration::from_millis(90)..Duration::from_millis(400)).contains(&took),
        "invalidation took {took:?}"
    );
    let near = Deadline::after(Duration::from_millis(40), DeadlineSource::Client);
    let (result, took) = elapsed(
        invalidator
            .with_deadline(Some(near))
            .invalidate_tag("user:7"),
    )
    .await;
    assert!(result.is_err());
    assert!(
        took < Duration::from_millis(90),
        "past the deadline: {took:?}"
    );
    // The client: three tries of 100 ms with 100 and 200 ms between; within a deadline, no
    // retry that could not end before it.
    let (result, took) = elapsed(cache.get("k")).await;
    assert_eq!(result.expect_err("hung").attempts, 3);
    assert!(
        took < Duration::from_millis(1_200),
        "three tries took {took:?}"
    );
    let near = Deadline::after(Duration::from_millis(150), DeadlineSource::Client);
    let (result, took) = elapsed(cache.with_deadline(Some(near)).get("k")).await;
    assert!(result.is_err());
    assert!(
        took < Duration::from_millis(150),
        "past the deadline: {took:?}"
    );
    eprintln!("hung Redis: a client read within a 150 ms deadline gave up after {took:?}");

    own.resume();
    let back = Instant::now() + Duration::from_secs(10);
    while call().await != "hit" {
        assert!(Instant::now() < back, "caching did not resume");
    }
    assert_eq!(invalidator.invalidate_method(METHOD).await.expect("up"), 1);
    assert_eq!(call().await, "miss");
}
