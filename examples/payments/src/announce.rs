//! `payments.payment.created`: published for every created payment, through an outbox.
//!
//! A payment is stored with `event_published = 0` and announced right after; the flag is set
//! once NATS (JetStream when the server has it) acknowledged the event. A payment whose
//! publish failed is announced again by the relay every [`RELAY_EVERY`], with its id as the
//! `Nats-Msg-Id`, so JetStream stores it once. The event carries the creating call's
//! `x-request-id` in its headers.
//!
//! Every replica listens on the subject to ring its [`Hub`]'s doorbell: an event whose
//! envelope checks out (the service's subject, a JSON [`PaymentCreated`] whose `Nats-Msg-Id`
//! is its payment id) makes the replica read the table sooner. What watchers receive is
//! always read from the table, never taken from an event, so a message published on the
//! subject by someone else cannot put a payment in a watch; NATS permissions should still
//! let only the service publish on `payments.>` (see `examples/payments/README.md`).

use crate::SERVICE;
use crate::hub::Hub;
use crate::pb::{Payment, PaymentStatus};
use crate::store::{Store, timestamp};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic_blueprint::core::trace::parse_traceparent;
use tonic_blueprint::core::{Deadline, DeadlineSource, RequestId};
use tonic_blueprint::events::{
    EventContext, Events, EventsError, NatsConfig, StreamConfig, Subject,
};

/// How often the relay retries unpublished events.
pub const RELAY_EVERY: Duration = Duration::from_secs(2);
/// How long `CreatePayment` waits for its event's acknowledgement before leaving it to the
/// relay: an unreachable NATS slows a call by at most this.
pub const ANNOUNCE_WITHIN: Duration = Duration::from_secs(1);
/// The JetStream stream holding the service's events.
pub const STREAM: &str = "PAYMENTS";

/// The event's JSON body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCreated {
    /// Payment id.
    pub id: String,
    /// Whose payment.
    pub user_id: String,
    /// Amount in cents.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Free text.
    pub description: String,
    /// `PAYMENT_STATUS_ACCEPTED`.
    pub status: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The store's sequence ([`Payment::sequence`]): consumers order by it, not by the id
    /// or the time, which carry the creating replica's clock.
    #[serde(default)]
    pub sequence: u64,
}

impl From<&Payment> for PaymentCreated {
    fn from(p: &Payment) -> Self {
        let created = p.created_at.unwrap_or_default();
        Self {
            id: p.id.clone(),
            user_id: p.user_id.clone(),
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
            description: p.description.clone(),
            status: p.status().as_str_name().to_owned(),
            created_at_ms: created.seconds * 1000 + i64::from(created.nanos / 1_000_000),
            sequence: p.sequence,
        }
    }
}

impl From<PaymentCreated> for Payment {
    fn from(e: PaymentCreated) -> Self {
        Self {
            id: e.id,
            user_id: e.user_id,
            amount_cents: e.amount_cents,
            currency: e.currency,
            description: e.description,
            status: PaymentStatus::from_str_name(&e.status).unwrap_or(PaymentStatus::Unspecified)
                as i32,
            created_at: Some(timestamp(e.created_at_ms)),
            sequence: e.sequence,
        }
    }
}

/// The subject, `payments.payment.created`.
pub fn created_subject() -> Subject {
    // Three fixed, valid tokens.
    Subject::new(SERVICE, "payment", "created").unwrap_or_else(|_| unreachable!())
}

/// Announces created payments; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Announcer {
    events: Option<Events>,
    jetstream: bool,
    store: Store,
}

/// Whether a message on the created subject is one of the service's own events: JSON of a
/// [`PaymentCreated`] with a sequence, whose `Nats-Msg-Id` (when present) is its payment id.
pub fn checked_event(
    message: &tonic_blueprint::events::async_nats::Message,
) -> Option<PaymentCreated> {
    if message.subject.as_str() != created_subject().as_str() {
        return None;
    }
    let event: PaymentCreated = serde_json::from_slice(&message.payload).ok()?;
    let message_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(tonic_blueprint::events::headers::MESSAGE_ID));
    let id_matches = message_id.is_none_or(|id| id.as_str() == event.id);
    (event.sequence > 0 && id_matches).then_some(event)
}

impl Announcer {
    /// Without NATS: no events; the handlers ring the hub themselves.
    pub fn local(store: Store) -> Self {
        Self {
            events: None,
            jetstream: false,
            store,
        }
    }

    /// Connected to `url` (bounded retries). With JetStream on the server, the `PAYMENTS`
    /// stream (`payments.>`) is created or updated. Each event from any replica rings
    /// `hub`'s doorbell.
    pub async fn connect(url: &str, store: Store, hub: Hub) -> Result<Self, EventsError> {
        Self::connect_with(NatsConfig::with_url(url), store, hub).await
    }

