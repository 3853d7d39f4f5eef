//! `WatchPayments`: recorded payments fanned out to the calls watching their user, in the
//! store's sequence, each once, resumable.
//!
//! # How a replica feeds its watchers
//!
//! The table is the only source of what a watch delivers. Each replica runs one **tail**: a
//! task that reads the payments after the last sequence it has seen (`seq > head`, every
//! user, a page at a time, each read bounded by [`TAIL_READ_TIMEOUT`]) and keeps the newest
//! [`WatchConfig::history`] of them in memory, shared by every watcher of the replica. The tail
//! reads when its doorbell rings ([`Hub::ring`]: this replica's `CreatePayment`, or a
//! `payments.payment.created` event from any replica) and every [`POLL_EVERY`] in any case,
//! so an event lost while NATS was away delays a payment by at most that, never loses it.
//!
//! An event only rings the doorbell: its content never reaches a watcher. Someone who can
//! publish on the subject can make the tail read (at most one read in flight, at least
//! [`MIN_READ_SPACING`] apart), never put a payment in a watch.
//!
//! # Order, duplicates, gaps
//!
//! Payments are delivered in sequence order ([`Payment::sequence`], assigned by the store in
//! commit order; see [`crate::store`]). Each watcher keeps the sequence of the last payment
//! it sent, so nothing is sent twice; because sequences commit in order, nothing below it
//! appears later. Replica clocks play no part.
//!
//! # A watcher's life
//!
//! - Without `after_sequence` it starts at the replica's current head: payments recorded
//!   from then on. With it, it first catches up: from the shared history when that still
//!   holds everything after `after_sequence`, else from the table, a page of
//!   [`CATCH_UP_PAGE`] payments of its user at a time. Table reads go through one bounded
//!   path: at most [`CATCH_UP_CONCURRENCY`] at once per replica, each within the call's
//!   deadline and at most [`CATCH_UP_TIMEOUT`].
//! - Live, it holds only its position; the history holds the payments. A watcher that falls
//!   more than [`WatchConfig::history`] payments behind (its client reads too slowly) is
//!   ended with RESOURCE_EXHAUSTED and the sequence to resume after, rather than buffering
//!   without bound.
//! - At most [`WatchConfig::max_watchers_per_user`] watches per caller and
//!   [`WatchConfig::max_watchers`] in all on a replica: past them RESOURCE_EXHAUSTED.
//! - When the replica shuts down ([`Hub::close`]), every watch ends with UNAVAILABLE and
//!   its resume position, so clients resume on another replica at once.

use crate::messages;
use crate::pb::Payment;
use crate::store::Store;
use futures_util::Stream;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tonic::{Code, Status};
use tonic_blueprint::core::catalogue::{self, Lang, Message};
use tonic_blueprint::core::{Deadline, DeadlineSource};
use tonic_types::ErrorDetails;

/// How often the tail reads the table without a doorbell.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// The shortest time between two reads of the tail (a flood of doorbells costs at most one
/// read per this).
pub const MIN_READ_SPACING: Duration = Duration::from_millis(10);
/// The bound of each read of the tail.
pub const TAIL_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most payments one read of the tail returns.
pub const TAIL_PAGE: usize = 500;
/// The most payments of a user one catch-up read returns.
pub const CATCH_UP_PAGE: usize = 200;
/// The most catch-up reads running at once on a replica.
pub const CATCH_UP_CONCURRENCY: usize = 4;
/// The longest a catch-up read (waiting for its turn included) may take, whatever the
/// call's deadline.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// The domain of the `google.rpc.ErrorInfo` of a refused or ended watch.
pub const ERROR_DOMAIN: &str = "payments.v1";

/// The limits of a replica's watches; see [`crate::config`] for the variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// Watches on the replica at once (`MAX_WATCHERS`).
    pub max_watchers: usize,
    /// Watches of one caller on the replica at once (`MAX_WATCHERS_PER_USER`).
    pub max_watchers_per_user: usize,
    /// Payments kept in memory for the replica's watchers (`WATCH_HISTORY`): how far a
    /// watcher may fall behind, and how far back a resume needs no table read.
    pub history: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            max_watchers: 5_000,
            max_watchers_per_user: 16,
            history: 4096,
        }
    }
}

