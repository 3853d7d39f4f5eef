//! The cache's correctness over real sockets, on moka, on a Redis this test starts itself and
//! on both tiers: tags never appear in Redis keys; any UTF-8 tag (commas included)
//! invalidates exactly what it tagged; single-flight hands an error to its waiters and lets
//! exactly one take over when the leader goes away; a miss that began before an
//! invalidation does not store its answer; the tag index needs no scan past 100k tags.
#![cfg(feature = "redis")]

use bytes::Bytes;
use fred::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_cache::{
    CacheInvalidator, CacheStore, Generation, MokaStore, RedisStore, ResponseCacheLayer,
    StoreFuture, TwoTierStore, tags_header,
};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{OwnRedis, RawResponse, TestServer, UNARY, free_port, unique_prefix};

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

/// The three stores under test, fresh each time.
async fn stores(url: &str, test: &str) -> Vec<(&'static str, Arc<dyn CacheStore>)> {
    let prefix = unique_prefix(test);
    vec![
        (
            "moka",
            Arc::new(MokaStore::new(1 << 20)) as Arc<dyn CacheStore>,
        ),
        (
            "redis",
            Arc::new(RedisStore::new(redis(url).await, format!("{prefix}r:"))),
        ),
        (
            "two-tier",
            Arc::new(TwoTierStore::new(
                MokaStore::new(1 << 20),
                RedisStore::new(redis(url).await, format!("{prefix}t:")),
                Duration::from_secs(30),
            )),
        ),
    ]
}

/// A store shared by the layer and the test.
#[derive(Clone)]
struct Shared(Arc<dyn CacheStore>);

impl CacheStore for Shared {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        self.0.get(key)
    }
    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        self.0.set(key, value, ttl)
    }
    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        self.0.delete(key)
    }
    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        self.0.tag(key, tags, ttl)
    }
    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        self.0.invalidate_tag(tag)
    }
    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        self.0.lookup(key)
    }
    fn generation(&self) -> StoreFuture<'_, Generation> {
        self.0.generation()
    }
    fn fill(
        &self,
        key: u64,
        value: Bytes,
        tags: &[String],
        ttl: Duration,
        since: Generation,
    ) -> StoreFuture<'_, bool> {
        self.0.fill(key, value, tags, ttl, since)
    }
}

async fn serve(store: Arc<dyn CacheStore>) -> (TestServer, CacheInvalidator) {
    let layer = ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
        .store(Shared(store));
    let invalidator = layer.invalidator();
    (
        TestServer::start(Server::builder().layer(layer)).await,
        invalidator,
    )
}

async fn call(server: &TestServer, request: TestRequest) -> RawResponse {
    let response = server
        .raw()
        .call(UNARY, &[request], &[])
        .await
        .expect("call");
    assert_eq!(response.status, http::StatusCode::OK);
    response
}

async fn x_cache(server: &TestServer, request: TestRequest) -> String {
    call(server, request).await.header("x-cache").to_owned()
}

fn tagged(payload: &str, tags: &[&str]) -> TestRequest {
    let value = tags_header(tags);
    TestRequest::echo(payload).respond_with("x-cache-tags", value.to_str().expect("ascii"))
}

#[tokio::test]
async fn redis_keys_hold_no_tag_text() {
    let own = OwnRedis::start(free_port());
    let client = redis(&own.url()).await;
    let prefix = unique_prefix("cache-tag-keys");
    let (server, invalidator) =
        serve(Arc::new(RedisStore::new(client.clone(), prefix.clone()))).await;
    call(&server, tagged("p", &["user:alice-7", "payment:1234"])).await;
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}*")])
        .await
        .expect("KEYS");
    assert!(keys.len() >= 4, "an entry and its tag sets: {keys:?}");
    for key in &keys {
        let rest = key.strip_prefix(&prefix).expect("under the prefix");
        for raw in ["alice", "1234", "payment", "user", "method", "TestService"] {
            assert!(!rest.contains(raw), "{key} holds {raw}");
        }
        let hex = rest.strip_prefix("tag:").unwrap_or(rest);
        assert!(
            (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                || rest == "gen"
                || rest == "gens",
            "{key}"
        );
    }
    assert_eq!(
        invalidator
            .invalidate_tag("user:alice-7")
            .await
            .expect("invalidate"),
        1
    );
}

