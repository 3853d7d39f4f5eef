//! The events helper on JetStream: redelivery with backoff then ack, the dead-letter subject,
//! de-duplication on `Nats-Msg-Id`, and no acknowledged message lost when a NATS server of
//! the test's own is killed and restarted mid-publish (the shared server is never stopped).
#![cfg(feature = "events")]

mod common;

use common::events::{
    PaymentCreated, Step, assert_counters, assert_dead_letter, assert_no_message,
    assert_nothing_within, context_with_request_id, dead_letters, install_counters, next_message,
    next_step, payment, received_now, recording, slow, unique_token,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tonic_blueprint::core::RequestId;
use tonic_blueprint::events::async_nats::{Subscriber, jetstream};
use tonic_blueprint::events::{
    ConsumerHandle, ConsumerOptions, Delivery, EventContext, EventHandler, Events, NatsConfig,
    StreamConfig, Subject, counters, headers,
};
use tonic_blueprint_testkit::{OwnNats, free_port};

const WAIT: Duration = Duration::from_secs(15);

/// A unique service token and stream name for one test: `t<pid>x<nanos>x<n>`.
fn unique() -> (String, String) {
    let token = unique_token();
    let stream = token.to_uppercase();
    (token, stream)
}

/// A connection to the shared server with a stream `<STREAM>` on `<service>.>` (the
/// dead-letter subjects included).
async fn shared_with_stream() -> (Events, Subject, String) {
    let (service, stream) = unique();
    let mut config = NatsConfig::default();
    config
        .streams
        .push(StreamConfig::new(&stream, [format!("{service}.>")]));
    let events = Events::connect(&config)
        .await
        .expect("the shared NATS with JetStream on 127.0.0.1:4222 (scripts/services.sh)");
    let subject = Subject::new(&service, "payment", "created").expect("subject");
    (events, subject, stream)
}

/// [`shared_with_stream`] (counters installed) and a subscription to the dead-letter
/// subject.
async fn shared_with_dead_letters() -> (Events, Subject, String, Subscriber) {
    install_counters();
    let (events, subject, stream) = shared_with_stream().await;
    let dead_letters = dead_letters(&events, &subject).await;
    (events, subject, stream, dead_letters)
}

async fn delete_stream(events: &Events, stream: &str) {
    let _ = events
        .jetstream()
        .expect("jetstream")
        .delete_stream(stream)
        .await;
}

/// The durable consumer `ledger` of `subject` on `stream`: `max_attempts`, backoff from
/// 50 ms, `ack_wait` 1 s.
async fn ledger(
    events: &Events,
    stream: &str,
    subject: &Subject,
    max_attempts: u32,
    handler: impl EventHandler<PaymentCreated>,
) -> ConsumerHandle {
    let options = ConsumerOptions {
        max_attempts,
        backoff_initial_ms: 50,
        backoff_max_ms: 1_000,
        ack_wait_ms: 1_000,
        ..ConsumerOptions::default()
    };
    events
        .consume_with(stream, "ledger", subject, &options, handler)
        .await
        .expect("consume")
}

/// Waits until the consumer `ledger` has nothing pending or unacknowledged and its ack
/// floor is at `sequence`, then asserts that its handler sees nothing more, even after
/// `ack_wait` (1 s) has passed.
async fn settled_for_good<T>(
    events: &Events,
    stream: &str,
    sequence: u64,
    handled: &mut mpsc::UnboundedReceiver<T>,
    why: &str,
) -> jetstream::consumer::Info {
    let stream = events
        .jetstream()
        .expect("jetstream")
        .get_stream(stream)
        .await
        .expect("stream");
    let deadline = Instant::now() + WAIT;
    loop {
        let info = stream.consumer_info("ledger").await.expect("consumer info");
        if info.num_ack_pending == 0
            && info.num_pending == 0
            && info.ack_floor.stream_sequence >= sequence
        {
            assert_nothing_within(handled, Duration::from_millis(2_000), why).await;
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "consumer never settled: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- at least once ---

#[tokio::test]
async fn a_message_that_fails_twice_is_delivered_three_times_then_acked_for_good() {
    let (events, subject, stream, mut dead_letters) = shared_with_dead_letters().await;
    let (handler, mut deliveries) = recording(|d| {
        if d.attempt < 3 {
            Err(format!("ledger busy (attempt {})", d.attempt))
        } else {
            Ok(())
        }
    });
    let consumer = ledger(&events, &stream, &subject, 5, handler).await;

    let ctx = context_with_request_id("req-js-1");
    let published = events
        .publish_jetstream(&subject, &payment("p-1"), &ctx)
        .await
        .unwrap();
    assert_eq!(published.stream.as_deref(), Some(stream.as_str()));
    let sequence = published.sequence.unwrap();
    assert!(!published.duplicate);

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(timeout(WAIT, deliveries.recv()).await.unwrap().unwrap());
    }
    assert_eq!(
        seen.iter().map(|(d, _)| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for (d, _) in &seen {
        assert_eq!(d.event, payment("p-1"));
        assert_eq!(d.stream_sequence, Some(sequence));
        assert_eq!(
            d.request_id.as_ref().map(RequestId::as_str),
            Some("req-js-1")
        );
        assert_eq!(d.message_id.as_deref(), Some(published.message_id.as_str()));
    }
    // Nak delays: up to 50 ms, then up to 100 ms (full jitter).
    assert!(seen[1].1 >= seen[0].1 && seen[2].1 >= seen[1].1);

    // Acked: nothing comes back.
    let info = settled_for_good(
        &events,
        &stream,
        sequence,
        &mut deliveries,
        "redelivered after the ack",
    )
    .await;
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.delivered.stream_sequence, sequence);
    consumer.stop().await;
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 3),
            (counters::FAILED, 2),
            (counters::DEAD_LETTERED, 0),
            (counters::PUBLISHED, 1),
        ],
    );
    assert_no_message(
        &events,
        &mut dead_letters,
        "dead-lettered although it succeeded",
    )
    .await;
    delete_stream(&events, &stream).await;
    events.drain().await.unwrap();
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_and_terminated() {
    let (events, subject, stream, mut dead_letters) = shared_with_dead_letters().await;
    let dead_letter = subject.dead_letter();
    let (handler, mut attempts) = recording(|_| Err("account frozen"));
    let consumer = ledger(&events, &stream, &subject, 3, handler).await;
    let ctx = context_with_request_id("req-js-2");
    let published = events
        .publish_jetstream(&subject, &payment("p-2"), &ctx)
        .await
        .unwrap();
    let sequence = published.sequence.unwrap();

    let dead = next_message(&mut dead_letters, WAIT).await;
    let seen = received_now(&mut attempts);
    assert_eq!(
        seen.iter().map(|(d, _)| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_dead_letter(
        &dead,
        &payment("p-2"),
        &subject,
        "3",
        "account frozen",
        "req-js-2",
    );

    // The stream holds the dead-letter subject: the dead letter is stored too.
    let js_stream = events
        .jetstream()
        .unwrap()
        .get_stream(&stream)
        .await
        .unwrap();
    let stored = js_stream
        .get_last_raw_message_by_subject(&dead_letter)
        .await
        .unwrap();
    assert_eq!(stored.payload, dead.payload);
    assert_eq!(
        stored
            .headers
            .get(headers::DEAD_LETTER_ATTEMPTS)
            .map(|v| v.as_str()),
        Some("3")
    );

    // Terminated: settled, and never delivered again.
    settled_for_good(
        &events,
        &stream,
        sequence,
        &mut attempts,
        "delivered again after the dead letter",
    )
    .await;
    consumer.stop().await;
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 3),
            (counters::FAILED, 3),
            (counters::DEAD_LETTERED, 1),
        ],
    );
    delete_stream(&events, &stream).await;
    events.drain().await.unwrap();
}

// --- the handler timeout ---

#[tokio::test]
async fn a_hung_handler_is_dropped_at_its_timeout_and_the_redelivery_is_handled() {
    let (events, subject, stream, mut dead_letters) = shared_with_dead_letters().await;
    // The first delivery never finishes; the redelivery does at once.
    let (handler, mut steps) = slow(|attempt| (attempt > 1).then_some(Duration::ZERO));
    let options = ConsumerOptions {
        max_attempts: 3,
        backoff_initial_ms: 50,
        handler_timeout_ms: 300,
        // Far beyond the test: any redelivery seen here comes from the consumer's nak.
        ack_wait_ms: 60_000,
        ..ConsumerOptions::default()
    };
    let consumer = events
        .consume_with(&stream, "ledger", &subject, &options, handler)
        .await
        .expect("consume");
    let ctx = context_with_request_id("req-js-hang");
    let sequence = events
        .publish_jetstream(&subject, &payment("p-hang"), &ctx)
        .await
        .unwrap()
        .sequence
        .unwrap();

    let (step, started) = next_step(&mut steps, WAIT).await;
    assert_eq!(step, Step::Started(1));
    let (step, dropped) = next_step(&mut steps, WAIT).await;
    assert_eq!(step, Step::Dropped(1), "the hung future is dropped");
    assert!(
        dropped - started >= Duration::from_millis(300),
        "dropped after {:?}, before its timeout",
        dropped - started
    );
    let (step, redelivered) = next_step(&mut steps, WAIT).await;
    assert_eq!(step, Step::Started(2));
    assert!(
        redelivered - started < Duration::from_secs(10),
        "redelivered only after {:?}",
        redelivered - started
    );
    assert_eq!(next_step(&mut steps, WAIT).await.0, Step::Finished(2));

    // Acked: nothing comes back, nothing is dead-lettered.
    settled_for_good(&events, &stream, sequence, &mut steps, "delivered again").await;
    consumer.stop().await;
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 2),
            (counters::TIMED_OUT, 1),
            (counters::FAILED, 1),
            (counters::DEAD_LETTERED, 0),
        ],
    );
    assert_no_message(
        &events,
        &mut dead_letters,
        "dead-lettered after one timeout",
    )
    .await;
    delete_stream(&events, &stream).await;
    events.drain().await.unwrap();
}

