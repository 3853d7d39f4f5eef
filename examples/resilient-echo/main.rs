//! A tonic server with the RequestLogging, Metrics, PanicRecovery and Timeout layers, and a
//! short demo against it.
//!
//! Run it (no external service needed):
//!
//! ```text
//! cargo run --example resilient-echo
//! ```
//!
//! It serves the test service (`blueprint.test.v1.TestService`, whose requests can ask to
//! sleep, panic or fail) on `GRPC_ADDR` (default `127.0.0.1:50051`), calls it once of each
//! kind to show what clients see, then serves until Ctrl-C. Prometheus metrics are served at
//! `http://METRICS_ADDR/metrics` (default `127.0.0.1:9090`). `LOG_FORMAT=json` logs JSON.
//! `EXIT_AFTER_DEMO=1` stops after the demo.

use std::time::Duration;
use tonic::transport::{Channel, Server};
use tonic_blueprint::core::MethodRegistry;
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint::metrics::{MetricsLayer, exporter};
use tonic_blueprint::panic_recovery::PanicRecoveryLayer;
use tonic_blueprint::telemetry::{self, TelemetryConfig};
use tonic_blueprint::timeout::TimeoutLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{FILE_DESCRIPTOR_SET, TestService};
use tower::ServiceBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let _logs = telemetry::init(&TelemetryConfig {
        format: std::env::var("LOG_FORMAT")
            .unwrap_or_else(|_| "pretty".to_owned())
            .parse()?,
        ..TelemetryConfig::default()
    })?;
    let addr: std::net::SocketAddr = std::env::var("GRPC_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:50051".to_owned())
        .parse()?;
    let metrics_addr: std::net::SocketAddr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9090".to_owned())
        .parse()?;

    let metrics = exporter::install()?;
    let (metrics_addr, _metrics_server) =
        exporter::spawn_server(metrics_addr, metrics.clone()).await?;
    tracing::info!(%metrics_addr, "serving /metrics");

    let registry = MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET)?;
    let layers = ServiceBuilder::new()
        .layer(RequestLoggingLayer::new().with_registry(registry.clone()))
        .layer(MetricsLayer::new().with_registry(registry))
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(30)).with_timeout(
            "blueprint.test.v1.TestService/Unary".parse()?,
            Duration::from_secs(1),
        ));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tokio::spawn(
        Server::builder()
            .layer(layers)
            .add_service(TestService::default().into_server())
            .serve_with_incoming_shutdown(incoming, shutdown_signal()),
    );
    tracing::info!(%addr, "serving blueprint.test.v1.TestService");

    demo(addr).await?;
    println!("\nfrom http://{metrics_addr}/metrics:");
    for line in metrics.render().lines().filter(|l| {
        l.starts_with("grpc_server_handled_total") && !l.ends_with(" 0")
            || l.starts_with("grpc_server_panics_recovered_total")
            || l.starts_with("grpc_server_deadline_exceeded_total")
    }) {
        println!("  {line}");
    }

    if std::env::var_os("EXIT_AFTER_DEMO").is_some() {
        server.abort();
        return Ok(());
    }
    tracing::info!("demo done; still serving, Ctrl-C to stop");
    server.await??;
    Ok(())
}

async fn demo(addr: std::net::SocketAddr) -> Result<(), BoxError> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = TestServiceClient::new(channel);

    let reply = client.unary(TestRequest::echo("hello")).await?;
    println!(
        "echo                -> OK {:?} (deadline the handler saw: {} ms)",
        String::from_utf8_lossy(&reply.get_ref().payload),
        reply.get_ref().deadline_remaining_ms
    );

    let status = client
        .unary(TestRequest::echo("x").panic())
        .await
        .expect_err("the handler panics");
    println!(
        "handler panic       -> {:?} {:?}",
        status.code(),
        status.message()
    );

    let status = client
        .unary(TestRequest::echo("x").sleep_ms(3_000))
        .await
        .expect_err("the handler is too slow");
    println!(
        "3 s handler, 1 s policy -> {:?} {:?}",
        status.code(),
        status.message()
    );

    let mut stream = client
        .server_stream(
            TestRequest::echo("tick")
                .count(5)
                .sleep_ms(20)
                .panic()
                .mid_stream(),
        )
        .await?
        .into_inner();
    let mut received = 0;
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => break "OK".to_owned(),
            Err(status) => break format!("{:?} {:?}", status.code(), status.message()),
        }
    };
    println!("stream panic        -> {received} message(s), then {end}");
    Ok(())
}

async fn shutdown_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
