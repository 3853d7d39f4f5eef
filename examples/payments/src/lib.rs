//! The payments example: the whole tonic-blueprint in one service.
//!
//! - [`PaymentService`](service::Payments) over a [`Store`](store::Store) on the kit's
//!   database helper: the `pay_payment` table, made by `migrations/`, on SQLite by default or
//!   PostgreSQL with a `postgres://` `DATABASE_URL`;
//! - the preset stack in front: bearer JWTs verified (HS256 with `AUTH_JWT_SECRET`, whose
//!   default [`token::DEV_SECRET`] is for development only, or keys from `AUTH_JWKS_URL`),
//!   validation from the `buf.validate` annotations, rate limits keyed by the verified user,
//!   deadlines, cached `GetPayment` and `ListPayments`, metrics, panic recovery and request
//!   logs;
//! - handlers that serve each user only their own payments (the token's `sub`), and an
//!   idempotent `CreatePayment` (an `idempotency-key` metadata: one payment per user and
//!   key, held by a unique index) ([`service`]);
//! - `payments.payment.created` on NATS for each created payment (JetStream when the server
//!   has it) through an outbox ([`announce`]): a payment whose event could not be published
//!   is published again later, never lost;
//! - `WatchPayments` for as long as the client keeps it open, in the store's sequence (not
//!   a replica's clock), each payment once, resumable with `after_sequence`, within
//!   per-caller and per-replica limits ([`hub`], [`config`]); each replica reads the table
//!   once for all its watchers, woken by those events or by its own creates.
//!
//! Run it with `cargo run -p payments-example`; see the walk-through in `examples/payments/README.md`.

pub mod announce;
pub mod config;
pub mod hub;
pub mod messages;
pub mod pb;
pub mod service;
pub mod store;
pub mod token;

/// The service name: cache key prefix, NATS subjects, logs, table prefix.
pub const SERVICE: &str = "payments";

/// Where the migrations are, for `cargo run` from anywhere in the workspace.
pub const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

/// The service's own defaults on top of the kit's (see `export.sh` beside this crate).
pub fn with_defaults(loader: tonic_blueprint::config::Loader) -> tonic_blueprint::config::Loader {
    loader
        .default_value("SERVICE_NAME", SERVICE)
        .default_value("AUTH_JWT_SECRET", token::DEV_SECRET)
}

/// The response metadata `name` as text, `-` when absent or not text.
pub fn metadata_text<'a, T>(response: &'a tonic::Response<T>, name: &str) -> &'a str {
    response
        .metadata()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}
