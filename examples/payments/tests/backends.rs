//! The same binary on PostgreSQL, Redis and NATS with JetStream: payments land in
//! `pay_payment` in PostgreSQL, cached answers and rate-limit counters live in Redis, and
//! every created payment reaches `payments.payment.created` with the caller's request id,
//! even when NATS was down when the payment was made (the outbox relay publishes it later).

mod common;

use common::PaymentsProcess;
use fred::prelude::*;
use futures_util::StreamExt;
use payments_example::metadata_text;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest};
use payments_example::token::{DEV_SECRET, authorize, mint};
use std::time::Duration;
use tonic::Request;
use tonic_blueprint::db::{Database, DatabaseConfig, Query};
use tonic_blueprint_testkit::{OwnNats, free_port, unique_prefix};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The caller's bearer token (the servers here run with the default development secret).
fn caller<T>(request: &mut Request<T>, user: &str) {
    let token = mint(DEV_SECRET, user, Duration::from_secs(3600)).expect("mint a token");
    authorize(request, &token);
}

fn create(user: &str, request_id: &str, cents: i64) -> Request<CreatePaymentRequest> {
    let mut request = Request::new(CreatePaymentRequest {
        user_id: user.to_owned(),
        amount_cents: cents,
        currency: "EUR".to_owned(),
        description: "integration".to_owned(),
    });
    caller(&mut request, user);
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().expect("ascii"));
    request
}

fn list(user: &str) -> Request<ListPaymentsRequest> {
    let mut request = Request::new(ListPaymentsRequest {
        user_id: user.to_owned(),
        page_size: 10,
        page_token: String::new(),
    });
    caller(&mut request, user);
    request
}

fn get(user: &str, id: &str) -> Request<GetPaymentRequest> {
    let mut request = Request::new(GetPaymentRequest { id: id.to_owned() });
    caller(&mut request, user);
    request
}

/// A connection to the shared `test` database, for creating and dropping others.
async fn admin() -> Database {
    Database::connect(&DatabaseConfig {
        min_connections: 0,
        max_connections: 1,
        ..DatabaseConfig::new(POSTGRES)
    })
    .await
    .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it)")
}

