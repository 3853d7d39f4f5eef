//! The monitoring wiring of the example: the Prometheus configuration is valid, the Grafana
//! provider loads the tonic-blueprint dashboard, and a running payments service exposes,
//! for `payments.v1.PaymentService`, every metric family the dashboard queries.

mod common;

use common::PaymentsProcess;
use payments_example::pb::GetPaymentRequest;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::token::{DEV_SECRET, authorize, mint};
use std::io::{Read, Write};
use tonic_blueprint_testkit::prom::promtool;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[test]
fn prometheus_config_is_valid_and_the_provider_points_at_the_dashboard() {
    let config = format!("{ROOT}/examples/payments/grafana/prometheus.yml");
    let (ok, report) = promtool(&["check", "config", &config], None);
    assert!(ok, "{report}");
    let provider = std::fs::read_to_string(format!(
        "{ROOT}/examples/payments/grafana/provisioning/dashboards/payments.yml"
    ))
    .expect("provider");
    assert!(provider.contains("path: examples/grafana"));
    assert!(
        std::path::Path::new(&format!(
            "{ROOT}/examples/grafana/tonic-blueprint-dashboard.json"
        ))
        .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_exposes_what_the_dashboard_queries() {
    let dir = tempfile::tempdir().expect("dir");
    let metrics = format!("127.0.0.1:{}", tonic_blueprint_testkit::free_port());
    let server = PaymentsProcess::start(&[
        ("METRICS_ADDR", metrics.clone()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/payments.db", dir.path().display()),
        ),
    ]);
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");
    let mut request = tonic::Request::new(GetPaymentRequest {
        id: "01900000-0000-7000-8000-000000000000".to_owned(),
    });
    let token = mint(DEV_SECRET, "grafana", std::time::Duration::from_secs(3600)).expect("token");
    authorize(&mut request, &token);
    let missing = client
        .get_payment(request)
        .await
        .expect_err("no such payment");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let text = tokio::task::spawn_blocking(move || scrape(&metrics))
        .await
        .expect("scrape");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{ROOT}/examples/grafana/tonic-blueprint-dashboard.json"
        ))
        .expect("dashboard"),
    )
    .expect("JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    for family in [
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(family)),
            "the dashboard queries {family}"
        );
        assert!(
            text.lines().any(|l| l.starts_with(family)
                && l.contains("grpc_service=\"payments.v1.PaymentService\"")),
            "{family} for the payments service in:\n{text}"
        );
    }
    assert!(
        text.contains("grpc_code=\"NotFound\""),
        "the NOT_FOUND call is counted"
    );
    assert!(server.stop().success());
}