    /// [`connect`](Self::connect) with the connection settings of `base` (the kit's
    /// `NATS_URL`, `NATS_CA_FILE`, client certificate and `NATS_CREDS_FILE`:
    /// [`NatsConfig::from_section`]).
    pub async fn connect_with(
        base: NatsConfig,
        store: Store,
        hub: Hub,
    ) -> Result<Self, EventsError> {
        let config = NatsConfig {
            name: Some(SERVICE.to_owned()),
            jetstream: true,
            // A late acknowledgement costs a relay round before the event is marked: wait up
            // to ANNOUNCE_WITHIN for it (a disconnected NATS costs nothing).
            request_publish_timeout_ms: u64::try_from(ANNOUNCE_WITHIN.as_millis())
                .unwrap_or(u64::MAX),
            ..base
        };
        let events = Events::connect(&config).await?;
        let jetstream = events.client().server_info().jetstream;
        if jetstream {
            events
                .ensure_stream(&StreamConfig::new(STREAM, [format!("{SERVICE}.>")]))
                .await?;
        } else {
            tracing::warn!("the NATS server has no JetStream: events are published at most once");
        }
        let mut subscription = events
            .client()
            .subscribe(created_subject().to_string())
            .await
            .map_err(|e| EventsError::Config(format!("cannot subscribe: {e}")))?;
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                match checked_event(&message) {
                    // Only a doorbell: the payment itself is read from the table.
                    Some(event) if event.sequence > hub.head() => {
                        // The create call's trace, so the watch's wake-up can be found by it.
                        let trace = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("traceparent"))
                            .and_then(|v| parse_traceparent(v.as_str().as_bytes()));
                        tracing::debug!(
                            payment.sequence = event.sequence,
                            trace_id = trace.map(|t| tracing::field::display(t.trace_id)),
                            "payment event: the watch doorbell rings"
                        );
                        hub.ring()
                    }
                    Some(_) => {}
                    None => tracing::debug!(
                        subject = %message.subject,
                        "a message on the payments subject that is not the service's event; ignored"
                    ),
                }
            }
        });
        Ok(Self {
            events: Some(events),
            jetstream,
            store,
        })
    }

    /// True when events go to NATS.
    pub fn publishes(&self) -> bool {
        self.events.is_some()
    }

    /// The NATS connection, if any (drain it at shutdown).
    pub fn events(&self) -> Option<&Events> {
        self.events.as_ref()
    }

    /// Announces a payment just stored. Never fails the call: a failed publish is left to
    /// the relay.
    pub async fn announce(&self, payment: &Payment, request_id: Option<RequestId>) {
        let Some(events) = &self.events else {
            return;
        };
        let published = tokio::time::timeout(
            ANNOUNCE_WITHIN,
            self.publish(events, payment, request_id, true),
        )
        .await
        .unwrap_or_else(|_| Err("no acknowledgement in time".to_owned()));
        if let Err(e) = published {
            tracing::warn!(payment.id = %payment.id, error = %e, "payment event not published yet; the relay retries");
        }
    }

    async fn publish(
        &self,
        events: &Events,
        payment: &Payment,
        request_id: Option<RequestId>,
        request_path: bool,
    ) -> Result<(), String> {
        let mut ctx = EventContext::new().with_message_id(payment.id.clone());
        if let Some(id) = request_id {
            ctx = ctx.with_request_id(id);
        }
        if request_path {
            // Inside CreatePayment: fail at once while NATS is disconnected, bounded.
            ctx = ctx.with_deadline(Deadline::after(ANNOUNCE_WITHIN, DeadlineSource::Server));
        }
        let event = PaymentCreated::from(payment);
        let subject = created_subject();
        let sent = if self.jetstream {
            events.publish_jetstream(&subject, &event, &ctx).await
        } else {
            events.publish(&subject, &event, &ctx).await
        };
        sent.map_err(|e| e.to_string())?;
        self.store
            .mark_published(&payment.id)
            .await
            .map_err(|e| e.to_string())
    }

    /// Publishes what is still due, oldest first; returns how many went out.
    pub async fn relay_once(&self) -> usize {
        let Some(events) = &self.events else { return 0 };
        let due = match self.store.unpublished(100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read unpublished payments");
                return 0;
            }
        };
        let mut sent = 0;
        for item in due {
            let request_id = tonic::codegen::http::HeaderValue::from_str(&item.request_id)
                .ok()
                .and_then(|v| RequestId::accept(&v));
            match self.publish(events, &item.payment, request_id, false).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    tracing::warn!(payment.id = %item.payment.id, error = %e, "relay: still cannot publish");
                    break;
                }
            }
        }
        sent
    }

    /// Runs the relay until the task is aborted.
    pub fn spawn_relay(&self) -> tokio::task::JoinHandle<()> {
        let announcer = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELAY_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                announcer.relay_once().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_the_whole_payment_and_reads_back_as_it() {
        let payment = Payment {
            id: "01a21472-d403-7769-9be7-c5ffb25e32fe".to_owned(),
            user_id: "u".to_owned(),
            amount_cents: 1250,
            currency: "EUR".to_owned(),
            description: "coffee".to_owned(),
            status: PaymentStatus::Accepted as i32,
            created_at: Some(timestamp(1_764_100_000_123)),
            sequence: 42,
        };
        let event = PaymentCreated::from(&payment);
        assert_eq!(event.created_at_ms, 1_764_100_000_123);
        assert_eq!(event.status, "PAYMENT_STATUS_ACCEPTED");
        let json = serde_json::to_string(&event).expect("JSON");
        let back: PaymentCreated = serde_json::from_str(&json).expect("JSON");
        assert_eq!(Payment::from(back), payment);
        assert_eq!(created_subject().as_str(), "payments.payment.created");
    }
}