/// Why a watch was refused or ended: the `ErrorInfo` reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchError {
    /// The caller has [`WatchConfig::max_watchers_per_user`] watches open here.
    TooManyForUser,
    /// The replica has [`WatchConfig::max_watchers`] watches open.
    TooMany,
    /// The watcher fell more than [`WatchConfig::history`] payments behind.
    TooSlow,
    /// The replica is shutting down.
    ShuttingDown,
    /// Too many watchers were catching up from the table to start this one in time.
    CatchUpBusy,
}

impl WatchError {
    /// The `ErrorInfo` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooManyForUser => "TOO_MANY_WATCHERS_PER_USER",
            Self::TooMany => "TOO_MANY_WATCHERS",
            Self::TooSlow => "WATCHER_TOO_SLOW",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::CatchUpBusy => "CATCH_UP_BUSY",
        }
    }

    fn code(self) -> Code {
        match self {
            Self::TooManyForUser | Self::TooMany | Self::TooSlow => Code::ResourceExhausted,
            Self::ShuttingDown | Self::CatchUpBusy => Code::Unavailable,
        }
    }

    /// The message, from the service's catalogue ([`crate::messages`]).
    fn text(self) -> Message {
        match self {
            Self::TooManyForUser => messages::TOO_MANY_WATCHERS_PER_USER,
            Self::TooMany => messages::TOO_MANY_WATCHERS,
            Self::TooSlow => messages::WATCHER_TOO_SLOW,
            Self::ShuttingDown => messages::SHUTTING_DOWN,
            Self::CatchUpBusy => messages::CATCH_UP_BUSY,
        }
    }

    /// The status: the English message for developers, an `ErrorInfo` carrying the reason
    /// and, for a watch that ran, the sequence to resume after, and for a caller speaking
    /// another language a `LocalizedMessage` in it.
    pub fn status(self, lang: Lang, resume_after: Option<u64>) -> Status {
        let mut metadata = HashMap::new();
        if let Some(sequence) = resume_after {
            metadata.insert("after_sequence".to_owned(), sequence.to_string());
        }
        let details = ErrorDetails::with_error_info(self.reason(), ERROR_DOMAIN, metadata);
        catalogue::status_with_details(self.code(), self.text(), lang, details)
    }
}

/// The fan-out point of a replica; see the [module docs](self). Clones share it.
#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: WatchConfig,
    history: RwLock<History>,
    /// The head and whether the hub is closed; every watcher waits on it.
    state: watch::Sender<State>,
    doorbell: Notify,
    watchers: Mutex<Watchers>,
    catch_up: Semaphore,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    head: u64,
    closed: bool,
}

/// The newest payments, in sequence order: every recorded payment with a sequence in
/// `(base, head]` is in `entries`.
#[derive(Debug)]
struct History {
    base: u64,
    entries: VecDeque<Arc<Payment>>,
}

impl History {
    fn head(&self) -> u64 {
        self.entries.back().map_or(self.base, |p| p.sequence)
    }
}

#[derive(Debug, Default)]
struct Watchers {
    total: usize,
    per_user: HashMap<String, usize>,
}

impl Hub {
    /// The hub of `store` with `config`: reads the current head, then tails the table until
    /// [`close`](Self::close)d.
    pub async fn start(store: Store, config: WatchConfig) -> Result<Self, Status> {
        let config = WatchConfig {
            history: config.history.max(1),
            ..config
        };
        let deadline = Deadline::after(TAIL_READ_TIMEOUT, DeadlineSource::Server);
        let head = store.last_sequence(Some(&deadline)).await?;
        let inner = Arc::new(Inner {
            store,
            config,
            history: RwLock::new(History {
                base: head,
                entries: VecDeque::with_capacity(config.history.min(TAIL_PAGE)),
            }),
            state: watch::channel(State {
                head,
                closed: false,
            })
            .0,
            doorbell: Notify::new(),
            watchers: Mutex::new(Watchers::default()),
            catch_up: Semaphore::new(CATCH_UP_CONCURRENCY),
        });
        tokio::spawn(tail(inner.clone()));
        Ok(Self { inner })
    }

    /// Rings the doorbell: the tail reads the table soon (many rings, one read).
    pub fn ring(&self) {
        self.inner.doorbell.notify_one();
    }

    /// The greatest sequence the replica's watchers have been handed.
    pub fn head(&self) -> u64 {
        self.inner.state.borrow().head
    }

    /// Watches open on the replica.
    pub fn watchers(&self) -> usize {
        lock(&self.inner.watchers).total
    }

