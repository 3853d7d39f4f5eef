//! The events helper on core NATS (the shared server on 127.0.0.1:4222): subjects, request
//! ids in headers, queue groups, the concurrency limit, retries and the dead-letter subject,
//! drain.
#![cfg(feature = "events")]

mod common;

use common::events::{
    PaymentCreated, Step, assert_counters, assert_dead_letter, assert_no_message,
    assert_nothing_within, context_with_request_id, counter, dead_letters, header,
    install_counters, next_message, next_step, payment, received_now, recording, slow,
    unique_token,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::timeout;
use tonic_blueprint::core::RequestId;
use tonic_blueprint::events::async_nats::Subscriber;
use tonic_blueprint::events::{
    ConsumerHandle, ConsumerOptions, Delivery, EventContext, EventHandler, Events, EventsError,
    NatsConfig, Published, Subject, SubjectError, TokenProblem, counters, headers,
};
use tonic_blueprint_testkit::free_port;

const WAIT: Duration = Duration::from_secs(10);

/// `<unique service>.<entity>.<event>`.
fn subject(entity: &str, event: &str) -> Subject {
    Subject::new(&unique_token(), entity, event).expect("subject")
}

async fn shared() -> Events {
    let config = NatsConfig {
        jetstream: false,
        ..NatsConfig::default()
    };
    Events::connect(&config)
        .await
        .expect("the shared NATS on 127.0.0.1:4222 (scripts/services.sh starts it)")
}

/// Publishes payment `id` on `subject` with an empty context.
async fn publish(events: &Events, subject: &Subject, id: &str) -> Published {
    events
        .publish(subject, &payment(id), &EventContext::new())
        .await
        .expect("publish")
}

/// The shared connection (counters installed), a `refund.<event>` subject and a
/// subscription to its dead-letter subject.
async fn refund_subject(event: &str) -> (Events, Subject, Subscriber) {
    install_counters();
    let events = shared().await;
    let subject = subject("refund", event);
    let dead_letters = dead_letters(&events, &subject).await;
    (events, subject, dead_letters)
}

/// A consumer of `subject` in queue group `refunds`: 3 attempts, backoff from 30 ms.
async fn refunds(
    events: &Events,
    subject: &Subject,
    handler: impl EventHandler<PaymentCreated>,
) -> ConsumerHandle {
    let options = ConsumerOptions {
        max_attempts: 3,
        backoff_initial_ms: 30,
        backoff_max_ms: 1_000,
        ..ConsumerOptions::default()
    };
    events
        .subscribe_queue_with(subject, "refunds", &options, handler)
        .await
        .expect("subscribe")
}

// --- subjects ---

#[test]
fn bad_subject_tokens_are_refused_naming_the_token() {
    let cases: [(&str, &str, &str, &str, TokenProblem); 7] = [
        ("", "payment", "created", "", TokenProblem::Empty),
        (
            "payments",
            "pay.ment",
            "created",
            "pay.ment",
            TokenProblem::Dot,
        ),
        (
            "payments",
            "payment",
            "was created",
            "was created",
            TokenProblem::Whitespace,
        ),
        ("payments", "*", "created", "*", TokenProblem::Wildcard('*')),
        ("payments", "payment", ">", ">", TokenProblem::Wildcard('>')),
        (
            "Payments",
            "payment",
            "created",
            "Payments",
            TokenProblem::Uppercase('P'),
        ),
        (
            "payments",
            "payment",
            "créé",
            "créé",
            TokenProblem::Character('é'),
        ),
    ];
    for (service, entity, event, bad, problem) in cases {
        let err = Subject::new(service, entity, event).unwrap_err();
        assert_eq!(err.token(), Some(bad), "{service}.{entity}.{event}");
        match &err {
            SubjectError::InvalidToken { problem: p, .. } => assert_eq!(*p, problem),
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "the message names the token: {err}"
        );
    }
    let err = Subject::new("payments", "payment", "Created").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid subject token \"Created\" (event): it contains the uppercase letter 'C'; \
         tokens are 1 to 64 characters of [a-z0-9_-]"
    );
    let long = "a".repeat(65);
    assert!(matches!(
        Subject::new("payments", &long, "created").unwrap_err(),
        SubjectError::InvalidToken {
            problem: TokenProblem::TooLong(65),
            position: 1,
            ..
        }
    ));

    // Parsed subjects: the same rules, and 3 to 16 tokens.
    assert_eq!(
        Subject::parse("payments..created").unwrap_err().token(),
        Some("")
    );
    assert_eq!(
        Subject::parse("payments.*.created").unwrap_err().token(),
        Some("*")
    );
    assert_eq!(
        Subject::parse("payments.payment.>").unwrap_err().token(),
        Some(">")
    );
    assert_eq!(
        Subject::parse("payments.payment created.x")
            .unwrap_err()
            .token(),
        Some("payment created")
    );
    assert!(matches!(
        Subject::parse("payments.created").unwrap_err(),
        SubjectError::TokenCount { count: 2 }
    ));
    assert!(matches!(
        Subject::parse(&["a"; 17].join(".")).unwrap_err(),
        SubjectError::TokenCount { count: 17 }
    ));
    assert!(matches!(
        Subject::parse(&vec!["a".repeat(60); 5].join(".")).unwrap_err(),
        SubjectError::TooLong { len: 304 }
    ));

    let ok = Subject::new("payments", "payment_v2", "created-1").unwrap();
    assert_eq!(ok.as_str(), "payments.payment_v2.created-1");
    assert_eq!(ok.dead_letter(), "payments.payment_v2.created-1.dlq");
    assert_eq!(
        ok.child("eu").unwrap().as_str(),
        "payments.payment_v2.created-1.eu"
    );
    assert_eq!(ok.child("E").unwrap_err().token(), Some("E"));
}

