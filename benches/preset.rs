//! The service kit's preset stack (all seven layers) against the bare service, end to end
//! over a real socket, in the same run.
//!
//! Both servers serve the validated test service; the load client (tonic, 32 calls in
//! flight on one HTTP/2 connection) calls `Create` with a valid ten-field request, so the
//! validation layer checks every call. Logs are info-level JSON through the non-blocking
//! writer into a sink; metrics go to the installed Prometheus recorder; the rate limit is
//! set high enough never to refuse.
//!
//! The figure is the median of paired rounds (the two servers alternate); criterion's rows
//! are printed too.
//!
//! The validation layer checks `CreateRequest` with its compiled rules
//! (`RequestValidationLayer::compiled`, the recommended set-up for types without CEL rules);
//! `BLUEPRINT_BENCH_VALIDATION=engine` runs every check on the reflection engine instead.
//!
//! Diagnostics: `BLUEPRINT_BENCH_WITHOUT=logging,metrics` removes those layers from the
//! end-to-end server (names as in `PresetStack`'s fields); `BLUEPRINT_BENCH_LOGS=tracing-subscriber`
//! logs through the stock `tracing_subscriber` JSON formatter and tracing-appender instead of
//! the kit's telemetry; `BLUEPRINT_BENCH_LOGS=none` installs no subscriber at all.
//!
//! Run: `cargo bench --bench preset --features server`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::Server;
use tonic_blueprint_testkit::load::{median, paired_ratios_with, throughput};
use tonic_blueprint_testkit::pb::CreateRequest;
use tonic_blueprint_testkit::pb::validated_service_client::ValidatedServiceClient;
use tonic_blueprint_testkit::{
    TestServer, TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService,
};

const IN_FLIGHT: usize = 32;

