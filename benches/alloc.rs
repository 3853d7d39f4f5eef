//! Heap allocations per call: bare, the kit's empty stack, each preset layer alone, and the
//! whole preset, counted by a counting global allocator.
//!
//! A unary 64-byte echo (`/blueprint.test.v1.TestService/Unary`) through the service as a
//! tower `Service` on a current-thread runtime (no network), as `benches/layers.rs` calls
//! it: the service is cloned per call (hyper does the same per request), the response body
//! is read frame by frame and dropped, and every call's `grpc-status` must be OK. Requests
//! are built before the counted calls, so the figures are the service's own: what the layers
//! and the handler allocate and what the response is made of.
//!
//! Each row runs `BLUEPRINT_ALLOC_WARMUP` calls (default 2,000: the rate limiter's key, the
//! metric handles and the log writer's buffers exist by then), then counts
//! `BLUEPRINT_ALLOC_CALLS` calls (default 20,000) and divides. The count is process-wide, so
//! the log writer's thread is included (logs are info-level JSON through the kit's
//! telemetry into a sink; the Prometheus recorder is installed). The rows at `LOG_LEVEL=warn`
//! run in a child process of the same binary, since the subscriber is global.
//!
//! Layers are configured as `PresetStack::from_config` configures them (rate limit set high
//! enough never to refuse; auth from `AUTH_JWT_SECRET` with a cached HS256 bearer token on
//! every request). The layer rows are one layer in the preset's wrapper (`PresetStack` with
//! one field set): compare them with the empty stack, and the preset with bare.
//!
//! Run: `cargo bench --bench alloc --features server` (with `--features server,validation`
//! for the validation layer's rows). `BLUEPRINT_ALLOC_JSON=path` writes the rows as JSON too.

use bytes::Bytes;
use http_body_util::BodyExt;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::time::Duration;
use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::PresetStack;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{
    TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService, unary_http_request,
};
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SECRET: &str = "alloc-bench-secret-0123456789-abcdefghij";
/// Set in the child process that runs the rows at `LOG_LEVEL=warn`.
const CHILD: &str = "BLUEPRINT_ALLOC_CHILD";

/// One row of the table.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Row {
    name: String,
    /// What the row is compared with.
    baseline: String,
    log_level: String,
    calls: u64,
    allocs_per_call: f64,
    reallocs_per_call: f64,
    bytes_per_call: f64,
    /// Calls whose `grpc-status` was not OK (must be 0).
    not_ok: u64,
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not, and then a few calls per
/// row only check that the bench works (as criterion's test mode does).
fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(if benching() { default } else { default / 100 })
}

fn routes() -> Routes {
    Routes::new(TestService::default().into_server())
        .add_service(ValidatedTestService::default().into_server())
}

/// An HS256 bearer token `AUTH_JWT_SECRET` verifies.
fn token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"sub": "alloc-bench", "exp": now + 3600});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("token");
    format!("Bearer {token}")
}

fn requests(n: u64, bearer: &str) -> Vec<http::Request<tonic::body::Body>> {
    (0..n)
        .map(|_| {
            let mut request = unary_http_request(&TestRequest::echo(vec![0xab; 64]));
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                bearer.parse().expect("header value"),
            );
            request
        })
        .collect()
}

/// One call; false unless its `grpc-status` is OK.
async fn call<S, B>(svc: &S, request: http::Request<tonic::body::Body>) -> bool
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(request).await.expect("call");
    let (parts, mut body) = response.into_parts();
    let mut status = parts.headers.get("grpc-status").cloned();
    while let Some(frame) = body.frame().await {
        if let Ok(trailers) = frame.expect("body").into_trailers() {
            status = trailers.get("grpc-status").cloned().or(status);
        }
    }
    status.is_some_and(|s| s == "0")
}

/// Allocations per call through `svc`, after a warm-up.
fn measure<S, B>(
    rt: &tokio::runtime::Runtime,
    name: &str,
    baseline: &str,
    log_level: &str,
    svc: S,
) -> Row
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let warmup = env_count("BLUEPRINT_ALLOC_WARMUP", 2_000);
    let calls = env_count("BLUEPRINT_ALLOC_CALLS", 20_000);
    let bearer = token();
    let mut not_ok = 0;
    for request in requests(warmup, &bearer) {
        not_ok += u64::from(!rt.block_on(call(&svc, request)));
    }
    let batch = requests(calls, &bearer);
    // Let the log writer drain the warm-up's lines before counting.
    std::thread::sleep(Duration::from_millis(100));
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for request in batch {
            not_ok += u64::from(!call(&svc, request).await);
        }
    });
    // The writer thread's share of the counted calls' lines.
    std::thread::sleep(Duration::from_millis(100));
    let change = region.change();
    let per_call = |n: f64| n / calls as f64;
    Row {
        name: name.to_owned(),
        baseline: baseline.to_owned(),
        log_level: log_level.to_owned(),
        calls,
        allocs_per_call: per_call(change.allocations as f64),
        reallocs_per_call: per_call(change.reallocations as f64),
        bytes_per_call: per_call(change.bytes_allocated as f64),
        not_ok,
    }
}

