//! `WatchPayments`: created payments fanned out to the calls watching their user.
//!
//! The hub is fed by the `payments.payment.created` events when NATS is configured (so every
//! replica's watchers see every replica's payments), else directly by this process's
//! `CreatePayment`. A watcher that falls more than [`CAPACITY`] payments behind catches up
//! from the table instead of losing them.

use crate::pb::Payment;
use crate::store::Store;
use futures_util::Stream;
use std::collections::VecDeque;
use tokio::sync::broadcast::{self, error::RecvError};
use tonic::Status;

/// Payments buffered for slow watchers before they catch up from the table.
pub const CAPACITY: usize = 1024;

/// The fan-out point.
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<Payment>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with no watchers.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Hands `payment` to the current watchers.
    pub fn publish(&self, payment: Payment) {
        // No watcher at all is not an error.
        let _ = self.tx.send(payment);
    }

    /// The payments of `user_id` created from now on, oldest first, each once.
    pub fn watch(
        &self,
        user_id: String,
        store: Store,
    ) -> impl Stream<Item = Result<Payment, Status>> + Send + 'static {
        let watch = Watch {
            rx: self.tx.subscribe(),
            // Ids are UUID v7: one made now sorts after every payment created before.
            last: uuid::Uuid::now_v7().hyphenated().to_string(),
            user_id,
            store,
            backlog: VecDeque::new(),
        };
        futures_util::stream::unfold(Some(watch), |state| async move {
            let mut watch = state?;
            match watch.next().await {
                Ok(Some(payment)) => Some((Ok(payment), Some(watch))),
                Ok(None) => None,
                // The error ends the stream.
                Err(status) => Some((Err(status), None)),
            }
        })
    }
}

struct Watch {
    rx: broadcast::Receiver<Payment>,
    user_id: String,
    /// The newest id sent (or the watch's start).
    last: String,
    store: Store,
    backlog: VecDeque<Payment>,
}

impl Watch {
    async fn next(&mut self) -> Result<Option<Payment>, Status> {
        loop {
            let candidate = match self.backlog.pop_front() {
                Some(payment) => payment,
                None => match self.rx.recv().await {
                    Ok(payment) => payment,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a watcher fell behind; catching up from the table");
                        let missed = self
                            .store
                            .newer_than(&self.user_id, &self.last, CAPACITY as i64)
                            .await?;
                        self.backlog.extend(missed);
                        continue;
                    }
                    Err(RecvError::Closed) => return Ok(None),
                },
            };
            if candidate.user_id == self.user_id && candidate.id > self.last {
                self.last.clone_from(&candidate.id);
                return Ok(Some(candidate));
            }
        }
    }
}
