//! TLS to every backend (feature `tls`), against servers the test starts on free ports with
//! certificates it makes (rcgen): redis-server with `--tls-port`, a PostgreSQL cluster
//! initialised with `ssl = on`, nats-server with `--tls`. And never a silent downgrade: a
//! plaintext server behind a URL that asks for TLS, or a certificate from another CA, is an
//! error that says so.
#![cfg(all(
    feature = "tls",
    feature = "server",
    feature = "redis",
    feature = "db",
    feature = "events",
    feature = "nats"
))]

use fred::prelude::*;
use std::time::Duration;
use tonic_blueprint::config::Loader;
use tonic_blueprint::db::{Database, DatabaseConfig, Query};
use tonic_blueprint::events::{Events, NatsConfig};
use tonic_blueprint::server::{Server, connect_redis_config};
use tonic_blueprint_testkit::{
    OwnNats, OwnPostgres, OwnRedis, ServerTls, TestPki, free_port, unique_prefix,
};

fn server_tls(pki: &TestPki, verify_clients: bool) -> ServerTls {
    let server = pki.server("backend", &[]);
    ServerTls {
        cert: server.cert,
        key: server.key,
        ca: pki.ca_file().to_owned(),
        verify_clients,
    }
}

fn redis_section(vars: &[(&str, String)]) -> tonic_blueprint::config::RedisSection {
    Loader::from_pairs(vars.iter().cloned())
        .load()
        .expect("valid configuration")
        .redis
}

#[tokio::test]
async fn rediss_verifies_the_server_and_presents_a_client_certificate() {
    let pki = TestPki::new("redis");
    let redis = OwnRedis::start_tls(free_port(), &server_tls(&pki, true));
    assert!(redis.url().starts_with("rediss://"));
    let client_cert = pki.client("payments", None);
    let section = redis_section(&[
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", pki.ca_file().display().to_string()),
        (
            "REDIS_CLIENT_CERT_FILE",
            client_cert.cert.display().to_string(),
        ),
        (
            "REDIS_CLIENT_KEY_FILE",
            client_cert.key.display().to_string(),
        ),
    ]);
    let client = connect_redis_config(&section, 1)
        .await
        .expect("connects over TLS");
    let key = format!("{}k", unique_prefix("rediss"));
    client
        .set::<(), _, _>(&key, "over tls", None, None, false)
        .await
        .expect("SET");
    let value: String = client.get(&key).await.expect("GET");
    assert_eq!(value, "over tls");
    client.quit().await.expect("QUIT");

    // The server asks for a client certificate: without one, no connection.
    let without = redis_section(&[
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", pki.ca_file().display().to_string()),
    ]);
    assert!(connect_redis_config(&without, 1).await.is_err());
    // A server certificate from a CA we do not trust: refused.
    let other = TestPki::new("other");
    let untrusted = redis_section(&[
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", other.ca_file().display().to_string()),
        (
            "REDIS_CLIENT_CERT_FILE",
            client_cert.cert.display().to_string(),
        ),
        (
            "REDIS_CLIENT_KEY_FILE",
            client_cert.key.display().to_string(),
        ),
    ]);
    assert!(connect_redis_config(&untrusted, 1).await.is_err());
}

#[tokio::test]
async fn a_plaintext_redis_behind_rediss_stops_the_start_naming_redis_url() {
    let redis = OwnRedis::start(free_port());
    let pki = TestPki::new("plain");
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "off".to_owned()),
        ("REDIS_URL", format!("rediss://127.0.0.1:{}", redis.port())),
        ("REDIS_CA_FILE", pki.ca_file().display().to_string()),
        ("RATE_LIMIT_KEY_SECRET", "shared".to_owned()),
    ])
    .load()
    .expect("valid configuration");
    let error = Server::new(config)
        .preset_stack()
        .await
        .expect_err("no TLS, no start")
        .to_string();
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(error.contains("TLS"), "{error}");
    // A CA file with a plaintext URL is refused before anything connects.
    let error = Loader::from_pairs([
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", pki.ca_file().display().to_string()),
    ])
    .load()
    .expect_err("a CA file for a plaintext URL")
    .to_string();
    assert!(
        error.contains("REDIS_CA_FILE") && error.contains("rediss://"),
        "{error}"
    );
}

async fn uses_tls(db: &Database) -> bool {
    let row = db
        .fetch_one(
            "ssl",
            None,
            Query::new("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        )
        .await
        .expect("pg_stat_ssl");
    row.try_get::<bool>("ssl").expect("a boolean")
}

fn db_config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        min_connections: 0,
        max_connections: 2,
        connect_attempts: 1,
        ..DatabaseConfig::new(url)
    }
}