/// The kit's telemetry at `level`, JSON into a sink, and the Prometheus recorder.
fn observability(level: &str) -> tonic_blueprint::telemetry::TelemetryGuard {
    tonic_blueprint::metrics::exporter::install().expect("the Prometheus recorder");
    let config = tonic_blueprint::telemetry::TelemetryConfig {
        filter: level.to_owned(),
        format: tonic_blueprint::telemetry::LogFormat::Json,
        file: None,
    };
    tonic_blueprint::telemetry::init_with_writer(&config, std::io::sink()).expect("telemetry")
}

/// The preset as `from_config` builds it: without auth (the kit's default), and with auth.
fn presets() -> (PresetStack, PresetStack) {
    let config = |auth: bool| {
        let mut pairs = vec![("RATE_LIMIT_PER_MINUTE", "4000000000")];
        if auth {
            pairs.push(("AUTH_JWT_SECRET", SECRET));
        }
        Loader::from_pairs(pairs).load().expect("config")
    };
    let stack = |auth: bool| {
        PresetStack::from_config(&config(auth), VALIDATED_DESCRIPTOR_SET).expect("stack")
    };
    (stack(false), stack(true))
}

/// Each layer of `full` alone in the preset's wrapper, by `PresetStack` field name.
fn alone(full: &PresetStack) -> Vec<(&'static str, PresetStack)> {
    let one = |set: &dyn Fn(&mut PresetStack)| {
        let mut stack = PresetStack::empty();
        set(&mut stack);
        stack
    };
    let mut layers = vec![
        ("logging", one(&|s| s.logging = full.logging.clone())),
        ("metrics", one(&|s| s.metrics = full.metrics.clone())),
        ("in_flight", one(&|s| s.in_flight = full.in_flight.clone())),
        (
            "panic_recovery",
            one(&|s| s.panic_recovery = full.panic_recovery.clone()),
        ),
        ("timeout", one(&|s| s.timeout = full.timeout.clone())),
        ("auth", one(&|s| s.auth = full.auth.clone())),
        (
            "rate_limit",
            one(&|s| s.rate_limit = full.rate_limit.clone()),
        ),
    ];
    #[cfg(feature = "validation")]
    layers.push((
        "validation",
        one(&|s| s.validation = full.validation.clone()),
    ));
    layers.push(("cache", one(&|s| s.cache = full.cache.clone())));
    layers
}

fn rows(level: &str) -> Vec<Row> {
    let _logs = observability(level);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (preset, with_auth) = presets();
    let mut rows = Vec::new();
    if level == "info" {
        rows.push(measure(&rt, "bare", "", level, routes()));
        rows.push(measure(
            &rt,
            "empty stack",
            "bare",
            level,
            PresetStack::empty().layer(routes()),
        ));
        for (name, stack) in alone(&with_auth) {
            rows.push(measure(
                &rt,
                &format!("{name} alone"),
                "empty stack",
                level,
                stack.layer(routes()),
            ));
        }
    } else {
        rows.push(measure(
            &rt,
            "logging alone",
            "empty stack",
            level,
            alone(&preset)[0].1.clone().layer(routes()),
        ));
    }
    rows.push(measure(
        &rt,
        "preset",
        "bare",
        level,
        preset.layer(routes()),
    ));
    rows.push(measure(
        &rt,
        "preset + auth",
        "bare",
        level,
        with_auth.layer(routes()),
    ));
    rows
}

fn main() {
    if let Ok(level) = std::env::var(CHILD) {
        for row in rows(&level) {
            println!("{}", serde_json::to_string(&row).expect("json"));
        }
        return;
    }
    let mut all = rows("info");
    let child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, "warn")
        .args(benching().then_some("--bench"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the warn-level child");
    assert!(child.status.success(), "the warn-level child failed");
    for line in String::from_utf8_lossy(&child.stdout).lines() {
        all.push(serde_json::from_str(line).expect("a child row"));
    }

    let per_call = |name: &str, level: &str| {
        all.iter()
            .find(|r| r.name == name && r.log_level == level)
            .map(|r| (r.allocs_per_call, r.bytes_per_call))
    };
    println!(
        "allocations per unary 64-byte echo, in process ({} calls per row after a warm-up)\n",
        all.first().map_or(0, |r| r.calls)
    );
    println!(
        "| row | logs | allocs/call | reallocs/call | bytes/call | allocs added | bytes added | not OK |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &all {
        let added = match per_call(&row.baseline, "info") {
            Some((allocs, bytes)) => format!(
                "{:+.1} (vs {}) | {:+.0}",
                row.allocs_per_call - allocs,
                row.baseline,
                row.bytes_per_call - bytes
            ),
            None => " | ".to_owned(),
        };
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.0} | {} | {} |",
            row.name,
            row.log_level,
            row.allocs_per_call,
            row.reallocs_per_call,
            row.bytes_per_call,
            added,
            row.not_ok
        );
    }
    if let Ok(path) = std::env::var("BLUEPRINT_ALLOC_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&all).expect("json"))
            .expect("write the JSON rows");
        println!("\nrows written to {path}");
    }
    let failed: Vec<_> = all.iter().filter(|r| r.not_ok > 0).collect();
    assert!(
        failed.is_empty(),
        "calls answered non-OK (the figures are not of OK calls): {failed:?}"
    );
}