/// Paired rounds (`BLUEPRINT_BENCH_ROUNDS`, default 21): the two servers alternate, and the
/// median ratio is the figure. Single rounds swing by ±0.1 on this 2-core machine.
fn rounds() -> usize {
    std::env::var("BLUEPRINT_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(21)
}

fn routes() -> Routes {
    Routes::new(ValidatedTestService::default().into_server())
}

fn caller(
    client: ValidatedServiceClient<Channel>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + 'static
{
    move || {
        let mut client = client.clone();
        Box::pin(async move {
            client.create(CreateRequest::valid()).await.expect("call");
        })
    }
}

/// Info-level JSON logs into a sink, once per process: the kit's own telemetry (json-subscriber
/// and the batching writer), or with `BLUEPRINT_BENCH_LOGS=tracing-subscriber` the stock
/// `tracing_subscriber::fmt().json()` through tracing-appender's non-blocking writer, for
/// comparison.
fn logs() {
    enum Guard {
        Kit(#[allow(dead_code)] tonic_blueprint::telemetry::TelemetryGuard),
        Stock(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard),
        None,
    }
    static GUARD: std::sync::OnceLock<Guard> = std::sync::OnceLock::new();
    GUARD.get_or_init(|| {
        if std::env::var("BLUEPRINT_BENCH_LOGS").as_deref() == Ok("none") {
            return Guard::None;
        }
        if std::env::var("BLUEPRINT_BENCH_LOGS").as_deref() == Ok("tracing-subscriber") {
            let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_max_level(tracing::Level::INFO)
                .with_writer(writer)
                .init();
            return Guard::Stock(guard);
        }
        let config = tonic_blueprint::telemetry::TelemetryConfig {
            filter: "info".to_owned(),
            format: tonic_blueprint::telemetry::LogFormat::Json,
            file: None,
        };
        Guard::Kit(
            tonic_blueprint::telemetry::init_with_writer(&config, std::io::sink())
                .expect("telemetry"),
        )
    });
}

/// The preset from `config`, with the request type's compiled rules (prost-protovalidate-build)
/// unless `BLUEPRINT_BENCH_VALIDATION=engine` keeps every check on the reflection engine.
fn stack(
    config: &tonic_blueprint::config::BlueprintConfig,
) -> tonic_blueprint::server::PresetStack {
    let mut stack =
        tonic_blueprint::server::PresetStack::from_config(config, VALIDATED_DESCRIPTOR_SET)
            .expect("stack");
    if std::env::var("BLUEPRINT_BENCH_VALIDATION").as_deref() != Ok("engine") {
        stack.validation = stack
            .validation
            .take()
            .map(|layer| layer.compiled::<CreateRequest>())
            .transpose()
            .expect("compiled rules");
    }
    stack
}

/// Removes the layer `name` (a `PresetStack` field name); false when there is none.
fn remove(stack: &mut tonic_blueprint::server::PresetStack, name: &str) -> bool {
    match name {
        "logging" => stack.logging = None,
        "metrics" => stack.metrics = None,
        "panic_recovery" => stack.panic_recovery = None,
        "timeout" => stack.timeout = None,
        "rate_limit" => stack.rate_limit = None,
        "validation" => stack.validation = None,
        "cache" => stack.cache = None,
        _ => return false,
    }
    true
}

fn preset(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    logs();
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("RATE_LIMIT_PER_MINUTE", "4000000000"),
    ])
    .load()
    .expect("config");
    let (bare, kit) = rt.block_on(async {
        let bare = TestServer::start_routes(
            tonic::transport::Server::builder(),
            routes(),
            TestService::default(),
        )
        .await;
        let mut stack = stack(&config);
        if let Ok(without) = std::env::var("BLUEPRINT_BENCH_WITHOUT") {
            for name in without.split(',') {
                assert!(remove(&mut stack, name), "no layer named {name:?}");
            }
        }
        let kit = Server::new(config)
            .descriptors(VALIDATED_DESCRIPTOR_SET)
            .stack(stack)
            .start(routes())
            .await
            .expect("kit server");
        (bare, kit)
    });
    let (bare_client, kit_client) = rt.block_on(async {
        (
            ValidatedServiceClient::connect(bare.uri())
                .await
                .expect("bare"),
            ValidatedServiceClient::connect(format!("http://{}", kit.local_addr()))
                .await
                .expect("kit"),
        )
    });

    let mut group = c.benchmark_group("preset_e2e");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    for (name, client) in [("bare", &bare_client), ("preset_seven_layers", &kit_client)] {
        let call = caller(client.clone());
        group.bench_function(BenchmarkId::new(name, "create_32_in_flight"), |b| {
            b.iter_custom(|calls| rt.block_on(throughput(call.clone(), IN_FLIGHT, calls)))
        });
    }
    group.finish();

    let ratios = rt.block_on(paired_ratios_with(
        caller(bare_client),
        caller(kit_client),
        IN_FLIGHT,
        10_000,
        rounds(),
    ));
    println!(
        "preset_e2e paired: seven layers / bare throughput, median of {} rounds = {:.3} (min {:.3}, max {:.3})",
        ratios.len(),
        median(&ratios),
        ratios.first().copied().unwrap_or_default(),
        ratios.last().copied().unwrap_or_default()
    );
    rt.block_on(async { kit.shutdown().await.expect("shutdown") });
}

/// The preset in process, whole and with each layer removed, against the bare service: where
/// the per-call cost goes (no network).
fn in_process(c: &mut Criterion) {
    use tonic_blueprint::server::PresetStack;
    use tonic_blueprint_testkit::{CREATE, grpc_http_request};
    use tower::{Layer, Service, ServiceExt};

    async fn call<S>(svc: &S)
    where
        S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
            + Clone,
        S::Error: std::fmt::Debug,
    {
        use http_body_util::BodyExt;
        let request = grpc_http_request(CREATE, &CreateRequest::valid());
        let response = svc.clone().oneshot(request).await.expect("call");
        let _ = response.into_body().collect().await.expect("body");
    }

    logs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = Loader::from_pairs([("RATE_LIMIT_PER_MINUTE", "4000000000")])
        .load()
        .expect("config");
    let full = stack(&config);
    let mut group = c.benchmark_group("preset_in_process");
    let bare = routes();
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    let mut variants: Vec<(&str, PresetStack)> = vec![("all_seven", full.clone())];
    for name in [
        "logging",
        "metrics",
        "panic_recovery",
        "timeout",
        "rate_limit",
        "validation",
        "cache",
    ] {
        let mut stack = full.clone();
        remove(&mut stack, name);
        variants.push((name, stack));
    }
    for (name, stack) in variants {
        let svc = stack.layer(routes());
        let label = if name == "all_seven" {
            name.to_owned()
        } else {
            format!("without_{name}")
        };
        group.bench_function(label, |b| b.to_async(&rt).iter(|| call(&svc)));
    }
    group.finish();
}

criterion_group!(benches, in_process, preset);
criterion_main!(benches);