// --- connection ---

#[tokio::test]
async fn connect_failure_names_the_server_and_hides_credentials() {
    let port = free_port();
    let config = NatsConfig {
        url: format!("nats://svc:hunter2@127.0.0.1:{port}"),
        connect_attempts: 2,
        connect_backoff_ms: 10,
        connect_timeout_ms: 500,
        ..NatsConfig::default()
    };
    let started = Instant::now();
    let err = Events::connect(&config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&err, EventsError::Connect { attempts: 2, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "could not connect to NATS at nats://***@127.0.0.1:{port} after 2 attempt(s): "
        )),
        "{text}"
    );
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
}

// --- request ids ---

#[tokio::test]
async fn the_request_id_of_the_rpc_arrives_in_the_consumer_headers() {
    let events = shared().await;
    let subject = subject("payment", "created");
    let (tx, mut rx) = mpsc::unbounded_channel();
    events
        .subscribe_queue(&subject, "ledger", move |d: Delivery<PaymentCreated>| {
            let tx = tx.clone();
            async move {
                tx.send(d).unwrap();
                Ok::<(), String>(())
            }
        })
        .await
        .unwrap();

    let ctx = context_with_request_id("req-events-7");
    let published = events
        .publish(&subject, &payment("p-1"), &ctx)
        .await
        .unwrap();
    assert_eq!(published.message_id.len(), 22, "a NUID");
    assert!(published.stream.is_none() && published.sequence.is_none());

    let delivery = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(delivery.event, payment("p-1"));
    assert_eq!(delivery.subject, subject.as_str());
    assert_eq!(
        delivery.request_id.as_ref().map(RequestId::as_str),
        Some("req-events-7")
    );
    assert_eq!(delivery.header(headers::REQUEST_ID), Some("req-events-7"));
    assert_eq!(delivery.header("Content-Type"), Some("application/json"));
    assert_eq!(
        delivery.header("Nats-Msg-Id"),
        Some(published.message_id.as_str())
    );
    assert_eq!(
        delivery.message_id.as_deref(),
        Some(published.message_id.as_str())
    );
    assert_eq!(delivery.attempt, 1);
    // A follow-up event carries the same request id.
    assert_eq!(
        delivery.context().request_id().map(RequestId::as_str),
        Some("req-events-7")
    );

    // No request id in the extensions: no header.
    let second = events
        .publish(
            &subject,
            &payment("p-2"),
            &EventContext::from_extensions(&tonic::Extensions::new()),
        )
        .await
        .unwrap();
    assert_ne!(second.message_id, published.message_id);
    let delivery = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(delivery.event, payment("p-2"));
    assert!(delivery.request_id.is_none());
    assert_eq!(delivery.header(headers::REQUEST_ID), None);
    assert_eq!(delivery.header("Content-Type"), Some("application/json"));

    events.drain().await.unwrap();
}

// --- queue groups and the concurrency limit ---

#[tokio::test]
async fn a_queue_group_handles_each_message_once() {
    install_counters();
    let events = shared().await;
    let subject = subject("order", "placed");
    let (tx, mut rx) = mpsc::unbounded_channel();
    for member in 0..2 {
        let tx = tx.clone();
        events
            .subscribe_queue(
                &subject,
                "fulfilment",
                move |d: Delivery<PaymentCreated>| {
                    let tx = tx.clone();
                    async move {
                        tx.send((member, d.event.id)).unwrap();
                        Ok::<(), String>(())
                    }
                },
            )
            .await
            .unwrap();
    }
    for i in 0..20 {
        publish(&events, &subject, &format!("o-{i}")).await;
    }
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        let (_, id) = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        *seen.entry(id).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(counter(counters::PUBLISHED, subject.as_str()), 20);
    events.drain().await.unwrap();
    assert!(rx.try_recv().is_err(), "a message was handled twice");
    assert_eq!(counter(counters::DELIVERED, subject.as_str()), 20);
}

