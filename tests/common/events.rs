//! What the events tests share: the event type, unique subject tokens, the counters of the
//! test binary, and dead-letter helpers.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tonic_blueprint::core::RequestId;
use tonic_blueprint::events::async_nats::{Message, Subscriber};
use tonic_blueprint::events::{
    Delivery, EventContext, EventHandler, Events, Subject, counters, headers,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PaymentCreated {
    pub(crate) id: String,
    pub(crate) cents: u64,
}

pub(crate) fn payment(id: &str) -> PaymentCreated {
    PaymentCreated {
        id: id.to_owned(),
        cents: 1250,
    }
}

/// A subject token unique to this run and call: `t<pid>x<nanos>x<n>`.
pub(crate) fn unique_token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "t{}x{nanos}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a [`recording`] handler saw: each delivery and when it arrived.
pub(crate) type Recorded = mpsc::UnboundedReceiver<(Delivery<PaymentCreated>, Instant)>;

/// A handler that records each delivery (see [`Recorded`]), then returns what `outcome`
/// makes of it (or panics with it).
pub(crate) fn recording<E>(
    outcome: fn(&Delivery<PaymentCreated>) -> Result<(), E>,
) -> (impl EventHandler<PaymentCreated>, Recorded)
where
    E: fmt::Display + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<PaymentCreated>| {
        let tx = tx.clone();
        async move {
            tx.send((d.clone(), Instant::now()))
                .expect("the test keeps the receiver");
            outcome(&d)
        }
    };
    (handler, rx)
}

/// What a [`slow`] handler did with one attempt, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The attempt started.
    Started(u32),
    /// The attempt finished its work and returned `Ok`.
    Finished(u32),
    /// The attempt's future was dropped before it finished.
    Dropped(u32),
}

/// What a [`slow`] handler reports.
pub(crate) type Steps = mpsc::UnboundedReceiver<(Step, Instant)>;

/// A handler that reports each attempt's [`Step`]s; attempt `n` works for `work(n)` and then
/// returns `Ok`, or never finishes when `work(n)` is `None`.
pub(crate) fn slow(
    work: fn(u32) -> Option<Duration>,
) -> (impl EventHandler<PaymentCreated>, Steps) {
    struct Report {
        tx: mpsc::UnboundedSender<(Step, Instant)>,
        attempt: u32,
        finished: bool,
    }
    impl Drop for Report {
        fn drop(&mut self) {
            let step = if self.finished {
                Step::Finished(self.attempt)
            } else {
                Step::Dropped(self.attempt)
            };
            let _ = self.tx.send((step, Instant::now()));
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<PaymentCreated>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((Step::Started(d.attempt), Instant::now()));
            let mut report = Report {
                tx,
                attempt: d.attempt,
                finished: false,
            };
            match work(d.attempt) {
                // Work that takes this long (not a synchronisation).
                Some(duration) => tokio::time::sleep(duration).await,
                None => std::future::pending::<()>().await,
            }
            report.finished = true;
            Ok::<(), String>(())
        }
    };
    (handler, rx)
}

/// The next step of `steps`, within `wait`.
pub(crate) async fn next_step(steps: &mut Steps, wait: Duration) -> (Step, Instant) {
    timeout(wait, steps.recv())
        .await
        .expect("a step in time")
        .expect("the handler lives")
}

/// A context carrying request id `id`, as the RequestLogging layer leaves it in the request
/// extensions.
pub(crate) fn context_with_request_id(id: &'static str) -> EventContext {
    let mut request = tonic::Request::new(());
    request.extensions_mut().insert(RequestId::from_static(id));
    EventContext::from_request(&request)
}

// --- counters: a recorder of this test process, read by (name, subject) ---

type CounterMap = Mutex<HashMap<(String, String), Arc<AtomicU64>>>;

struct TestRecorder(&'static CounterMap);

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let subject = key
            .labels()
            .find(|l| l.key() == counters::LABEL_SUBJECT)
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        let cell = self
            .0
            .lock()
            .expect("counters")
            .entry((key.name().to_owned(), subject))
            .or_default()
            .clone();
        metrics::Counter::from_arc(cell)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The value of counter `name` for `subject`; installs the recorder on the first call.
pub(crate) fn counter(name: &str, subject: &str) -> u64 {
    static COUNTERS: OnceLock<&'static CounterMap> = OnceLock::new();
    let map = COUNTERS.get_or_init(|| {
        let map: &'static CounterMap = Box::leak(Box::default());
        metrics::set_global_recorder(TestRecorder(map)).expect("one recorder per test binary");
        map
    });
    map.lock()
        .expect("counters")
        .get(&(name.to_owned(), subject.to_owned()))
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Installs the recorder before a test counts anything.
pub(crate) fn install_counters() {
    counter("", "");
}

// --- dead letters ---

/// A subscription to `subject`'s dead-letter subject, known to the server on return.
pub(crate) async fn dead_letters(events: &Events, subject: &Subject) -> Subscriber {
    let subscriber = events
        .client()
        .subscribe(subject.dead_letter())
        .await
        .expect("subscribe to the dead-letter subject");
    events.client().flush().await.expect("flush");
    subscriber
}

/// The next message of `subscriber`, within `wait`.
pub(crate) async fn next_message(subscriber: &mut Subscriber, wait: Duration) -> Message {
    timeout(wait, futures_util::StreamExt::next(subscriber))
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

/// Asserts that nothing has arrived on `subscriber` once what `events` sent is flushed.
pub(crate) async fn assert_no_message(events: &Events, subscriber: &mut Subscriber, why: &str) {
    events.client().flush().await.expect("flush");
    assert!(
        futures_util::FutureExt::now_or_never(futures_util::StreamExt::next(subscriber)).is_none(),
        "{why}"
    );
}

/// The first value of header `name` of `message`.
pub(crate) fn header(message: &Message, name: &str) -> Option<String> {
    let h = message.headers.as_ref().expect("dead letter headers");
    h.get(name).map(|v| v.as_str().to_owned())
}

/// Asserts what a dead letter of `event`, consumed from `subject`, carries.
pub(crate) fn assert_dead_letter(
    dead: &Message,
    event: &PaymentCreated,
    subject: &Subject,
    attempts: &str,
    error: &str,
    request_id: &str,
) {
    assert_eq!(
        &serde_json::from_slice::<PaymentCreated>(&dead.payload).expect("the event as JSON"),
        event
    );
    assert_eq!(
        header(dead, headers::DEAD_LETTER_ATTEMPTS).as_deref(),
        Some(attempts)
    );
    assert_eq!(
        header(dead, headers::DEAD_LETTER_ERROR).as_deref(),
        Some(error)
    );
    assert_eq!(
        header(dead, headers::DEAD_LETTER_SUBJECT).as_deref(),
        Some(subject.as_str())
    );
    assert_eq!(
        header(dead, headers::REQUEST_ID).as_deref(),
        Some(request_id)
    );
}

/// Asserts the counters of `subject`: `(name, value)` pairs.
pub(crate) fn assert_counters(subject: &Subject, expected: &[(&str, u64)]) {
    for (name, value) in expected {
        assert_eq!(counter(name, subject.as_str()), *value, "{name}");
    }
}

/// Asserts that `rx` receives nothing within `wait`.
pub(crate) async fn assert_nothing_within<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    wait: Duration,
    why: &str,
) {
    assert!(timeout(wait, rx.recv()).await.is_err(), "{why}");
}

/// Everything `rx` holds now, in order.
pub(crate) fn received_now<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut seen = Vec::new();
    while let Ok(item) = rx.try_recv() {
        seen.push(item);
    }
    seen
}
