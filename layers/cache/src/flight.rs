//! Single-flight: concurrent misses for one key run the handler once.

use crate::entry::CachedResponse;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// One handler call that other callers of the same key wait for.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    result: OnceLock<Option<Arc<CachedResponse>>>,
    done: Notify,
}

impl Flight {
    /// The leader's response, when it was a cacheable one; `None` tells the follower to call
    /// the handler itself (an error, a response too large to share, a leader that went away).
    pub(crate) async fn wait(&self) -> Option<Arc<CachedResponse>> {
        loop {
            let done = self.done.notified();
            if let Some(result) = self.result.get() {
                return result.clone();
            }
            done.await;
        }
    }
}

/// The flights in the air, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: DashMap<u64, Arc<Flight>>,
}

/// The caller's part in a flight.
pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Follower(Arc<Flight>),
}

/// The caller that runs the handler. Dropping it without [`Leader::land`] releases the
/// followers to run the handler themselves.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: u64,
    flight: Arc<Flight>,
    landed: bool,
}

impl Flights {
    pub(crate) fn join(&self, key: u64) -> Role<'_> {
        match self.map.entry(key) {
            Entry::Occupied(entry) => Role::Follower(entry.get().clone()),
            Entry::Vacant(entry) => {
                let flight = Arc::new(Flight::default());
                entry.insert(flight.clone());
                Role::Leader(Leader {
                    flights: self,
                    key,
                    flight,
                    landed: false,
                })
            }
        }
    }
}

impl Leader<'_> {
    /// Hands the result to every follower and ends the flight.
    pub(crate) fn land(mut self, result: Option<Arc<CachedResponse>>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Option<Arc<CachedResponse>>) {
        if std::mem::replace(&mut self.landed, true) {
            return;
        }
        self.flights.map.remove(&self.key);
        let _ = self.flight.result.set(result);
        self.flight.done.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.finish(None);
    }
}