#[tokio::test]
async fn any_utf8_tag_invalidates_exactly_what_it_tagged() {
    let own = OwnRedis::start(free_port());
    for (name, store) in stores(&own.url(), "cache-utf8-tags").await {
        let (server, invalidator) = serve(store).await;
        let comma = || tagged("comma", &["a,b"]);
        let a = || tagged("a", &["a"]);
        let b = || tagged("b", &["b"]);
        let accent = || tagged("accent", &["usuario:josé", "ünïcødé ✓"]);
        let spaced = || tagged("spaced", &[" padded tag ", "100%"]);
        for request in [comma(), a(), b(), accent(), spaced()] {
            assert_eq!(x_cache(&server, request.clone()).await, "miss", "{name}");
            assert_eq!(x_cache(&server, request).await, "hit", "{name}: stored");
        }
        assert_eq!(
            invalidator.invalidate_tag("a,b").await.expect("a,b"),
            1,
            "{name}"
        );
        assert_eq!(x_cache(&server, comma()).await, "miss", "{name}");
        assert_eq!(
            x_cache(&server, a()).await,
            "hit",
            "{name}: `a` is another tag"
        );
        assert_eq!(
            x_cache(&server, b()).await,
            "hit",
            "{name}: `b` is another tag"
        );
        assert_eq!(
            invalidator.invalidate_tag("ünïcødé ✓").await.expect("utf8"),
            1
        );
        assert_eq!(x_cache(&server, accent()).await, "miss", "{name}");
        assert_eq!(
            invalidator
                .invalidate_tag("usuario:josé")
                .await
                .expect("utf8"),
            1
        );
        assert_eq!(x_cache(&server, accent()).await, "miss", "{name}");
        assert_eq!(
            invalidator
                .invalidate_tag(" padded tag ")
                .await
                .expect("spaces"),
            1
        );
        assert_eq!(x_cache(&server, spaced()).await, "miss", "{name}");
        assert_eq!(
            invalidator.invalidate_tag("100%").await.expect("percent"),
            1
        );
        assert_eq!(x_cache(&server, spaced()).await, "miss", "{name}");
        assert_eq!(
            x_cache(&server, a()).await,
            "hit",
            "{name}: untouched to the end"
        );
        // A tag that cannot be read (not UTF-8) means not stored, never stored untagged.
        let broken = || TestRequest::echo("broken").respond_with("x-cache-tags", "ok,bad%FF");
        assert_eq!(x_cache(&server, broken()).await, "miss", "{name}");
        assert_eq!(
            x_cache(&server, broken()).await,
            "miss",
            "{name}: never stored"
        );
    }
}

#[tokio::test]
async fn a_miss_that_began_before_an_invalidation_does_not_store_its_answer() {
    let own = OwnRedis::start(free_port());
    for (name, store) in stores(&own.url(), "cache-generation").await {
        let (server, invalidator) = serve(store).await;
        let slow = || tagged("slow", &["user:7"]).sleep_ms(300);
        // The handler is reading while the user's data changes and is invalidated.
        let raw = server.raw();
        let first = tokio::spawn(async move { raw.call(UNARY, &[slow()], &[]).await });
        let started = server.service().counts().started();
        server
            .service()
            .counts()
            .wait_started(started + 1, Duration::from_secs(5))
            .await;
        assert_eq!(
            invalidator
                .invalidate_tag("user:7")
                .await
                .expect("invalidate"),
            0
        );
        let first = first.await.expect("task").expect("call");
        assert_eq!(
            first.grpc_status(),
            Some(Code::Ok),
            "{name}: served all the same"
        );
        assert_eq!(
            x_cache(&server, slow()).await,
            "miss",
            "{name}: the stale answer was not stored"
        );
        assert_eq!(
            x_cache(&server, slow()).await,
            "hit",
            "{name}: the fresh one was"
        );

        // An invalidation of another tag during a miss does not stop it being stored.
        let other = || tagged("other", &["user:8"]).sleep_ms(300);
        let raw = server.raw();
        let first = tokio::spawn(async move { raw.call(UNARY, &[other()], &[]).await });
        let started = server.service().counts().started();
        server
            .service()
            .counts()
            .wait_started(started + 1, Duration::from_secs(5))
            .await;
        invalidator
            .invalidate_tag("user:9")
            .await
            .expect("invalidate");
        first.await.expect("task").expect("call");
        assert_eq!(x_cache(&server, other()).await, "hit", "{name}");
    }
}