#[tokio::test]
async fn a_handler_slower_than_ack_wait_but_within_its_timeout_is_not_redelivered_meanwhile() {
    let (events, subject, stream) = shared_with_stream().await;
    install_counters();
    let (handler, mut steps) = slow(|_| Some(Duration::from_millis(1_600)));
    let options = ConsumerOptions {
        handler_timeout_ms: 10_000,
        // The handler outlasts three of these: progress reports keep the message its own.
        ack_wait_ms: 500,
        ..ConsumerOptions::default()
    };
    let consumer = events
        .consume_with(&stream, "ledger", &subject, &options, handler)
        .await
        .expect("consume");
    let sequence = events
        .publish_jetstream(&subject, &payment("p-slow"), &EventContext::new())
        .await
        .unwrap()
        .sequence
        .unwrap();

    assert_eq!(next_step(&mut steps, WAIT).await.0, Step::Started(1));
    assert_eq!(
        next_step(&mut steps, WAIT).await.0,
        Step::Finished(1),
        "no redelivery while the first delivery runs"
    );
    let info = settled_for_good(&events, &stream, sequence, &mut steps, "delivered again").await;
    assert_eq!(info.num_redelivered, 0);
    consumer.stop().await;
    assert_counters(
        &subject,
        &[
            (counters::DELIVERED, 1),
            (counters::TIMED_OUT, 0),
            (counters::FAILED, 0),
        ],
    );
    delete_stream(&events, &stream).await;
    events.drain().await.unwrap();
}