/// A database of its own: the `test` database's migration history belongs to other tests.
async fn own_database(name: &str) -> (Database, String) {
    let admin = admin().await;
    admin
        .execute(
            "drop_db",
            None,
            Query::new(format!("DROP DATABASE IF EXISTS {name}")),
        )
        .await
        .expect("drop");
    admin
        .execute(
            "create_db",
            None,
            Query::new(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("create");
    admin.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let db = Database::connect(&DatabaseConfig {
        min_connections: 0,
        max_connections: 2,
        ..DatabaseConfig::new(url.clone())
    })
    .await
    .expect("connect");
    (db, url)
}

async fn next_event(events: &mut async_nats::Subscriber) -> (serde_json::Value, Option<String>) {
    let message = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("an event within 20 s")
        .expect("subscription open");
    let request_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get("x-request-id"))
        .map(|v| v.as_str().to_owned());
    (
        serde_json::from_slice(&message.payload).expect("JSON event"),
        request_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_redis_and_nats_are_used_and_no_event_is_lost() {
    let prefix = unique_prefix("payments-backends").replace([':', '.'], "-");
    let db_name = format!("payments_it_{}", std::process::id());
    let (db, database_url) = own_database(&db_name).await;
    let nats_dir = tempfile::tempdir().expect("dir");
    let mut nats = OwnNats::start(free_port(), nats_dir.path());
    let watcher = async_nats::connect(nats.url()).await.expect("NATS");
    let mut events = watcher
        .subscribe("payments.payment.created")
        .await
        .expect("subscribe");
    watcher.flush().await.expect("flush");

    let backends = [
        ("SERVICE_NAME", prefix.clone()),
        ("DATABASE_URL", database_url),
        ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
        ("NATS_URL", nats.url()),
        // Both replicas hash rate-limit keys alike.
        ("RATE_LIMIT_KEY_SECRET", "payments-backends-test".to_owned()),
    ];
    let server = PaymentsProcess::start(&backends);
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");

    // PostgreSQL and NATS: the payment is stored, announced with the request id, and marked.
    let payment = client
        .create_payment(create("alice", "it-create-1", 500))
        .await
        .expect("create")
        .into_inner();
    let (event, request_id) = next_event(&mut events).await;
    assert_eq!(event["id"], payment.id.as_str());
    assert_eq!(event["user_id"], "alice");
    assert_eq!(request_id.as_deref(), Some("it-create-1"));
    let row = db
        .fetch_one(
            "check",
            None,
            Query::new("SELECT amount_cents, event_published FROM pay_payment WHERE id = $1")
                .bind(payment.id.as_str()),
        )
        .await
        .expect("the row is in PostgreSQL");
    assert_eq!(row.try_get::<i64>("amount_cents").expect("amount"), 500);
    assert_eq!(row.try_get::<i64>("event_published").expect("flag"), 1);

    // Redis: the second read is a hit, and the entry and the rate-limit counters are there.
    for expected in ["miss", "hit"] {
        let response = client
            .get_payment(get("alice", &payment.id))
            .await
            .expect("get");
        assert_eq!(
            response
                .metadata()
                .get("x-cache")
                .and_then(|v| v.to_str().ok()),
            Some(expected)
        );
    }
    let redis = Builder::default_centralized()
        .build()
        .expect("redis client");
    redis.init().await.expect("Redis on 127.0.0.1:6379");
    let cache_keys: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}:cache:*")])
        .await
        .expect("KEYS");
    assert!(!cache_keys.is_empty(), "cache entries in Redis");
    let limit_keys: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}:ratelimit:*")])
        .await
        .expect("KEYS");
    assert!(!limit_keys.is_empty(), "rate-limit counters in Redis");

    // A second replica on the same Redis and NATS: its CreatePayment drops the first
    // replica's local copy of the user's page through the NATS broadcast, well before the
    // local tier's 5 s TTL would have.
    let replica = PaymentsProcess::start(&backends);
    let mut other = PaymentServiceClient::connect(replica.uri.clone())
        .await
        .expect("connect");
    for expected in ["miss", "hit"] {
        let page = client.list_payments(list("bob")).await.expect("list");
        assert_eq!(metadata_text(&page, "x-cache"), expected);
    }
    let bobs = other
        .create_payment(create("bob", "it-create-bob", 900))
        .await
        .expect("create on the other replica")
        .into_inner();
    let _ = next_event(&mut events).await;
    // The broadcast is asynchronous: ask again every 50 ms, for at most 2 s.
    let started = std::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let fresh = loop {
        every.tick().await;
        let page = client.list_payments(list("bob")).await.expect("list");
        if metadata_text(&page, "x-cache") == "miss" {
            break page.into_inner();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the first replica still serves its local copy"
        );
    };
    assert_eq!(fresh.payments[0].id, bobs.id);
    assert!(replica.stop().success());

    // NATS down: the payment is still made; the relay announces it after the restart.
    nats.kill();
    let late = client
        .create_payment(create("alice", "it-create-2", 700))
        .await
        .expect("a payment is made while NATS is down")
        .into_inner();
    let pending = db
        .fetch_one(
            "check",
            None,
            Query::new("SELECT event_published FROM pay_payment WHERE id = $1")
                .bind(late.id.as_str()),
        )
        .await
        .expect("row");
    assert_eq!(pending.try_get::<i64>("event_published").expect("flag"), 0);
    nats.restart();
    // The test's own subscription reconnects by itself; the event arrives once the server's
    // client reconnected and the relay ran.
    let (event, request_id) = next_event(&mut events).await;
    assert_eq!(event["id"], late.id.as_str());
    assert_eq!(request_id.as_deref(), Some("it-create-2"));

    assert!(server.stop().success(), "graceful exit");
    let _: () = redis
        .del(cache_keys.into_iter().chain(limit_keys).collect::<Vec<_>>())
        .await
        .unwrap_or(());
    db.close().await;
    let admin = admin().await;
    admin
        .execute(
            "drop_db",
            None,
            Query::new(format!("DROP DATABASE IF EXISTS {db_name}")),
        )
        .await
        .expect("drop the test's database");
    admin.close().await;
}