    /// Ends every watch with UNAVAILABLE (and its resume position) and stops the tail: call
    /// it when the replica starts shutting down, before in-flight calls are drained.
    pub fn close(&self) {
        self.inner.state.send_modify(|state| state.closed = true);
        self.inner.doorbell.notify_one();
    }

    /// The payments of `user_id` after `after` (a sequence; `None`: from the current head),
    /// in sequence order, each once; refused with RESOURCE_EXHAUSTED past the watcher
    /// limits. `deadline` is the call's: it bounds the catch-up reads.
    pub fn watch(
        &self,
        user_id: String,
        after: Option<u64>,
        deadline: Option<Deadline>,
        lang: Lang,
    ) -> Result<impl Stream<Item = Result<Payment, Status>> + Send + 'static, Status> {
        let slot = self.admit(&user_id).map_err(|e| e.status(lang, None))?;
        let mut rx = self.inner.state.subscribe();
        if rx.borrow_and_update().closed {
            return Err(WatchError::ShuttingDown.status(lang, after));
        }
        // From now: after the newest payment the history holds (the watch channel's head may
        // lag it by one read).
        let head = self
            .inner
            .history
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .head();
        let watcher = Watcher {
            inner: self.inner.clone(),
            cursor: after.unwrap_or(head),
            // From the head, it is live at once; a resume is live once it reaches the history.
            live: after.is_none(),
            backlog: VecDeque::new(),
            skip_to: None,
            rx,
            deadline,
            lang,
            _slot: slot,
            user_id,
        };
        Ok(futures_util::stream::unfold(
            Some(watcher),
            |state| async move {
                let mut watcher = state?;
                match watcher.next().await {
                    Ok(payment) => Some((Ok(payment), Some(watcher))),
                    // The error ends the stream (and frees the slot).
                    Err(status) => Some((Err(status), None)),
                }
            },
        ))
    }

    fn admit(&self, user_id: &str) -> Result<Slot, WatchError> {
        let config = self.inner.config;
        let mut watchers = lock(&self.inner.watchers);
        let mine = watchers.per_user.get(user_id).copied().unwrap_or(0);
        if mine >= config.max_watchers_per_user {
            return Err(WatchError::TooManyForUser);
        }
        if watchers.total >= config.max_watchers {
            return Err(WatchError::TooMany);
        }
        watchers.total += 1;
        *watchers.per_user.entry(user_id.to_owned()).or_default() += 1;
        Ok(Slot {
            inner: self.inner.clone(),
            user_id: user_id.to_owned(),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The counts stay consistent under any panic (each update is one statement).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place among the watchers, given back when the watch ends however it ends.
#[derive(Debug)]
struct Slot {
    inner: Arc<Inner>,
    user_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut watchers = lock(&self.inner.watchers);
        watchers.total = watchers.total.saturating_sub(1);
        if let Some(count) = watchers.per_user.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                watchers.per_user.remove(&self.user_id);
            }
        }
    }
}

/// The tail: reads what the replica's watchers share; see the [module docs](self).
async fn tail(inner: Arc<Inner>) {
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed = inner.state.subscribe();
    let mut failures: u32 = 0;
    loop {
        if closed.borrow_and_update().closed {
            return;
        }
        let started = Instant::now();
        let more = match read(&inner).await {
            Ok(more) => {
                failures = 0;
                more
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                // One warning per outage, then quiet retries at the poll interval.
                if failures == 1 {
                    tracing::warn!(error = %e, "the watch tail cannot read the payments; retrying");
                }
                false
            }
        };
        // Marks this read's own head update seen, so only a close wakes the wait below.
        if closed.borrow_and_update().closed {
            return;
        }
        if !more {
            tokio::select! {
                _ = inner.doorbell.notified() => {}
                _ = poll.tick() => {}
                _ = closed.changed() => {}
            }
        }
        tokio::time::sleep_until(started + MIN_READ_SPACING).await;
    }
}

