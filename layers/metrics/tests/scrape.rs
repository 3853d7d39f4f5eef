//! /metrics scraped over HTTP from the global recorder, with the whole blueprint family, and
//! checked by `promtool check metrics`. Its own test binary: it installs the global recorder.

use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_metrics::{MetricsLayer, exporter};
use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::prom::{Samples, promtool, scrape};
use tonic_blueprint_testkit::{FILE_DESCRIPTOR_SET, SERVER_STREAM, TestServer, UNARY};
use tonic_blueprint_timeout::TimeoutLayer;
use tower::ServiceBuilder;

#[tokio::test]
async fn scraped_metrics_hold_the_whole_family_and_pass_promtool() {
    let handle = exporter::install().expect("install the global recorder");
    let (metrics_addr, _server_task) =
        exporter::spawn_server("127.0.0.1:0".parse().expect("addr"), handle)
            .await
            .expect("metrics server");

    let registry =
        MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors");
    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new().with_registry(registry))
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(100)));
    let server = TestServer::start(Server::builder().layer(stack)).await;
    let raw = server.raw();
    raw.call(UNARY, &[TestRequest::echo("ok")], &[])
        .await
        .expect("call");
    raw.call(UNARY, &[TestRequest::echo("x").panic()], &[])
        .await
        .expect("call");
    raw.call(UNARY, &[TestRequest::echo("x").sleep_ms(1000)], &[])
        .await
        .expect("call");
    raw.call(SERVER_STREAM, &[TestRequest::echo("s").count(2)], &[])
        .await
        .expect("call");

    let text = scrape(metrics_addr).await.expect("scrape /metrics");
    let samples = Samples::parse(&text);
    let unary = [
        ("grpc_service", "blueprint.test.v1.TestService"),
        ("grpc_method", "Unary"),
    ];
    let with_code = |code| {
        let mut labels = unary.to_vec();
        labels.push(("grpc_code", code));
        samples.get("grpc_server_handled_total", &labels)
    };
    assert_eq!(with_code("OK"), Some(1.0));
    assert_eq!(with_code("Internal"), Some(1.0));
    assert_eq!(with_code("DeadlineExceeded"), Some(1.0));
    assert_eq!(samples.get("grpc_server_started_total", &unary), Some(3.0));
    // The shared family the other layers feed, with their HELP and TYPE lines.
    assert_eq!(
        samples.get("grpc_server_panics_recovered_total", &unary),
        Some(1.0)
    );
    assert_eq!(
        samples.get("grpc_server_deadline_exceeded_total", &unary),
        Some(1.0)
    );
    for name in [
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "grpc_server_panics_recovered_total",
        "grpc_server_deadline_exceeded_total",
        "grpc_server_in_flight_calls",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    assert!(text.contains("# TYPE grpc_server_handling_seconds histogram"));

    let (ok, report) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics failed:\n{report}\n---\n{text}");
    assert!(
        report.trim().is_empty(),
        "promtool reported problems:\n{report}"
    );
}
