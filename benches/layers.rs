//! Per-call cost of each layer against the bare service, measured in the same run.
//!
//! - `in_process`: a unary 64-byte echo through the generated tonic service as a tower
//!   `Service`, with and without each layer: the layer's own cost, without network noise.
//! - `loopback`: the same call from tonic's client to a real server on 127.0.0.1, one call at
//!   a time: what the layers add to a real call.
//!
//! Logging writes info-level JSON through tracing-appender's non-blocking writer to a sink;
//! metrics record into the installed Prometheus recorder.
//!
//! Run: `cargo bench --bench layers`. Compare rows of one run only.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint::core::MethodRegistry;
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint::metrics::{MetricsLayer, exporter};
use tonic_blueprint::panic_recovery::PanicRecoveryLayer;
use tonic_blueprint::timeout::TimeoutLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{FILE_DESCRIPTOR_SET, TestServer, TestService, unary_http_request};
use tower::{Layer, Service, ServiceExt, layer::util::Identity};

fn unary_request() -> http::Request<tonic::body::Body> {
    unary_http_request(&TestRequest::echo(vec![7u8; 64]))
}

async fn call<S, B>(svc: &S) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(unary_request()).await.expect("call");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// The global recorder and subscriber, once: Prometheus, and info-level JSON logs through the
/// non-blocking writer into a sink.
fn observability() -> &'static tracing_appender::non_blocking::WorkerGuard {
    static GUARD: std::sync::OnceLock<tracing_appender::non_blocking::WorkerGuard> =
        std::sync::OnceLock::new();
    GUARD.get_or_init(|| {
        exporter::install().expect("install the Prometheus recorder");
        let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(writer)
            .init();
        guard
    })
}

fn registry() -> MethodRegistry {
    MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors")
}

fn in_process(c: &mut Criterion) {
    observability();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = TestService::default().into_server();
    let timeout = TimeoutLayer::new(Duration::from_secs(30)).layer(bare.clone());
    let panic = PanicRecoveryLayer::new().layer(bare.clone());
    let both = tower::ServiceBuilder::new()
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .service(bare.clone());
    let metrics = MetricsLayer::new()
        .with_registry(registry())
        .layer(bare.clone());
    let logging = RequestLoggingLayer::new()
        .with_registry(registry())
        .layer(bare.clone());
    let logging_quiet = RequestLoggingLayer::new()
        .with_registry(registry())
        .ok_level(tracing::Level::DEBUG)
        .layer(bare.clone());
    let four = tower::ServiceBuilder::new()
        .layer(RequestLoggingLayer::new().with_registry(registry()))
        .layer(MetricsLayer::new().with_registry(registry()))
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .service(bare.clone());

    let mut group = c.benchmark_group("in_process");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    group.bench_function("timeout", |b| b.to_async(&rt).iter(|| call(&timeout)));
    group.bench_function("panic_recovery", |b| b.to_async(&rt).iter(|| call(&panic)));
    group.bench_function("panic_recovery+timeout", |b| {
        b.to_async(&rt).iter(|| call(&both))
    });
    group.bench_function("metrics", |b| b.to_async(&rt).iter(|| call(&metrics)));
    group.bench_function("logging", |b| b.to_async(&rt).iter(|| call(&logging)));
    group.bench_function("logging_ok_at_debug", |b| {
        b.to_async(&rt).iter(|| call(&logging_quiet))
    });
    group.bench_function("logging+metrics+panic_recovery+timeout", |b| {
        b.to_async(&rt).iter(|| call(&four))
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    observability();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let request = TestRequest::echo(vec![7u8; 64]);
    let mut group = c.benchmark_group("loopback");
    group.measurement_time(Duration::from_secs(5));

    macro_rules! bench_stack {
        ($name:expr, $layer:expr) => {{
            let server = rt.block_on(TestServer::start(Server::builder().layer($layer)));
            let client = rt.block_on(server.client());
            group.bench_function($name, |b| {
                b.to_async(&rt).iter(|| {
                    let mut client = client.clone();
                    let request = request.clone();
                    async move { client.unary(request).await.expect("call") }
                })
            });
            drop(server);
        }};
    }
    bench_stack!("bare", Identity::new());
    bench_stack!("timeout", TimeoutLayer::new(Duration::from_secs(30)));
    bench_stack!("panic_recovery", PanicRecoveryLayer::new());
    bench_stack!(
        "panic_recovery+timeout",
        tower::ServiceBuilder::new()
            .layer(PanicRecoveryLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(30)))
    );
    bench_stack!("metrics", MetricsLayer::new().with_registry(registry()));
    bench_stack!(
        "logging",
        RequestLoggingLayer::new().with_registry(registry())
    );
    bench_stack!(
        "logging+metrics+panic_recovery+timeout",
        tower::ServiceBuilder::new()
            .layer(RequestLoggingLayer::new().with_registry(registry()))
            .layer(MetricsLayer::new().with_registry(registry()))
            .layer(PanicRecoveryLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(30)))
    );
    group.finish();
}

criterion_group!(benches, in_process, loopback);
criterion_main!(benches);
