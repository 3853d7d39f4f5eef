//! Publishes on the request path (a context carrying the call's deadline) never stall the
//! call: against a NATS server of the test's own, hung with SIGSTOP, a JetStream or core
//! publish ends within `request_publish_timeout_ms` or the deadline, whichever comes first;
//! once the client knows the server is gone, it fails at once.
#![cfg(feature = "events")]

use serde::Serialize;
use std::time::{Duration, Instant};
use tonic_blueprint::core::{Deadline, DeadlineSource};
use tonic_blueprint::events::async_nats::connection::State;
use tonic_blueprint::events::{EventContext, Events, NatsConfig, StreamConfig, Subject};
use tonic_blueprint_testkit::{OwnNats, free_port};

#[derive(Serialize)]
struct Ping {
    n: u32,
}

fn on_request_path(deadline: Duration) -> EventContext {
    EventContext::new().with_deadline(Deadline::after(deadline, DeadlineSource::Client))
}

/// Runs a publish and returns whether it succeeded and how long it took.
async fn timed<T, E>(publish: impl Future<Output = Result<T, E>>) -> (bool, Duration) {
    let started = Instant::now();
    let ok = publish.await.is_ok();
    (ok, started.elapsed())
}

#[test]
fn a_context_from_a_call_carries_its_deadline() {
    let mut extensions = tonic::Extensions::new();
    assert!(
        EventContext::from_extensions(&extensions)
            .deadline()
            .is_none()
    );
    extensions.insert(Deadline::after(
        Duration::from_secs(3),
        DeadlineSource::Server,
    ));
    assert!(
        EventContext::from_extensions(&extensions)
            .deadline()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_gone_nats_never_stalls_a_request_path_publish() {
    let store = tempfile::tempdir().expect("dir");
    let mut server = OwnNats::start(free_port(), store.path());
    let service = format!("rp{}", std::process::id());
    let subject = Subject::new(&service, "ping", "sent").expect("subject");
    let mut config = NatsConfig::with_url(server.url());
    config.connect_attempts = 1;
    config
        .streams
        .push(StreamConfig::new("REQPATH", [format!("{service}.>")]));
    let events = Events::connect(&config).await.expect("connect");

    // Healthy: acknowledged at once.
    let (ok, took) = timed(events.publish_jetstream(
        &subject,
        &Ping { n: 0 },
        &on_request_path(Duration::from_secs(5)),
    ))
    .await;
    assert!(ok, "acknowledged while healthy ({took:?})");

    // Hung: bounded by request_publish_timeout_ms (100 ms), retries included.
    server.pause();
    for publish in 0..3 {
        let (ok, took) = timed(events.publish_jetstream(
            &subject,
            &Ping { n: 1 },
            &on_request_path(Duration::from_secs(30)),
        ))
        .await;
        assert!(!ok, "no acknowledgement from a hung server");
        assert!(
            (Duration::from_millis(90)..Duration::from_millis(600)).contains(&took),
            "JetStream publish {publish} while hung took {took:?}"
        );
        eprintln!("hung NATS: JetStream publish failed after {took:?}");
        // Core NATS: flushed into the socket (the kernel takes it; at most once), quickly.
        let (_, took) = timed(events.publish(
            &subject,
            &Ping { n: 1 },
            &on_request_path(Duration::from_secs(30)),
        ))
        .await;
        assert!(
            took < Duration::from_millis(600),
            "core publish took {took:?}"
        );
    }
    server.resume();

    // A deadline nearer than the setting wins: 9/10 of 300 ms, not 5 s.
    let mut patient = config.clone();
    patient.request_publish_timeout_ms = 5_000;
    patient.streams.clear();
    let patient = Events::connect(&patient).await.expect("connect");
    server.pause();
    let (ok, took) = timed(patient.publish_jetstream(
        &subject,
        &Ping { n: 2 },
        &on_request_path(Duration::from_millis(300)),
    ))
    .await;
    assert!(!ok);
    assert!(
        (Duration::from_millis(200)..Duration::from_millis(900)).contains(&took),
        "bounded by the deadline: {took:?}"
    );
    server.resume();

    // Gone: once the client has seen it, a request-path publish fails at once.
    server.kill();
    let seen = Instant::now() + Duration::from_secs(10);
    while events.client().connection_state() == State::Connected {
        assert!(Instant::now() < seen, "the client never saw the server go");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let (ok, took) = timed(events.publish_jetstream(
            &subject,
            &Ping { n: 3 },
            &on_request_path(Duration::from_secs(30)),
        ))
        .await;
        assert!(!ok);
        assert!(took < Duration::from_millis(20), "not at once: {took:?}");
    }
}