#[tokio::test]
async fn single_flight_hands_an_error_to_every_waiter() {
    let (server, _) = serve(Arc::new(MokaStore::default())).await;
    let failing = || {
        TestRequest::echo("down")
            .sleep_ms(300)
            .fail(Code::Unavailable, "down")
    };
    let calls = (0..20).map(|_| call(&server, failing()));
    let responses = futures_util::future::join_all(calls).await;
    assert_eq!(
        server.service().counts().started(),
        1,
        "one handler run for 20 concurrent misses"
    );
    for response in &responses {
        assert_eq!(response.grpc_status(), Some(Code::Unavailable));
        assert_eq!(response.grpc_message().as_deref(), Some("down"));
        assert_eq!(response.header("x-cache"), "miss");
    }
    // Never stored: the next call runs the handler again.
    call(&server, failing()).await;
    assert_eq!(server.service().counts().started(), 2);
}

/// Counts lookups, so the test knows when every caller has joined the flight.
#[derive(Clone, Default)]
struct Counting {
    inner: MokaStore,
    lookups: Arc<AtomicU64>,
    changed: Arc<Notify>,
}

impl Counting {
    async fn wait_lookups(&self, n: u64) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.lookups.load(Ordering::SeqCst) >= n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("lookups");
    }
}

impl CacheStore for Counting {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        self.inner.get(key)
    }
    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        self.inner.delete(key)
    }
    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        self.inner.tag(key, tags, ttl)
    }
    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        self.inner.invalidate_tag(tag)
    }
    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        Box::pin(async move {
            let found = self.inner.lookup(key).await;
            // Counted as the lookup returns: on this single-threaded runtime the caller
            // joins the flight before anything else runs.
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
            found
        })
    }
    fn fill(
        &self,
        key: u64,
        value: Bytes,
        tags: &[String],
        ttl: Duration,
        since: Generation,
    ) -> StoreFuture<'_, bool> {
        self.inner.fill(key, value, tags, ttl, since)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_leader_that_goes_away_hands_over_to_exactly_one_waiter() {
    let store = Counting::default();
    let layer = ResponseCacheLayer::new()
        .cache(METHOD.parse().expect("key"), Duration::from_secs(60))
        .store(store.clone());
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let slow = || TestRequest::echo("slow").sleep_ms(300);

    let raw = server.raw();
    let leader = tokio::spawn(async move { raw.call(UNARY, &[slow()], &[]).await });
    server
        .service()
        .counts()
        .wait_started(1, Duration::from_secs(5))
        .await;
    let followers: Vec<_> = (0..5)
        .map(|_| {
            let raw = server.raw();
            tokio::spawn(async move { raw.call(UNARY, &[slow()], &[]).await })
        })
        .collect();
    store.wait_lookups(6).await;
    // The leader's caller goes away mid-call.
    leader.abort();
    assert_eq!(
        server
            .service()
            .counts()
            .wait_cancelled(1, Duration::from_secs(5))
            .await,
        1
    );
    let mut hits = 0;
    for follower in followers {
        let response = follower.await.expect("task").expect("call");
        assert_eq!(response.grpc_status(), Some(Code::Ok));
        hits += usize::from(response.header("x-cache") == "hit");
    }
    assert_eq!(
        server.service().counts().started(),
        2,
        "the leader, then exactly one waiter in its place"
    );
    assert_eq!(hits, 4, "the others share the new leader's answer");
}

#[tokio::test]
async fn storing_past_100k_live_tags_scans_nothing() {
    let store = MokaStore::new(1 << 30);
    let ttl = Duration::from_secs(600);
    let value = Bytes::from_static(b"v");
    let fill = |i: u64| {
        let store = &store;
        let value = value.clone();
        async move {
            let tags = [format!("user:{i}")];
            assert!(
                store
                    .fill(i, value, &tags, ttl, Generation::default())
                    .await
                    .expect("fill")
            );
        }
    };
    for i in 0..110_000 {
        fill(i).await;
    }
    assert!(store.tag_count() >= 110_000);
    // With a scan of the index per store this took minutes; without, a fraction of a second.
    let started = Instant::now();
    for i in 110_000..112_000 {
        fill(i).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "2,000 stores past 110k tags took {took:?}"
    );
    // Invalidation finds its entry through the index.
    assert_eq!(
        store
            .invalidate_tag("user:111999")
            .await
            .expect("invalidate"),
        1
    );
    assert!(store.get(111_999).await.expect("get").is_none());
}
