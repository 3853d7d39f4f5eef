//! NATS events: subjects, typed publish, queue consumers, JetStream.
//!
//! - [`Subject`]: the blueprint's `<service>.<entity>.<event>` (`payments.payment.created`),
//!   every token `[a-z0-9_-]`, so a subject never contains a wildcard by accident;
//! - [`Events::connect`] from a [`NatsConfig`] (serde, defaults for every field): bounded
//!   connection attempts, one error naming the server (never its credentials), the
//!   configured JetStream streams created or updated;
//! - [`Events::publish`] (core NATS, flushed) and [`Events::publish_jetstream`] (waits for
//!   the stream's acknowledgement, retried under the same `Nats-Msg-Id`): the event as
//!   JSON, with `x-request-id` from the RPC that caused it ([`EventContext`]),
//!   `Content-Type` and a unique `Nats-Msg-Id`;
//! - [`Events::subscribe_queue`]: a queue-group consumer with a concurrency limit,
//!   in-process retries with exponential backoff, then the dead-letter subject;
//! - [`Events::consume`]: a durable JetStream pull consumer, at least once: `Ok` acks, `Err`
//!   naks with a growing delay, and the last failed attempt goes to the dead-letter subject
//!   and is terminated;
//! - both bound each delivery by `handler_timeout_ms` (default 30 s: the handler's future is
//!   dropped and the attempt fails, counted in [`counters::TIMED_OUT`]), and draw every
//!   retry, redelivery and reconnection wait uniformly between zero and its backoff (full
//!   jitter), so consumers that failed together do not retry together;
//! - [`Events::drain`] at shutdown.
//!
//! Handlers receive a [`Delivery`]: the decoded event, its headers, the request id and the
//! attempt. Every publish and delivery is logged (`nats.subject`, `nats.attempt`,
//! `request_id`) and counted ([`counters`]).
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tonic_blueprint::events::{Delivery, EventContext, Events, NatsConfig, StreamConfig, Subject};
//!
//! #[derive(Serialize, Deserialize)]
//! struct PaymentCreated { id: String, cents: u64 }
//!
//! # async fn demo(request: tonic::Request<()>) -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = NatsConfig::with_url("nats://127.0.0.1:4222");
//! config.streams.push(StreamConfig::new("PAYMENTS", ["payments.>"]));
//! let events = Events::connect(&config).await?;
//!
//! let created = Subject::new("payments", "payment", "created")?;
//! events
//!     .consume("PAYMENTS", "ledger", &created, |delivery: Delivery<PaymentCreated>| async move {
//!         println!("{} ({:?})", delivery.event.id, delivery.request_id);
//!         Ok::<(), String>(())
//!     })
//!     .await?;
//!
//! // In an RPC handler: the request id of the call goes along.
//! let event = PaymentCreated { id: "p-1".into(), cents: 1250 };
//! events.publish_jetstream(&created, &event, &EventContext::from_request(&request)).await?;
//!
//! events.drain().await?;
//! # Ok(()) }
//! ```
//!
//! The payload is JSON; protobuf payloads are not offered (prost is not a dependency of this
//! feature).

mod config;
mod connection;
mod consumer;
mod context;
pub mod counters;
mod delivery;
mod error;
mod jetstream;
mod publish;
mod subject;

#[doc(no_inline)]
pub use async_nats;
pub use config::{ConsumerOptions, NatsConfig, Storage, StreamConfig};
pub use connection::Events;
pub use consumer::ConsumerHandle;
pub use context::{EventContext, headers};
pub use delivery::{Delivery, EventHandler};
pub use error::EventsError;
pub use publish::Published;
pub use subject::{
    DEAD_LETTER_SUFFIX, MAX_SUBJECT_LEN, MAX_TOKEN_LEN, MAX_TOKENS, Subject, SubjectError,
    TokenProblem,
};
