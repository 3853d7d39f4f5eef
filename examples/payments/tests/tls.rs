//! The payments binary with TLS on every hop: its gRPC server speaks only TLS and requires
//! client certificates, and Redis (`rediss://`, redis-server `--tls-port`), PostgreSQL
//! (`sslmode=verify-full`, a cluster with `ssl = on`) and NATS (`tls://`, nats-server `--tls`)
//! are each reached over TLS, every server started by the test on a free port with
//! certificates it makes (rcgen). A plaintext Redis behind `rediss://` stops the start with
//! an error naming `REDIS_URL`.

mod common;

use common::PaymentsProcess;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest};
use payments_example::token::{authorize, mint};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_blueprint::events::{Events, NatsConfig};
use tonic_blueprint_testkit::{
    CertFiles, OwnNats, OwnPostgres, OwnRedis, ServerTls, TestPki, free_port,
};

const SECRET: &str = "payments-tls-secret-of-at-least-32-bytes";

fn backend_tls(pki: &TestPki) -> ServerTls {
    let server = pki.server("backend", &[]);
    ServerTls {
        cert: server.cert,
        key: server.key,
        ca: pki.ca_file().to_owned(),
        verify_clients: false,
    }
}

async fn channel(addr: &str, pki: &TestPki, client: &CertFiles) -> Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pki.ca_pem()))
                .identity(Identity::from_pem(&client.cert_pem, &client.key_pem))
                .domain_name("localhost"),
        )
        .expect("TLS")
        .connect()
        .await
        .expect("a TLS connection with a client certificate")
}

fn with_token<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    authorize(
        &mut request,
        &mint(SECRET, user, Duration::from_secs(600)).expect("token"),
    );
    request.set_timeout(Duration::from_secs(10));
    request
}

#[tokio::test]
async fn tls_everywhere() {
    let pki = TestPki::new("payments-tls");
    let backend = backend_tls(&pki);
    let ca = pki.ca_file().display().to_string();
    let redis = OwnRedis::start_tls(free_port(), &backend);
    let postgres = OwnPostgres::start(free_port(), Some(&backend));
    let store = tempfile::tempdir().expect("NATS store");
    let nats = OwnNats::start_tls(free_port(), store.path(), &backend);
    let nats_url = format!("tls://127.0.0.1:{}", nats.port());

    // The event of the payment, read over TLS too.
    let events = Events::connect(&NatsConfig {
        ca_file: Some(pki.ca_file().to_owned()),
        jetstream: false,
        ..NatsConfig::with_url(nats_url.clone())
    })
    .await
    .expect("NATS over TLS");
    let mut created = events
        .client()
        .subscribe("payments.payment.created")
        .await
        .expect("subscribe");
    events.client().flush().await.expect("flush");

    let grpc = pki.server("payments", &[]);
    let server = PaymentsProcess::start(&[
        (
            "DATABASE_URL",
            postgres.url(&format!("?sslmode=verify-full&sslrootcert={ca}")),
        ),
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", ca.clone()),
        ("NATS_URL", nats_url),
        ("NATS_CA_FILE", ca.clone()),
        ("TLS_CERT_FILE", grpc.cert.display().to_string()),
        ("TLS_KEY_FILE", grpc.key.display().to_string()),
        ("TLS_CLIENT_CA_FILE", ca.clone()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("RATE_LIMIT_KEY_SECRET", "payments-tls".to_owned()),
    ]);
    let addr = server.uri.trim_start_matches("http://").to_owned();
    let alice = pki.client("alice", None);
    let mut client = PaymentServiceClient::new(channel(&addr, &pki, &alice).await);

    let payment = client
        .create_payment(with_token(
            CreatePaymentRequest {
                user_id: "alice".to_owned(),
                amount_cents: 1250,
                currency: "EUR".to_owned(),
                description: "over TLS".to_owned(),
            },
            "alice",
        ))
        .await
        .expect("CreatePayment: PostgreSQL over TLS")
        .into_inner();
    // Cached in Redis over TLS: the second read is a hit.
    for expected in ["miss", "hit"] {
        let response = client
            .get_payment(with_token(
                GetPaymentRequest {
                    id: payment.id.clone(),
                },
                "alice",
            ))
            .await
            .expect("GetPayment");
        assert_eq!(
            payments_example::metadata_text(&response, "x-cache"),
            expected
        );
    }
    // Announced on NATS over TLS.
    let message = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut created),
    )
    .await
    .expect("the payment's event within 10 s")
    .expect("an event");
    assert!(
        String::from_utf8_lossy(&message.payload).contains(&payment.id),
        "{message:?}"
    );

    // The client certificate names the caller of a call without a token (AUTH_MTLS_IDENTITY
    // defaults to cn): alice lists her payments with no token at all.
    let mut request = Request::new(ListPaymentsRequest {
        user_id: "alice".to_owned(),
        page_size: 10,
        ..ListPaymentsRequest::default()
    });
    request.set_timeout(Duration::from_secs(10));
    let listed = client
        .list_payments(request)
        .await
        .expect("ListPayments as the certificate's subject")
        .into_inner();
    assert!(listed.payments.iter().any(|p| p.id == payment.id));

    // A client certificate from another CA never reaches the service.
    let rogue = TestPki::new("rogue");
    let mallory = rogue.client("alice", None);
    let refused = async {
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| e.to_string())?
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(pki.ca_pem()))
                    .identity(Identity::from_pem(&mallory.cert_pem, &mallory.key_pem))
                    .domain_name("localhost"),
            )
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        PaymentServiceClient::new(channel)
            .get_payment(with_token(
                GetPaymentRequest {
                    id: payment.id.clone(),
                },
                "alice",
            ))
            .await
            .map_err(|e| e.to_string())
    };
    assert!(refused.await.is_err());

    // Stopped off the runtime: the open client connection must keep answering the server's
    // shutdown (GOAWAY, PING) meanwhile.
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(status.success(), "exit status {status}");
    events.drain().await.expect("drain");
}

#[test]
fn a_plaintext_redis_behind_rediss_stops_the_start_naming_redis_url() {
    let redis = OwnRedis::start(free_port());
    let pki = TestPki::new("payments-plain");
    let db = tempfile::tempdir().expect("database dir");
    let child = Command::new(env!("CARGO_BIN_EXE_payments"))
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env("LOG_LEVEL", "warn")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", db.path().join("payments.db").display()),
        )
        .env("REDIS_URL", format!("rediss://127.0.0.1:{}", redis.port()))
        .env("REDIS_CA_FILE", pki.ca_file())
        .env("RATE_LIMIT_KEY_SECRET", "plain")
        .env("NATS_URL", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the payments binary");
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for the binary"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the payments binary did not stop within 60 s");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it served: {stdout}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("payments: ") && last.contains("REDIS_URL") && last.contains("TLS"),
        "{stderr}"
    );
}