#[tokio::test]
async fn the_concurrency_limit_bounds_handlers_in_flight() {
    let events = shared().await;
    let subject = subject("invoice", "issued");
    let gate = Arc::new(Semaphore::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let options = ConsumerOptions {
        concurrency: 2,
        ..ConsumerOptions::default()
    };
    let handler = {
        let (gate, in_flight, most) = (gate.clone(), in_flight.clone(), most.clone());
        move |d: Delivery<PaymentCreated>| {
            let (gate, in_flight, most) = (gate.clone(), in_flight.clone(), most.clone());
            let (started_tx, done_tx) = (started_tx.clone(), done_tx.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                started_tx.send(d.event.id.clone()).unwrap();
                gate.acquire().await.unwrap().forget();
                in_flight.fetch_sub(1, Ordering::SeqCst);
                done_tx.send(d.event.id).unwrap();
                Ok::<(), String>(())
            }
        }
    };
    events
        .subscribe_queue_with(&subject, "billing", &options, handler)
        .await
        .unwrap();
    for i in 0..6 {
        publish(&events, &subject, &format!("i-{i}")).await;
    }
    for _ in 0..2 {
        timeout(WAIT, started.recv()).await.unwrap().unwrap();
    }
    // Two handlers hold the gate: a third must not start.
    assert_nothing_within(
        &mut started,
        Duration::from_millis(300),
        "a third handler started while two were running",
    )
    .await;
    gate.add_permits(6);
    for _ in 0..6 {
        timeout(WAIT, done.recv()).await.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
    events.drain().await.unwrap();
}

// --- retries and the dead-letter subject ---

#[tokio::test]
async fn a_handler_that_always_fails_lands_the_message_on_the_dead_letter_subject() {
    let (events, subject, mut dead_letters) = refund_subject("requested").await;
    let (handler, mut attempts) =
        recording(|d| Err(format!("card {} declined\nretry later", d.event.id)));
    let consumer = refunds(&events, &subject, handler).await;

    let ctx = context_with_request_id("req-refund-1");
    let published = events
        .publish(&subject, &payment("r-1"), &ctx)
        .await
        .unwrap();

    let dead = next_message(&mut dead_letters, WAIT).await;
    // Every attempt ran before the dead letter was published.
    let seen = received_now(&mut attempts);
    assert_eq!(
        seen.iter().map(|(d, _)| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Backoff 30 ms, then 60 ms, each wait drawn between zero and it (full jitter; the
    // unit tests of `ConsumerOptions::jittered_backoff` check the draw).
    assert!(seen[1].1 >= seen[0].1 && seen[2].1 >= seen[1].1);

    assert_dead_letter(
        &dead,
        &payment("r-1"),
        &subject,
        "3",
        "card r-1 declined retry later",
        "req-refund-1",
    );
    assert_eq!(
        header(&dead, "Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(&dead, "Nats-Msg-Id"),
        Some(format!("{}-dlq", published.message_id))
    );

    consumer.stop().await;
    assert!(consumer.is_finished());
    assert!(
        attempts.try_recv().is_err(),
        "no attempt after the dead letter"
    );
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 1),
            (counters::FAILED, 3),
            (counters::DEAD_LETTERED, 1),
        ],
    );
    events.drain().await.unwrap();
}

#[tokio::test]
async fn a_handler_that_recovers_is_not_dead_lettered() {
    let (events, subject, mut dead_letters) = refund_subject("approved").await;
    let (handler, mut attempts) = recording(|d| {
        if d.attempt == 1 {
            panic!("deliberate panic on the first attempt (this test expects it)");
        }
        Ok::<(), String>(())
    });
    let consumer = refunds(&events, &subject, handler).await;
    publish(&events, &subject, "r-2").await;
    for expected in [1, 2] {
        let (d, _) = timeout(WAIT, attempts.recv()).await.unwrap().unwrap();
        assert_eq!(d.attempt, expected);
    }
    consumer.stop().await;
    assert!(attempts.try_recv().is_err());
    // The panic failed once.
    assert_counters(
        &subject,
        &[(counters::FAILED, 1), (counters::DEAD_LETTERED, 0)],
    );
    assert_no_message(
        &events,
        &mut dead_letters,
        "dead-lettered although it recovered",
    )
    .await;
    events.drain().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_payload_goes_to_the_dead_letter_subject_without_retries() {
    let (events, subject, mut dead_letters) = refund_subject("garbled").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let consumer = refunds(&events, &subject, move |_: Delivery<PaymentCreated>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), String>(()) }
    })
    .await;
    events
        .client()
        .publish(subject.to_string(), "not json".into())
        .await
        .unwrap();
    let dead = next_message(&mut dead_letters, WAIT).await;
    assert_eq!(&dead.payload[..], b"not json");
    assert_eq!(
        header(&dead, headers::DEAD_LETTER_ATTEMPTS).as_deref(),
        Some("1")
    );
    let error = header(&dead, headers::DEAD_LETTER_ERROR).unwrap();
    assert!(
        error.starts_with("the payload is not a valid event: "),
        "{error}"
    );
    consumer.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(counter(counters::DEAD_LETTERED, subject.as_str()), 1);
    events.drain().await.unwrap();
}

// --- shutdown ---

#[tokio::test]
async fn drain_lets_running_handlers_finish_then_closes() {
    let events = shared().await;
    let subject = subject("payout", "sent");
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let finished = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (gate, finished) = (gate.clone(), finished.clone());
        move |_: Delivery<PaymentCreated>| {
            let (gate, finished, started_tx) = (gate.clone(), finished.clone(), started_tx.clone());
            async move {
                started_tx.send(()).unwrap();
                gate.acquire().await.unwrap().forget();
                finished.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        }
    };
    let consumer = events
        .subscribe_queue(&subject, "payouts", handler)
        .await
        .unwrap();
    publish(&events, &subject, "x-1").await;
    timeout(WAIT, started.recv()).await.unwrap().unwrap();

    let mut draining = tokio::spawn({
        let events = events.clone();
        async move { events.drain().await }
    });
    // The handler holds its message: drain waits for it.
    assert!(
        timeout(Duration::from_millis(300), &mut draining)
            .await
            .is_err(),
        "drain returned while a handler was running"
    );
    gate.add_permits(1);
    timeout(WAIT, draining).await.unwrap().unwrap().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    assert!(consumer.is_finished());
    assert!(
        events
            .publish(&subject, &payment("x-2"), &EventContext::new())
            .await
            .is_err(),
        "publishing after drain fails"
    );
}

#[tokio::test]
async fn jetstream_operations_need_jetstream_on() {
    let events = shared().await;
    let subject = subject("payment", "created");
    let err = events
        .publish_jetstream(&subject, &payment("p"), &EventContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EventsError::JetStreamDisabled), "{err:?}");
    let err = events
        .consume("S", "d", &subject, |_: Delivery<PaymentCreated>| async {
            Ok::<(), String>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, EventsError::JetStreamDisabled), "{err:?}");
    let err = events
        .subscribe_queue(&subject, "bad group", |_: Delivery<PaymentCreated>| async {
            Ok::<(), String>(())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"bad group\""), "{err}");
    events.drain().await.unwrap();
}

