//! The RateLimit layer against its baselines, measured in the same run.
//!
//! - `check`: one in-process check (GCRA and strict) against governor's raw keyed check, over
//!   the same 10,000 keys with quotas that never refuse.
//! - `unary`: a unary 64-byte echo through the generated tonic service called in process: bare,
//!   with this layer, and with tower_governor's layer (global key: its peer-IP extractor cannot
//!   see tonic's connect info).
//! - `redis`: one Redis check (EVALSHA of the script) on the local Redis, one at a time; the
//!   run also prints redis-benchmark's single-connection GET latency on the same Redis.
//! - memory: resident memory for one million distinct keys, printed before the timings.
//!
//! Run: `cargo bench --bench rate_limit --features redis` (needs Redis on 127.0.0.1:6379).

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use http_body_util::BodyExt;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic_blueprint::rate_limit::redis::RedisBackend;
use tonic_blueprint::rate_limit::{LocalLimiter, Quota, RateLimitLayer};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestService, unary_http_request};
use tower::{Layer, Service, ServiceExt};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::GlobalKeyExtractor;

const KEYS: u64 = 10_000;

fn check(c: &mut Criterion) {
    let generous = NonZeroU32::new(u32::MAX / 2).expect("non-zero");
    let governor = RateLimiter::keyed(GovernorQuota::per_second(generous));
    let gcra = LocalLimiter::new(
        &Quota::per_second(u32::MAX / 2).gcra(u32::MAX / 2),
        1_000_000,
    );
    let strict = LocalLimiter::new(
        &Quota::new(u32::MAX / 2, Duration::from_secs(3600)),
        1_000_000,
    );
    let mut group = c.benchmark_group("check");
    let mut i = 0u64;
    group.bench_function("governor_keyed", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(governor.check_key(&i).is_ok())
        })
    });
    group.bench_function("local_gcra", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(gcra.check_hashed(i, 0))
        })
    });
    group.bench_function("local_strict", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(strict.check_hashed(i, 0))
        })
    });
    group.finish();
}

fn unary_request() -> http::Request<tonic::body::Body> {
    unary_http_request(&TestRequest::echo(vec![7u8; 64]))
}

async fn call<S, B>(svc: &S)
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(unary_request()).await.expect("call");
    black_box(response.into_body().collect().await.expect("body"));
}

fn unary(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = TestService::default().into_server();
    let ours =
        RateLimitLayer::new(Quota::per_second(u32::MAX / 2).gcra(u32::MAX / 2)).layer(bare.clone());
    let config = GovernorConfigBuilder::default()
        .per_millisecond(1)
        .burst_size(u32::MAX / 2)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .expect("tower_governor config");
    let theirs = tower_governor::GovernorLayer::new(config).layer(bare.clone());
    let mut group = c.benchmark_group("unary");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    group.bench_function("rate_limit", |b| b.to_async(&rt).iter(|| call(&ours)));
    group.bench_function("tower_governor", |b| b.to_async(&rt).iter(|| call(&theirs)));
    group.finish();
}

fn redis(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend = rt.block_on(async {
        let client = fred::prelude::Client::new(
            fred::prelude::Config::from_url("redis://127.0.0.1:6379").expect("url"),
            None,
            None,
            None,
        );
        fred::prelude::ClientLike::init(&client)
            .await
            .expect("redis on 127.0.0.1:6379");
        let backend = RedisBackend::new(client, "bench:rl:");
        backend.preload().await.expect("script load");
        backend
    });
    let quota = Quota::per_second(u32::MAX / 2).gcra(u32::MAX / 2);
    if let Ok(out) = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "6379",
            "-t",
            "get",
            "-n",
            "20000",
            "-c",
            "1",
            "-P",
            "1",
            "-q",
            "--csv",
        ])
        .output()
    {
        println!(
            "redis-benchmark GET, 1 connection: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let mut group = c.benchmark_group("redis");
    let mut i = 0u64;
    group.bench_function("check_evalsha", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % KEYS;
            let backend = &backend;
            async move {
                black_box(
                    backend
                        .check_quota("bench", &quota, i)
                        .await
                        .expect("check"),
                )
            }
        })
    });
    group.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory(_: &mut Criterion) {
    const N: u64 = 1_000_000;
    let measure = |name: &str, fill: &dyn Fn()| {
        let before = rss_bytes();
        let started = Instant::now();
        fill();
        let after = rss_bytes();
        println!(
            "memory: {name}: {:.1} MiB for {N} keys ({:.0} bytes/key), filled in {:?}",
            (after.saturating_sub(before)) as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / N as f64,
            started.elapsed()
        );
    };
    let gcra = LocalLimiter::new(&Quota::per_minute(100).gcra(100), 2_000_000);
    measure("local GCRA", &|| {
        (0..N).for_each(|k| {
            gcra.check_hashed(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 0);
        })
    });
    let strict = LocalLimiter::new(&Quota::per_minute(100), 2_000_000);
    measure("local strict", &|| {
        (0..N).for_each(|k| {
            strict.check_hashed(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 0);
        })
    });
    let governor = Arc::new(RateLimiter::keyed(GovernorQuota::per_minute(
        NonZeroU32::new(100).expect("non-zero"),
    )));
    measure("governor keyed", &|| {
        (0..N).for_each(|k| {
            let _ = governor.check_key(&k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        })
    });
    black_box((gcra.keys(), strict.keys(), governor.len()));
}

criterion_group!(benches, memory, check, unary, redis);
criterion_main!(benches);
