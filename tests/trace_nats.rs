//! A trace across a NATS hop between two processes. This test binary runs itself a second
//! time as the publisher: a kit server whose handler publishes an event from inside the
//! call. The first process consumes the subject; the call it makes to the publisher carries
//! a `traceparent`, and the consumer's delivery and log lines carry the same trace id
//! (a consumer span, child of the publisher's server span) and request id.
//!
//! Uses the shared NATS on 127.0.0.1:4222 (scripts/services.sh starts it).
#![cfg(all(feature = "server", feature = "events"))]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use tonic_blueprint::config::Loader;
use tonic_blueprint::events::{Delivery, EventContext, Events, NatsConfig, Subject};
use tonic_blueprint::server::Server;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::pb::test_service_server::{self, TestServiceServer};
use tonic_blueprint_testkit::pb::{TestRequest, TestResponse};
use tonic_blueprint_testkit::{Captured, FILE_DESCRIPTOR_SET};

/// Set in the publisher process: the subject it publishes on.
const CHILD_SUBJECT: &str = "TRACE_NATS_PUBLISHER_SUBJECT";
const TRACE: &str = "7d3efb1b173fecfa7d3efb1b173fecfa";
const PARENT: &str = "0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noted {
    note: String,
}

fn logs() -> &'static Captured {
    Captured::global_json(tracing::Level::INFO)
}

async fn shared_nats() -> Events {
    let config = NatsConfig {
        jetstream: false,
        ..NatsConfig::default()
    };
    Events::connect(&config)
        .await
        .expect("the shared NATS on 127.0.0.1:4222 (scripts/services.sh starts it)")
}

fn unique_subject() -> Subject {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Subject::new(
        &format!("t{}x{nanos}", std::process::id()),
        "trace",
        "noted",
    )
    .expect("subject")
}

/// The publisher's handler: publishes the payload as an event, from inside the call.
struct Publisher {
    events: Events,
    subject: Subject,
}

#[tonic::async_trait]
impl test_service_server::TestService for Publisher {
    async fn unary(&self, request: Request<TestRequest>) -> Result<Response<TestResponse>, Status> {
        let context = EventContext::from_request(&request);
        let note = String::from_utf8_lossy(&request.get_ref().payload).into_owned();
        self.events
            .publish(&self.subject, &Noted { note }, &context)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(TestResponse::default()))
    }

    type ServerStreamStream = tokio_stream::Empty<Result<TestResponse, Status>>;

    async fn server_stream(
        &self,
        _: Request<TestRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Err(Status::unimplemented("unary only"))
    }

    async fn client_stream(
        &self,
        _: Request<tonic::Streaming<TestRequest>>,
    ) -> Result<Response<TestResponse>, Status> {
        Err(Status::unimplemented("unary only"))
    }

    type BidiStream = tokio_stream::Empty<Result<TestResponse, Status>>;

    async fn bidi(
        &self,
        _: Request<tonic::Streaming<TestRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        Err(Status::unimplemented("unary only"))
    }
}

/// The publisher process (this binary run again with [`CHILD_SUBJECT`] set): serves until its
/// standard input closes. Without the variable it does nothing.
#[tokio::test]
async fn publisher_process() {
    let Ok(subject) = std::env::var(CHILD_SUBJECT) else {
        return;
    };
    let subject = Subject::parse(&subject).expect("subject");
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "off"),
        ("SHUTDOWN_DRAIN_DELAY_SECONDS", "0"),
    ])
    .load()
    .expect("config");
    let publisher = Publisher {
        events: shared_nats().await,
        subject,
    };
    let server = Server::new(config)
        .descriptors(FILE_DESCRIPTOR_SET)
        .start(tonic::service::Routes::new(TestServiceServer::new(
            publisher,
        )))
        .await
        .expect("server");
    println!("listening on {}", server.local_addr());
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
    })
    .await
    .expect("stdin");
    server.shutdown().await.expect("shutdown");
}

/// The publisher process, its address, killed when dropped.
struct PublisherProcess {
    child: Child,
    addr: String,
}