/// One read of the tail; `true` when the page was full (more may be waiting).
async fn read(inner: &Inner) -> Result<bool, tonic_blueprint::db::DbError> {
    let (after, page) = {
        let history = inner.history.read().unwrap_or_else(PoisonError::into_inner);
        // Never more than half the history at once, so a watcher that keeps up is not
        // pushed out of it by a single read.
        (
            history.head(),
            TAIL_PAGE.min((inner.config.history / 2).max(1)),
        )
    };
    let deadline = Deadline::after(TAIL_READ_TIMEOUT, DeadlineSource::Server);
    let payments = inner.store.after(after, page, Some(&deadline)).await?;
    let Some(last) = payments.last().map(|p| p.sequence) else {
        return Ok(false);
    };
    let full = payments.len() == page;
    {
        let mut history = inner
            .history
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for payment in payments {
            if payment.sequence > history.head() {
                history.entries.push_back(Arc::new(payment));
            }
        }
        while history.entries.len() > inner.config.history {
            if let Some(oldest) = history.entries.pop_front() {
                history.base = oldest.sequence;
            }
        }
    }
    inner
        .state
        .send_modify(|state| state.head = state.head.max(last));
    Ok(full)
}

/// One watch; see the [module docs](self).
struct Watcher {
    inner: Arc<Inner>,
    user_id: String,
    /// The sequence of the last payment sent, or of the last one known not to be the user's.
    cursor: u64,
    /// Served from the history since it caught up: falling out of it now means too slow.
    live: bool,
    /// Payments read from the table, not sent yet (at most [`CATCH_UP_PAGE`]).
    backlog: VecDeque<Payment>,
    /// Once the backlog is sent: every payment of the user up to this sequence was in it.
    skip_to: Option<u64>,
    rx: watch::Receiver<State>,
    deadline: Option<Deadline>,
    lang: Lang,
    _slot: Slot,
}

enum Scan {
    /// The user's next payment.
    Found(Payment),
    /// None of the user's up to this sequence.
    Nothing(u64),
    /// The history no longer holds everything after the cursor.
    Behind,
}

impl Watcher {
    async fn next(&mut self) -> Result<Payment, Status> {
        loop {
            if let Some(payment) = self.backlog.pop_front() {
                self.cursor = payment.sequence;
                return Ok(payment);
            }
            if let Some(skip_to) = self.skip_to.take() {
                self.cursor = self.cursor.max(skip_to);
            }
            // Marked seen before the history is read: a payment added after this wakes the
            // wait below.
            if self.rx.borrow_and_update().closed {
                return Err(WatchError::ShuttingDown.status(self.lang, Some(self.cursor)));
            }
            match self.scan() {
                Scan::Found(payment) => {
                    self.live = true;
                    self.cursor = payment.sequence;
                    return Ok(payment);
                }
                Scan::Nothing(head) => {
                    self.live = true;
                    self.cursor = self.cursor.max(head);
                }
                Scan::Behind if self.live => {
                    tracing::warn!(
                        after_sequence = self.cursor,
                        "a watcher fell too far behind; ending it"
                    );
                    return Err(WatchError::TooSlow.status(self.lang, Some(self.cursor)));
                }
                Scan::Behind => {
                    self.catch_up().await?;
                    continue;
                }
            }
            if self.rx.changed().await.is_err() {
                // The hub is gone: as good as closed.
                return Err(WatchError::ShuttingDown.status(self.lang, Some(self.cursor)));
            }
        }
    }

    fn scan(&self) -> Scan {
        let history = self
            .inner
            .history
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if self.cursor < history.base {
            return Scan::Behind;
        }
        let start = history
            .entries
            .partition_point(|p| p.sequence <= self.cursor);
        match history
            .entries
            .range(start..)
            .find(|p| p.user_id == self.user_id)
        {
            Some(payment) => Scan::Found(Payment::clone(payment)),
            None => Scan::Nothing(history.head()),
        }
    }

    /// One page of the user's payments after the cursor, from the table.
    async fn catch_up(&mut self) -> Result<(), Status> {
        let limit = Deadline::after(CATCH_UP_TIMEOUT, DeadlineSource::Server);
        let deadline = match self.deadline {
            Some(call) if call.expires_at() < limit.expires_at() => call,
            _ => limit,
        };
        let permit =
            tokio::time::timeout_at(deadline.expires_at(), self.inner.catch_up.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            return Err(WatchError::CatchUpBusy.status(self.lang, Some(self.cursor)));
        };
        // Every payment up to the history's head was committed before this read starts.
        let scanned_to = self
            .inner
            .history
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .head();
        let page = self
            .inner
            .store
            .user_after(&self.user_id, self.cursor, CATCH_UP_PAGE, Some(&deadline))
            .await?;
        if page.len() < CATCH_UP_PAGE {
            self.skip_to = Some(scanned_to);
        }
        self.backlog.extend(page);
        Ok(())
    }
}
