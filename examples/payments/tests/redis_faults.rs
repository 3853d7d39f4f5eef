//! A sick Redis never stalls a call: the `payments` binary on a Redis this test owns, hung
//! with SIGSTOP (connections stay open, nothing answers, as a saturated or partitioned Redis
//! behaves) and then killed. `CreatePayment`, `GetPayment` and `ListPayments` answer OK
//! within 1 s each throughout (the rate limiter fails open, the cache goes to the handler, the
//! page invalidation fails, logged and counted in `grpc_server_cache_errors_total`), and
//! caching resumes once Redis answers again.

mod common;

use common::PaymentsProcess;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest};
use payments_example::token::{DEV_SECRET, authorize, mint};
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_blueprint_testkit::prom::{Samples, scrape};
use tonic_blueprint_testkit::{OwnRedis, free_port};

/// The bound the issue sets on each call while Redis is sick.
const WITHIN: Duration = Duration::from_secs(1);
const USER: &str = "redis-faults";

type Client = PaymentServiceClient<Channel>;

fn authed<T>(message: T) -> Request<T> {
    let token = mint(DEV_SECRET, USER, Duration::from_secs(3600)).expect("mint a token");
    let mut request = Request::new(message);
    authorize(&mut request, &token);
    // The client's own deadline: a stalled call would end DEADLINE_EXCEEDED, not hang.
    request.set_timeout(Duration::from_secs(10));
    request
}

fn create() -> Request<CreatePaymentRequest> {
    authed(CreatePaymentRequest {
        user_id: USER.to_owned(),
        amount_cents: 700,
        currency: "EUR".to_owned(),
        description: "faults".to_owned(),
    })
}

fn get(id: &str) -> Request<GetPaymentRequest> {
    authed(GetPaymentRequest { id: id.to_owned() })
}

fn list() -> Request<ListPaymentsRequest> {
    authed(ListPaymentsRequest {
        user_id: USER.to_owned(),
        page_size: 50,
        ..ListPaymentsRequest::default()
    })
}

fn x_cache<T>(response: &Response<T>) -> String {
    response
        .metadata()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Runs one call, asserts it answered OK within [`WITHIN`], and returns it with its time.
async fn timed<T>(
    what: &str,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> (Response<T>, Duration) {
    let started = Instant::now();
    let response = call
        .await
        .unwrap_or_else(|status| panic!("{what}: {status:?}"));
    let took = started.elapsed();
    assert!(took < WITHIN, "{what} took {took:?}");
    (response, took)
}

/// Three rounds of the three calls; returns the slowest of each, in order.
async fn three_rounds(client: &mut Client, phase: &str) -> [Duration; 3] {
    let mut slowest = [Duration::ZERO; 3];
    for round in 0..3 {
        let (created, took) = timed(
            &format!("{phase}: CreatePayment {round}"),
            client.create_payment(create()),
        )
        .await;
        slowest[0] = slowest[0].max(took);
        let payment = created.into_inner();
        let (got, took) = timed(
            &format!("{phase}: GetPayment {round}"),
            client.get_payment(get(&payment.id)),
        )
        .await;
        slowest[1] = slowest[1].max(took);
        assert_eq!(got.into_inner().id, payment.id);
        let (page, took) = timed(
            &format!("{phase}: ListPayments {round}"),
            client.list_payments(list()),
        )
        .await;
        slowest[2] = slowest[2].max(took);
        assert!(
            page.into_inner()
                .payments
                .iter()
                .any(|p| p.id == payment.id),
            "{phase}: the new payment is listed (its page was not served stale)"
        );
    }
    eprintln!(
        "{phase}: slowest CreatePayment {:?}, GetPayment {:?}, ListPayments {:?}",
        slowest[0], slowest[1], slowest[2]
    );
    slowest
}

/// Reads `id` until a read is served from the cache (Redis answers again).
async fn until_hit(client: &mut Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (response, _) = timed("GetPayment", client.get_payment(get(id))).await;
        if x_cache(&response) == "hit" {
            return;
        }
        assert!(Instant::now() < deadline, "caching did not resume");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_answer_within_a_second_while_redis_hangs_and_after_it_dies() {
    let mut redis = OwnRedis::start(free_port());
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let failed_invalidations = || async move {
        let text = scrape(metrics).await.expect("scrape /metrics");
        Samples::parse(&text)
            .get(
                "grpc_server_cache_errors_total",
                &[("cache_operation", "invalidate_tag")],
            )
            .unwrap_or(0.0)
    };
    let dir = tempfile::tempdir().expect("dir");
    let server = PaymentsProcess::start(&[
        (
            "DATABASE_URL",
            format!("sqlite://{}/payments.db", dir.path().display()),
        ),
        ("METRICS_ADDR", metrics.to_string()),
        ("REDIS_URL", redis.url()),
        ("RATE_LIMIT_KEY_SECRET", "redis-faults-test".to_owned()),
        ("RATE_LIMIT_PER_MINUTE", "100000".to_owned()),
    ]);
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");

    // Healthy: cached reads are hits.
    three_rounds(&mut client, "healthy").await;
    let payment = client
        .create_payment(create())
        .await
        .expect("create")
        .into_inner();
    let first = client.get_payment(get(&payment.id)).await.expect("get");
    assert_eq!(x_cache(&first), "miss");
    until_hit(&mut client, &payment.id).await;

    assert_eq!(failed_invalidations().await, 0.0);

    // Hung: every call still answers OK within a second.
    redis.pause();
    three_rounds(&mut client, "redis hung (SIGSTOP)").await;
    let after_hang = failed_invalidations().await;
    assert_eq!(
        after_hang, 3.0,
        "each CreatePayment's invalidation failed and was counted"
    );
    redis.resume();
    // It answers again: the cache works again, without a restart.
    three_rounds(&mut client, "redis resumed").await;
    until_hit(&mut client, &payment.id).await;

    // Killed: the same.
    redis.kill();
    three_rounds(&mut client, "redis killed").await;
    assert_eq!(failed_invalidations().await, after_hang + 3.0);

    let status = server.stop();
    assert!(status.success(), "the server exits cleanly: {status:?}");
}
