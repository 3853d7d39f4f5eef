//! Single-flight: concurrent misses for one key run the handler once.

use crate::entry::CachedResponse;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// How a flight ended, for the callers that waited on it.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The leader's OK response: replayed as a hit.
    Shared(Arc<CachedResponse>),
    /// The leader's error status (same method, message and caller): replayed, never stored.
    Failed(Arc<CachedResponse>),
    /// An OK response too large to keep: each waiter runs the handler itself.
    Unshared,
    /// The leader went away without an answer (its caller left, or an inner layer failed):
    /// one waiter takes over as the new leader, the others wait for it.
    Abandoned,
}

/// One handler call that other callers of the same key wait for.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    result: OnceLock<Outcome>,
    done: Notify,
}

impl Flight {
    /// How the flight ended.
    pub(crate) async fn wait(&self) -> Outcome {
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

/// The caller that runs the handler. Dropping it without [`Leader::land`] abandons the
/// flight: one follower takes over.
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

    /// Flights in the air.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl Leader<'_> {
    /// Hands the outcome to every follower and ends the flight.
    pub(crate) fn land(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.landed, true) {
            return;
        }
        // Only this flight's own entry: a new flight for the key may have begun.
        self.flights
            .map
            .remove_if(&self.key, |_, flight| Arc::ptr_eq(flight, &self.flight));
        let _ = self.flight.result.set(outcome);
        self.flight.done.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_abandoned_flight_hands_over_to_exactly_one_waiter() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join(1) else {
            panic!("first is the leader")
        };
        let followers: Vec<Arc<Flight>> = (0..3)
            .map(|_| match flights.join(1) {
                Role::Follower(flight) => flight,
                Role::Leader(_) => panic!("one leader at a time"),
            })
            .collect();
        drop(leader);
        let mut leaders = Vec::new();
        for flight in &followers {
            assert!(matches!(flight.wait().await, Outcome::Abandoned));
            if let Role::Leader(leader) = flights.join(1) {
                leaders.push(leader);
            }
        }
        assert_eq!(leaders.len(), 1, "exactly one retry");
        assert_eq!(flights.len(), 1);
    }
}
