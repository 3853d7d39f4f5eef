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

fn preset(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _logs = {
        let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(writer)
            .init();
        guard
    };
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
        let kit = Server::new(config)
            .descriptors(VALIDATED_DESCRIPTOR_SET)
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
        11,
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

criterion_group!(benches, preset);
criterion_main!(benches);