#[tokio::test]
async fn postgres_sslmodes_are_honoured() {
    let pki = TestPki::new("postgres");
    let tls = OwnPostgres::start(free_port(), Some(&server_tls(&pki, false)));
    let ca = pki.ca_file().display().to_string();

    for query in [
        format!("?sslmode=verify-full&sslrootcert={ca}"),
        format!("?sslmode=verify-ca&sslrootcert={ca}"),
        "?sslmode=require".to_owned(),
        format!("?sslmode=require&sslrootcert={ca}"),
    ] {
        let db = Database::connect(&db_config(tls.url(&query)))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(uses_tls(&db).await, "{query}: not encrypted");
        db.close().await;
    }

    // verify-full and verify-ca check the chain: another CA is refused, and so is `require`
    // with another CA's sslrootcert (verified, as libpq does).
    let other = TestPki::new("other");
    let other_ca = other.ca_file().display().to_string();
    for query in [
        format!("?sslmode=verify-full&sslrootcert={other_ca}"),
        format!("?sslmode=require&sslrootcert={other_ca}"),
    ] {
        let error = Database::connect(&db_config(tls.url(&query)))
            .await
            .expect_err("an untrusted server certificate")
            .to_string();
        assert!(error.contains("DATABASE_URL"), "{query}: {error}");
    }

    // A server without TLS: `require` never falls back to plaintext; `prefer` does (and says
    // so in the docs).
    let plain = OwnPostgres::start(free_port(), None);
    let error = Database::connect(&db_config(plain.url("?sslmode=require")))
        .await
        .expect_err("no TLS offered")
        .to_string();
    assert!(
        error.contains("does not support TLS") && error.contains("DATABASE_URL"),
        "{error}"
    );
    let db = Database::connect(&db_config(plain.url("?sslmode=prefer")))
        .await
        .expect("prefer connects in plaintext");
    assert!(!uses_tls(&db).await);
    db.close().await;
}

async fn round_trip(events: &Events) {
    let client = events.client();
    let subject = format!("tls.check.{}", free_port());
    let mut subscription = client.subscribe(subject.clone()).await.expect("subscribe");
    client
        .publish(subject, "over tls".into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    let message = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut subscription),
    )
    .await
    .expect("a message within 5 s")
    .expect("a message");
    assert_eq!(&message.payload[..], b"over tls");
}

fn nats_config(url: String, ca: Option<&std::path::Path>) -> NatsConfig {
    NatsConfig {
        ca_file: ca.map(ToOwned::to_owned),
        connect_attempts: 1,
        jetstream: false,
        ..NatsConfig::with_url(url)
    }
}

#[tokio::test]
async fn nats_over_tls_with_tls_urls_and_servers_that_require_it() {
    let pki = TestPki::new("nats");
    let store = tempfile::tempdir().expect("store dir");
    let nats = OwnNats::start_tls(free_port(), store.path(), &server_tls(&pki, false));
    let port = nats.port();

    // tls:// and a nats:// URL to a server that announces tls_required: both TLS, verified.
    for url in [
        format!("tls://127.0.0.1:{port}"),
        format!("nats://127.0.0.1:{port}"),
    ] {
        let events = Events::connect(&nats_config(url.clone(), Some(pki.ca_file())))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        round_trip(&events).await;
        events.drain().await.expect("drain");
    }
    // Another CA's certificate is refused.
    let other = TestPki::new("other");
    let refused = Events::connect(&nats_config(
        format!("tls://127.0.0.1:{port}"),
        Some(other.ca_file()),
    ))
    .await;
    assert!(refused.is_err());

    // tls:// to a server without TLS: refused, never plaintext.
    let plain_store = tempfile::tempdir().expect("store dir");
    let plain = OwnNats::start(free_port(), plain_store.path());
    let error = Events::connect(&nats_config(
        format!("tls://127.0.0.1:{}", plain.port()),
        Some(pki.ca_file()),
    ))
    .await
    .expect_err("the server does not speak TLS")
    .to_string();
    assert!(error.contains("requires TLS"), "{error}");

    // A credentials file that is not there is named.
    let error = Events::connect(&NatsConfig {
        creds_file: Some("/nonexistent/user.creds".into()),
        ..nats_config(plain.url(), None)
    })
    .await
    .expect_err("no credentials file")
    .to_string();
    assert!(error.contains("/nonexistent/user.creds"), "{error}");
}

#[tokio::test]
async fn nats_client_certificates_for_servers_that_verify_clients() {
    let pki = TestPki::new("nats-mtls");
    let store = tempfile::tempdir().expect("store dir");
    let nats = OwnNats::start_tls(free_port(), store.path(), &server_tls(&pki, true));
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let client = pki.client("payments", None);
    let events = Events::connect(&NatsConfig {
        client_cert_file: Some(client.cert.clone()),
        client_key_file: Some(client.key.clone()),
        ..nats_config(url.clone(), Some(pki.ca_file()))
    })
    .await
    .expect("a verified client certificate");
    round_trip(&events).await;
    events.drain().await.expect("drain");
    assert!(
        Events::connect(&nats_config(url, Some(pki.ca_file())))
            .await
            .is_err()
    );
}