impl PublisherProcess {
    fn start(subject: &Subject) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", "publisher_process", "--nocapture"])
            .env(CHILD_SUBJECT, subject.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the publisher process");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the publisher says where it listens")
                .expect("a line");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.to_owned();
            }
        };
        // The rest of its output (the test harness's lines) is read and dropped.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr }
    }
}

impl Drop for PublisherProcess {
    fn drop(&mut self) {
        // Closing its standard input stops it; it has a few seconds before it is killed.
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_event_published_in_a_call_carries_its_trace_to_a_consumer_in_another_process() {
    let logs = logs();
    let events = shared_nats().await;
    let subject = unique_subject();
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let consumer = events
        .subscribe_queue(&subject, "trace-consumers", move |d: Delivery<Noted>| {
            let tx = tx.clone();
            async move {
                tracing::info!(note = %d.event.note, "handled in the consumer");
                let _ = tx.send(d);
                Ok::<(), String>(())
            }
        })
        .await
        .expect("consumer");

    let publisher = tokio::task::spawn_blocking({
        let subject = subject.clone();
        move || PublisherProcess::start(&subject)
    })
    .await
    .expect("publisher");
    let mut client = TestServiceClient::connect(format!("http://{}", publisher.addr))
        .await
        .expect("connect");
    let mut request = Request::new(TestRequest::echo("across processes"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{PARENT}-01").parse().expect("value"),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "nats-hop-1".parse().expect("value"));
    client.unary(request).await.expect("the publishing call");

    let delivery = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .expect("delivered in time")
        .expect("a delivery");
    assert_eq!(delivery.event.note, "across processes");
    assert_eq!(
        delivery.request_id.as_ref().map(|id| id.as_str()),
        Some("nats-hop-1")
    );
    let traceparent = delivery
        .header("traceparent")
        .expect("a traceparent header");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")),
        "{traceparent}"
    );
    let publisher_span = &traceparent[36..52];
    assert_ne!(
        publisher_span, PARENT,
        "the publisher's server span is the parent"
    );
    let trace = delivery.trace.as_ref().expect("the consumer span");
    assert_eq!(trace.trace_id().to_string(), TRACE);
    assert_eq!(
        trace.parent_id().map(|p| p.to_string()).as_deref(),
        Some(publisher_span)
    );
    assert!(trace.is_remote_parent() && trace.is_sampled());

    // The consumer's log line is in its span: the same trace, its own span id.
    let handled: Vec<Value> = logs
        .text()
        .lines()
        .filter(|l| l.contains("handled in the consumer") && l.contains(TRACE))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(handled.len(), 1, "{}", logs.text());
    let span = &handled[0]["span"];
    assert_eq!(span["name"], "nats.process");
    assert_eq!(span["trace_id"], TRACE);
    assert_eq!(span["span_id"], trace.span_id().to_string());
    assert_eq!(span["messaging.system"], "nats");
    assert_eq!(span["messaging.destination.name"], subject.as_str());
    assert_eq!(span["request_id"], "nats-hop-1");

    // Its connection closed first, the publisher shuts down at once.
    drop(client);
    tokio::task::spawn_blocking(move || drop(publisher))
        .await
        .expect("publisher stopped");
    consumer.stop().await;
}

#[tokio::test]
async fn an_event_published_outside_a_call_starts_a_new_trace_in_the_consumer() {
    logs();
    let events = shared_nats().await;
    let subject = unique_subject();
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let consumer = events
        .subscribe_queue(&subject, "trace-consumers", move |d: Delivery<Noted>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(d);
                Ok::<(), String>(())
            }
        })
        .await
        .expect("consumer");
    let published = Noted {
        note: "no call".to_owned(),
    };
    events
        .publish(&subject, &published, &EventContext::new())
        .await
        .expect("publish");
    let delivery = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .expect("delivered in time")
        .expect("a delivery");
    assert!(delivery.header("traceparent").is_none());
    let trace = delivery.trace.as_ref().expect("the consumer span");
    assert!(trace.parent_id().is_none(), "a new trace");
    consumer.stop().await;
}
