//! `/metrics` of the full example passes `promtool check metrics` (every family with HELP and
//! TYPE) once the database, the cache client and the events are in use: SQLite, a Redis and
//! a NATS with JetStream the test starts itself.

mod common;

use common::PaymentsProcess;
use payments_example::metadata_text;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest};
use payments_example::token::{DEV_SECRET, authorize, mint};
use std::time::Duration;
use tonic::Request;
use tonic_blueprint_testkit::prom::{promtool, scrape};
use tonic_blueprint_testkit::{OwnNats, OwnRedis, free_port};

fn signed<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    let token = mint(DEV_SECRET, user, Duration::from_secs(3600)).expect("mint a token");
    authorize(&mut request, &token);
    request
}

fn list(user: &str) -> Request<ListPaymentsRequest> {
    signed(
        ListPaymentsRequest {
            user_id: user.to_owned(),
            page_size: 10,
            page_token: String::new(),
        },
        user,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_with_the_database_cache_and_events_in_use() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = OwnRedis::start(free_port());
    let nats = OwnNats::start(free_port(), &dir.path().join("nats"));
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let server = PaymentsProcess::start(&[
        ("METRICS_ADDR", metrics.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/payments.db", dir.path().display()),
        ),
        ("REDIS_URL", redis.url()),
        ("NATS_URL", nats.url()),
        ("RATE_LIMIT_KEY_SECRET", "metrics-promtool-test".to_owned()),
    ]);
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");

    // The cache: a page stored, then dropped by the payment's tag invalidation.
    let page = client.list_payments(list("alice")).await.expect("list");
    assert_eq!(metadata_text(&page, "x-cache"), "miss");
    // The database and the events: stored, then published to JetStream.
    let payment = client
        .create_payment(signed(
            CreatePaymentRequest {
                user_id: "alice".to_owned(),
                amount_cents: 700,
                currency: "EUR".to_owned(),
                description: "promtool".to_owned(),
            },
            "alice",
        ))
        .await
        .expect("create")
        .into_inner();
    for expected in ["miss", "hit"] {
        let got = client
            .get_payment(signed(
                GetPaymentRequest {
                    id: payment.id.clone(),
                },
                "alice",
            ))
            .await
            .expect("get");
        assert_eq!(metadata_text(&got, "x-cache"), expected);
    }

    let text = scrape(metrics).await.expect("scrape /metrics");
    let (ok, report) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics:\n{report}\n{text}");
    for family in [
        "grpc_server_handled_total",
        "grpc_server_db_queries_total",
        "grpc_server_db_query_duration_seconds",
        "grpc_server_cache_hits_total",
        "grpc_server_cache_deletes_total",
        "nats_messages_published_total",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {family} "))),
            "{family} recorded and described in:\n{text}"
        );
    }
    assert!(server.stop().success());
}