// --- the handler timeout ---

#[tokio::test]
async fn a_handler_that_hangs_is_dropped_at_its_timeout_retried_then_dead_lettered() {
    let (events, subject, mut dead_letters) = refund_subject("hung").await;
    let (handler, mut steps) = slow(|_| None);
    let options = ConsumerOptions {
        max_attempts: 2,
        backoff_initial_ms: 30,
        handler_timeout_ms: 200,
        ..ConsumerOptions::default()
    };
    let consumer = events
        .subscribe_queue_with(&subject, "refunds", &options, handler)
        .await
        .expect("subscribe");
    let ctx = context_with_request_id("req-refund-hang");
    events
        .publish(&subject, &payment("r-hang"), &ctx)
        .await
        .unwrap();

    for attempt in 1..=2 {
        let (step, started) = next_step(&mut steps, WAIT).await;
        assert_eq!(step, Step::Started(attempt));
        let (step, dropped) = next_step(&mut steps, WAIT).await;
        assert_eq!(step, Step::Dropped(attempt), "the hung future is dropped");
        assert!(dropped - started >= Duration::from_millis(200));
    }
    let dead = next_message(&mut dead_letters, WAIT).await;
    assert_dead_letter(
        &dead,
        &payment("r-hang"),
        &subject,
        "2",
        "the handler timed out after 200 ms",
        "req-refund-hang",
    );
    consumer.stop().await;
    assert!(
        steps.try_recv().is_err(),
        "no attempt after the dead letter"
    );
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 1),
            (counters::TIMED_OUT, 2),
            (counters::FAILED, 2),
            (counters::DEAD_LETTERED, 1),
        ],
    );
    events.drain().await.unwrap();
}
