//! Long-lived streams over real sockets against the `payments` binary with the kit's
//! defaults: the request timeout (30 s) bounds calls, not streams.
//!
//! - A `WatchPayments` with no deadline stays open for more than two minutes (keepalive
//!   pinging every second both ways: the test lowers the keepalive intervals, not the
//!   timeout policy) and then receives a payment created at the end; so does health's
//!   `Watch`, a server stream of the kit's own.
//! - `STREAM_TIMEOUT_SECONDS` bounds streams when set, and a client's `grpc-timeout` ends a
//!   watch with DEADLINE_EXCEEDED, while unary calls keep the request timeout.
//!
//! Its own test binary: the two-minute test is the slow one of the example's tests, and
//! shares the machine only with the short one here.

mod common;

use common::PaymentsProcess;
use futures_util::StreamExt;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, Payment, WatchPaymentsRequest};
use payments_example::token::{authorize, mint};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const SECRET: &str = "payments-watch-long-test-secret";
/// Longer than the two minutes, and four times the request timeout.
const OPEN_FOR: Duration = Duration::from_secs(125);

fn authed<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    let token = mint(SECRET, user, Duration::from_secs(3600)).expect("mint a token");
    authorize(&mut request, &token);
    request
}

fn server(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> PaymentsProcess {
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("payments.db").display()),
        ),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", String::new()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    PaymentsProcess::start(&env)
}

/// A channel that pings the server every second, even with no call in flight.
async fn pinging_channel(uri: &str) -> Channel {
    Endpoint::from_shared(uri.to_owned())
        .expect("uri")
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .expect("connect")
}

fn watch_request(user: &str) -> Request<WatchPaymentsRequest> {
    authed(
        WatchPaymentsRequest {
            user_id: user.to_owned(),
            after_sequence: None,
        },
        user,
    )
}

async fn create(client: &mut PaymentServiceClient<Channel>, user: &str) -> Payment {
    let mut request = authed(
        CreatePaymentRequest {
            user_id: user.to_owned(),
            amount_cents: 4200,
            currency: "EUR".to_owned(),
            description: "at the end".to_owned(),
        },
        user,
    );
    request.set_timeout(Duration::from_secs(20));
    client
        .create_payment(request)
        .await
        .expect("create")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_without_a_deadline_stays_open_for_minutes_and_still_delivers() {
    let dir = tempfile::tempdir().expect("dir");
    // The kit's timeouts as shipped (REQUEST_TIMEOUT_SECONDS 30, no stream timeout); only
    // the keepalive is faster, so it is exercised many times over.
    let server = server(
        &dir,
        &[
            ("KEEPALIVE_INTERVAL_SECONDS", "1"),
            ("KEEPALIVE_TIMEOUT_SECONDS", "5"),
        ],
    );
    let channel = pinging_channel(&server.uri).await;
    let mut client = PaymentServiceClient::new(channel.clone());
    let user = "patient";
    let mut watching = client
        .watch_payments(watch_request(user))
        .await
        .expect("watch")
        .into_inner();
    let mut health: Streaming<HealthCheckResponse> = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "payments.v1.PaymentService".to_owned(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let first = health
        .next()
        .await
        .expect("a first health status")
        .expect("health status");
    assert_eq!(first.status(), ServingStatus::Serving);

    // Waiting for a real time limit to pass: neither stream may yield or end before it.
    let started = Instant::now();
    let (payments, statuses) = tokio::join!(
        tokio::time::timeout(OPEN_FOR, watching.next()),
        tokio::time::timeout(OPEN_FOR, health.next()),
    );
    assert!(
        payments.is_err(),
        "the watch yielded or ended after {:?}: {payments:?}",
        started.elapsed()
    );
    assert!(
        statuses.is_err(),
        "health's watch yielded or ended after {:?}: {statuses:?}",
        started.elapsed()
    );
    let open_for = started.elapsed();
    assert!(open_for >= Duration::from_secs(120), "{open_for:?}");

    // The payment created at the end arrives on the same, still open stream.
    let payment = create(&mut client, user).await;
    let delivered = tokio::time::timeout(Duration::from_secs(10), watching.next())
        .await
        .expect("the payment within 10 s")
        .expect("the watch is open")
        .expect("a payment");
    assert_eq!(delivered.id, payment.id);
    eprintln!(
        "a watch with no deadline stayed open {open_for:?} (request timeout 30 s) and delivered sequence {}",
        delivered.sequence
    );
    drop((watching, health));
    assert!(server.stop().success());
}

async fn watch_status(
    client: &mut PaymentServiceClient<Channel>,
    request: Request<WatchPaymentsRequest>,
) -> (Status, Duration) {
    let started = Instant::now();
    let mut stream = client
        .watch_payments(request)
        .await
        .expect("watch")
        .into_inner();
    let status = match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        Ok(Some(Err(status))) => status,
        other => panic!("expected the watch to end with a status, got {other:?}"),
    };
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_timeout_or_a_client_deadline_ends_a_watch_and_calls_keep_theirs() {
    let dir = tempfile::tempdir().expect("dir");
    let server = server(
        &dir,
        &[
            ("STREAM_TIMEOUT_SECONDS", "2"),
            ("REQUEST_TIMEOUT_SECONDS", "30"),
        ],
    );
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");

    // STREAM_TIMEOUT_SECONDS: the server ends the watch in its trailers.
    let (status, elapsed) = watch_status(&mut client, watch_request("bounded")).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(6)).contains(&elapsed),
        "{elapsed:?}"
    );

    // The client's own deadline, shorter, wins.
    let mut request = watch_request("bounded");
    request.set_timeout(Duration::from_millis(800));
    let (status, elapsed) = watch_status(&mut client, request).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(elapsed < Duration::from_millis(1900), "{elapsed:?}");

    // A unary call is not a stream: it still has the request timeout, and works.
    let payment = create(&mut client, "bounded").await;
    assert_eq!(payment.user_id, "bounded");
    assert!(server.stop().success());
}
