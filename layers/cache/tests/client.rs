//! The cache client against real Redis servers: batches in one round trip, retries with
//! backoff through an outage of a Redis this test starts and kills itself.
#![cfg(feature = "redis")]

use bytes::Bytes;
use fred::prelude::*;
use std::time::{Duration, Instant};
use tonic_blueprint_cache::{CacheClient, MokaStore, RedisStore, Retry, TwoTierStore};
use tonic_blueprint_testkit::{OwnRedis, free_port, unique_prefix};

async fn client(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).expect("url"))
        .with_connection_config(|c| c.connection_timeout = Duration::from_millis(200))
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .expect("client");
    client.init().await.expect("connect to redis");
    client
}

/// Every key matching `pattern` (`KEYS`: fine on a test's few keys).
async fn keys(redis: &Client, pattern: String) -> Vec<String> {
    redis
        .custom(fred::cmd!("KEYS"), vec![pattern])
        .await
        .expect("KEYS")
}

#[tokio::test]
async fn batches_land_in_redis_under_the_prefix_with_no_key_text() {
    let prefix = unique_prefix("cache-client");
    let redis = client("redis://127.0.0.1:6379").await;
    let cache = CacheClient::new(RedisStore::new(redis.clone(), prefix.clone()), "payments");
    cache
        .set_batch(
            [("user:7:balance", "700"), ("user:8:balance", "800")],
            Duration::from_secs(60),
        )
        .await
        .expect("set_batch");
    let values = cache
        .get_batch(&["user:7:balance", "user:9:balance", "user:8:balance"])
        .await
        .expect("get_batch");
    assert_eq!(
        values,
        vec![Some(Bytes::from("700")), None, Some(Bytes::from("800"))]
    );

    let stored = keys(&redis, format!("{prefix}*")).await;
    assert_eq!(stored.len(), 2, "two keys under the prefix: {stored:?}");
    assert!(stored.iter().all(|k| !k.contains("user")), "{stored:?}");
    let ttl: i64 = redis.pttl(&stored[0]).await.expect("pttl");
    assert!((1..=60_000).contains(&ttl), "stored with the TTL: {ttl}");

    cache.delete("user:7:balance").await.expect("delete");
    assert_eq!(cache.get("user:7:balance").await.expect("get"), None);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.sets,
            stats.deletes,
            stats.errors
        ),
        (2, 2, 2, 1, 0)
    );
}

#[tokio::test]
async fn two_tier_batches_read_local_copies_first() {
    let prefix = unique_prefix("cache-client-tiered");
    let redis = client("redis://127.0.0.1:6379").await;
    let writer = CacheClient::new(RedisStore::new(redis.clone(), prefix.clone()), "svc");
    let tiered = CacheClient::new(
        TwoTierStore::new(
            MokaStore::default(),
            RedisStore::new(redis.clone(), prefix.clone()),
            Duration::from_secs(3600),
        ),
        "svc",
    );
    writer
        .set_batch([("a", "1"), ("b", "2")], Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        tiered.get_batch(&["a", "b"]).await.expect("get"),
        vec![Some(Bytes::from("1")), Some(Bytes::from("2"))]
    );
    // Gone from Redis, still in this replica's local tier.
    let _: () = redis
        .del(keys(&redis, format!("{prefix}*")).await)
        .await
        .expect("del");
    assert_eq!(writer.get("a").await.expect("get"), None);
    assert_eq!(
        tiered.get_batch(&["a", "b"]).await.expect("get"),
        vec![Some(Bytes::from("1")), Some(Bytes::from("2"))]
    );
}

#[tokio::test]
async fn a_dead_redis_fails_after_three_tries_with_backoff_and_no_detail_for_clients() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let cache = CacheClient::new(
        RedisStore::new(client(&redis.url()).await, unique_prefix("cache-dead")),
        "svc",
    )
    .attempt_timeout(Duration::from_millis(100));
    cache
        .set("k", "v", Duration::from_secs(60))
        .await
        .expect("set while up");
    redis.kill();

    let started = Instant::now();
    let error = cache
        .set("k", "v2", Duration::from_secs(60))
        .await
        .expect_err("Redis is down");
    let waited = started.elapsed();
    assert_eq!(error.attempts, 3);
    assert!(
        waited >= Duration::from_millis(300),
        "waits 100 ms then 200 ms between tries: {waited:?}"
    );
    let stats = cache.stats();
    assert_eq!((stats.errors, stats.retries), (1, 2));
    let status = tonic::Status::from(error);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        !status.message().contains("127.0.0.1"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_write_during_an_outage_lands_when_redis_returns() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let cache = CacheClient::new(
        RedisStore::new(client(&redis.url()).await, unique_prefix("cache-back")),
        "svc",
    )
    .attempt_timeout(Duration::from_millis(100))
    .retry(Retry {
        attempts: 20,
        initial: Duration::from_millis(100),
        multiplier: 2,
        max_delay: Duration::from_millis(400),
    });
    redis.kill();
    let writer = cache.clone();
    let write =
        tokio::spawn(async move { writer.set("k", "landed", Duration::from_secs(60)).await });
    // Restart only once a try has failed, so the write must have retried to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.stats().retries == 0 {
        assert!(Instant::now() < deadline, "no try failed");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _redis = OwnRedis::start(port);
    write
        .await
        .expect("task")
        .expect("write lands after retries");
    assert!(cache.stats().retries >= 1);
    assert_eq!(
        cache.get("k").await.expect("get"),
        Some(Bytes::from("landed"))
    );
}
