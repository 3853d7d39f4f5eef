//! One trace across the payments service and a consumer of its events, over real sockets and
//! two processes: `CreatePayment` on the `payments` binary (exporting spans over OTLP, set
//! up by the standard variables only) joins the client's `traceparent`; its
//! `payments.payment.created` event carries the trace; a kit consumer in this process
//! continues it in a consumer span whose parent is the exported `CreatePayment` span.

mod common;

use common::PaymentsProcess;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use payments_example::pb::CreatePaymentRequest;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::token::{authorize, mint};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Request;
use tonic_blueprint::events::{Delivery, Events, NatsConfig, Subject};
use tonic_blueprint_testkit::OwnNats;

const SECRET: &str = "payments-trace-test-secret";
const TRACE: &str = "a3ce929d0e0e47364bf92f3577b34da6";
const PARENT: &str = "5e0c63257de34c92";

/// An OTLP/gRPC receiver (opentelemetry-proto's generated server) keeping every span.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().expect("lock").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Any value of a single-event payment: only the trace matters here.
#[derive(Debug, serde::Deserialize)]
struct AnyEvent {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_payment_is_one_trace_from_the_call_through_its_event_to_a_consumer() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let nats_dir = tempfile::tempdir().expect("dir");
    let nats = OwnNats::start(tonic_blueprint_testkit::free_port(), nats_dir.path());
    let events = Events::connect(&NatsConfig {
        jetstream: false,
        ..NatsConfig::with_url(nats.url())
    })
    .await
    .expect("NATS");
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let created = Subject::new("payments", "payment", "created").expect("subject");
    let consumer = events
        .subscribe_queue(&created, "trace-test", move |d: Delivery<AnyEvent>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(d);
                Ok::<(), String>(())
            }
        })
        .await
        .expect("consumer");

    let db = tempfile::tempdir().expect("dir");
    let server = PaymentsProcess::start(&[
        (
            "DATABASE_URL",
            format!("sqlite://{}", db.path().join("payments.db").display()),
        ),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", nats.url()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
        ("OTEL_SERVICE_NAME", "payments-trace-test".to_owned()),
    ]);
    let mut client = PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect");
    let mut request = Request::new(CreatePaymentRequest {
        user_id: "tess".to_owned(),
        amount_cents: 4200,
        currency: "EUR".to_owned(),
        description: "traced".to_owned(),
    });
    authorize(
        &mut request,
        &mint(SECRET, "tess", Duration::from_secs(600)).expect("token"),
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{PARENT}-01").parse().expect("value"),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "trace-create-1".parse().expect("value"));
    client.create_payment(request).await.expect("create");

    // The event carries the call's trace and request id to the consumer.
    let delivery = tokio::time::timeout(Duration::from_secs(20), deliveries.recv())
        .await
        .expect("an event within 20 s")
        .expect("a delivery");
    assert_eq!(
        delivery.request_id.as_ref().map(|id| id.as_str()),
        Some("trace-create-1")
    );
    let consumer_span = delivery.trace.clone().expect("a consumer span");
    assert_eq!(consumer_span.trace_id().to_string(), TRACE);
    let event_parent = consumer_span
        .parent_id()
        .expect("the publisher's span")
        .to_string();

    // The service exported CreatePayment's server span: the event's parent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let create_span = loop {
        let found = receiver
            .0
            .lock()
            .expect("lock")
            .iter()
            .find(|s| hex(&s.trace_id) == TRACE && s.name.ends_with("/CreatePayment"))
            .cloned();
        if let Some(span) = found {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "no CreatePayment span exported within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hex(&create_span.parent_span_id), PARENT);
    assert_eq!(hex(&create_span.span_id), event_parent);
    consumer.stop().await;

    // SIGTERM: the service stops in time, its exporter flushed.
    drop(client);
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stopped");
    assert!(status.success(), "{status:?}");
}