#[tokio::test]
async fn a_retried_publish_with_the_same_message_id_is_stored_once() {
    let (events, subject, stream) = shared_with_stream().await;
    let ctx = EventContext::new().with_message_id("order-42");
    let first = events
        .publish_jetstream(&subject, &payment("p-3"), &ctx)
        .await
        .unwrap();
    let again = events
        .publish_jetstream(&subject, &payment("p-3"), &ctx)
        .await
        .unwrap();
    assert_eq!(first.message_id, "order-42");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let mut js_stream = events
        .jetstream()
        .unwrap()
        .get_stream(&stream)
        .await
        .unwrap();
    assert_eq!(js_stream.info().await.unwrap().state.messages, 1);
    delete_stream(&events, &stream).await;
    events.drain().await.unwrap();
}

// --- a server restart while publishing ---

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Numbered {
    n: u32,
}

const TOTAL: u32 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_when_the_server_restarts_mid_publish() {
    let store = tempfile::tempdir().unwrap();
    let mut server = OwnNats::start(free_port(), store.path());
    let (service, stream) = unique();
    let subject = Subject::new(&service, "tick", "counted").unwrap();
    let mut config = NatsConfig::with_url(server.url());
    config.publish_timeout_ms = 500;
    config.publish_attempts = 2;
    config.publish_backoff_ms = 50;
    config
        .streams
        .push(StreamConfig::new(&stream, [format!("{service}.>")]));
    let events = Events::connect(&config).await.unwrap();

    // (acknowledged so far, failed publishes so far)
    let (progress_tx, mut progress) = watch::channel((0u32, 0u32));
    let publisher = tokio::spawn({
        let (events, subject, service) = (events.clone(), subject.clone(), service.clone());
        async move {
            let mut duplicates = 0;
            for n in 0..TOTAL {
                // One id per message: a retry after a lost ack is stored once.
                let ctx = EventContext::new().with_message_id(format!("{service}-{n}"));
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match events
                        .publish_jetstream(&subject, &Numbered { n }, &ctx)
                        .await
                    {
                        Ok(published) => {
                            duplicates += u32::from(published.duplicate);
                            break;
                        }
                        Err(e) => {
                            progress_tx.send_modify(|p| p.1 += 1);
                            assert!(
                                Instant::now() < deadline,
                                "message {n} never acknowledged: {e}"
                            );
                            // Retry backoff, not synchronisation.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                progress_tx.send_modify(|p| p.0 = n + 1);
            }
            duplicates
        }
    });

    timeout(WAIT, progress.wait_for(|p| p.0 >= TOTAL / 2))
        .await
        .unwrap()
        .unwrap();
    server.kill();
    // Publishing goes on against the dead server until a publish fails.
    timeout(WAIT, progress.wait_for(|p| p.1 >= 1))
        .await
        .unwrap()
        .unwrap();
    let acked_while_down = progress.borrow().0;
    assert!(
        acked_while_down < TOTAL,
        "all published before the kill took effect"
    );
    server.restart();
    let duplicates = timeout(Duration::from_secs(90), publisher)
        .await
        .expect("publishing finished after the restart")
        .unwrap();
    let failures = progress.borrow().1;
    assert!(failures >= 1);

    // Every message is in the stream after the restart.
    let (tx, mut received) = mpsc::unbounded_channel();
    let consumer = events
        .consume(&stream, "reader", &subject, move |d: Delivery<Numbered>| {
            let tx = tx.clone();
            async move {
                tx.send(d.event.n).unwrap();
                Ok::<(), String>(())
            }
        })
        .await
        .unwrap();
    let mut ids = BTreeSet::new();
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.len() < TOTAL as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, received.recv()).await {
            Ok(Some(n)) => {
                deliveries += 1;
                ids.insert(n);
            }
            _ => break,
        }
    }
    let missing: Vec<u32> = (0..TOTAL).filter(|n| !ids.contains(n)).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
    eprintln!(
        "{TOTAL} messages: {failures} failed publishes while down, {duplicates} duplicate acks, \
         {deliveries} deliveries"
    );
    consumer.stop().await;
    events.drain().await.unwrap();
}
