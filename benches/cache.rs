//! The ResponseCache layer against its baselines, measured in the same run.
//!
//! For 64 B, 1 KiB and 64 KiB responses: a hit through the layer (moka, Redis, two-tier),
//! against the raw store read of the same bytes (moka `get`, fred `GET`) and the bare handler
//! without the layer. The request is built outside the measured time (criterion's
//! `iter_batched`); reading the whole response body is inside it. The run also prints redis-benchmark's single-connection GET latency.
//!
//! `cache_e2e`: throughput over a real socket (tonic client, 32 calls in flight on one
//! HTTP/2 connection) of the bare echo service and of the same service behind the layer with
//! every call a moka hit.
//!
//! Run: `cargo bench --bench cache --features redis` (needs Redis on 127.0.0.1:6379).

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fred::prelude::*;
use http_body_util::BodyExt;
use std::hint::black_box;
use std::process::Command;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint::cache::{MokaStore, RedisStore, ResponseCacheLayer, TwoTierStore};
use tonic_blueprint_testkit::load::{median, paired_ratios, unary_throughput};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestServer, TestService, unary_http_request};
use tower::{Layer, Service, ServiceExt};

const METHOD: &str = "blueprint.test.v1.TestService/Unary";
const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (65536, "64KiB")];

async fn call<S, B>(svc: &S, payload: &[u8]) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    send(svc, request(payload)).await
}

/// The echo request for `payload`: built outside the measured time (it is the client's
/// work, not the layer's).
fn request(payload: &[u8]) -> http::Request<tonic::body::Body> {
    unary_http_request(&TestRequest::echo(payload.to_vec()))
}

/// Sends `request` and reads the whole response body.
async fn send<S, B>(svc: &S, request: http::Request<tonic::body::Body>) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(request).await.expect("call");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

async fn redis_client() -> Client {
    let client = Client::new(
        Config::from_url("redis://127.0.0.1:6379").expect("url"),
        None,
        None,
        None,
    );
    client.init().await.expect("redis on 127.0.0.1:6379");
    client
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(out) = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-t",
            "get",
            "-n",
            "20000",
            "-c",
            "1",
            "-d",
            "1024",
            "-q",
            "--csv",
        ])
        .output()
    {
        println!(
            "redis-benchmark GET 1 KiB, 1 connection:\n{}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let bare = TestService::default().into_server();
    let moka_layer =
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(600));
    let moka = moka_layer.layer(bare.clone());
    let (redis, tiered, raw_client) = rt.block_on(async {
        let redis = ResponseCacheLayer::new()
            .cache(METHOD.parse().expect("key"), Duration::from_secs(600))
            .store(RedisStore::new(redis_client().await, "bench:cache:redis:"))
            .layer(bare.clone());
        let tiered = ResponseCacheLayer::new()
            .cache(METHOD.parse().expect("key"), Duration::from_secs(600))
            .store(TwoTierStore::new(
                MokaStore::default(),
                RedisStore::new(redis_client().await, "bench:cache:tiered:"),
                Duration::from_secs(600),
            ))
            .layer(bare.clone());
        (redis, tiered, redis_client().await)
    });
    let raw_moka: moka::future::Cache<u64, Bytes> = moka::future::Cache::new(10_000);

    let mut group = c.benchmark_group("cache");
    for (size, name) in SIZES {
        let payload = vec![b'x'; size];
        let value = Bytes::from(payload.clone());
        rt.block_on(async {
            raw_moka.insert(1, value.clone()).await;

            raw_client
                .set::<(), _, _>("bench:cache:raw", value.clone(), None, None, false)
                .await
                .expect("set");
            // Warm every layer so the measured calls are hits.
            call(&moka, &payload).await;
            call(&redis, &payload).await;
            call(&tiered, &payload).await;
        });
        group.bench_function(BenchmarkId::new("bare_handler", name), |b| {
            b.to_async(&rt).iter_batched(
                || request(&payload),
                |req| send(&bare, req),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("raw_moka_get", name), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(raw_moka.get(&1).await) })
        });
        group.bench_function(BenchmarkId::new("layer_moka_hit", name), |b| {
            b.to_async(&rt).iter_batched(
                || request(&payload),
                |req| send(&moka, req),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("raw_fred_get", name), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    raw_client
                        .get::<Option<Bytes>, _>("bench:cache:raw")
                        .await
                        .expect("get"),
                )
            })
        });
        group.bench_function(BenchmarkId::new("layer_redis_hit", name), |b| {
            b.to_async(&rt).iter_batched(
                || request(&payload),
                |req| send(&redis, req),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("layer_two_tier_hit", name), |b| {
            b.to_async(&rt).iter_batched(
                || request(&payload),
                |req| send(&tiered, req),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn cache_e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let request = TestRequest::echo(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("cache_e2e");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    let bare = rt.block_on(TestServer::start(Server::builder()));
    let cached = rt.block_on(TestServer::start(Server::builder().layer(
        ResponseCacheLayer::new().cache(METHOD.parse().expect("key"), Duration::from_secs(600)),
    )));
    for (name, server) in [("bare_echo", &bare), ("moka_hits", &cached)] {
        let client = rt.block_on(server.client());
        // Warm: the first call stores the entry.
        rt.block_on(unary_throughput(&client, &request, 1, 1));
        group.bench_function(BenchmarkId::new(name, "1KiB_32_in_flight"), |b| {
            b.iter_custom(|calls| rt.block_on(unary_throughput(&client, &request, 32, calls)))
        });
    }
    group.finish();
    // Criterion's rows above run one after the other and drift by 10-20% here; the paired
    // rounds alternate the two servers, and their median is the figure we report.
    let (bare_client, cached_client) =
        rt.block_on(async { (bare.client().await, cached.client().await) });
    let ratios = rt.block_on(paired_ratios(
        &bare_client,
        &cached_client,
        &request,
        32,
        20_000,
        11,
    ));
    println!(
        "cache_e2e paired: moka hits / bare echo throughput, median of {} rounds = {:.3} (min {:.3}, max {:.3})",
        ratios.len(),
        median(&ratios),
        ratios.first().copied().unwrap_or_default(),
        ratios.last().copied().unwrap_or_default()
    );
    assert_eq!(
        cached.service().counts().started(),
        1,
        "every measured call on the cached server was a hit"
    );
}

criterion_group!(benches, cache, cache_e2e);
criterion_main!(benches);
