//! # tonic-blueprint
//!
//! The production blueprint of a gRPC microservice as Tower layers for
//! [tonic](https://docs.rs/tonic): add them with `Server::builder().layer(..)` and every RPC,
//! unary or streaming, gets what a platform team would hand-build, gRPC-correct.
//!
//! | feature (default on) | crate | what it gives |
//! |---|---|---|
//! | `validation` | [`tonic-blueprint-validation`](validation) | `buf.validate` rules from the descriptors, every violation in one BadRequest, client streams checked message by message, localized messages (needs `PROTOC` at build time, see the crate docs) |
//! | `timeout` | [`tonic-blueprint-timeout`](timeout) | deadlines: DEADLINE_EXCEEDED for unary and streaming calls, per-method policy, `grpc-timeout` honoured |
//! | `panic-recovery` | [`tonic-blueprint-panic-recovery`](panic_recovery) | panics in handlers and mid-stream become INTERNAL, logged with their location, never leaked |
//! | `logging` | [`tonic-blueprint-logging`](logging) | request ids, one span per call in the caller's W3C trace (`trace_id`, `span_id` on every line), the finishing event at a level chosen by outcome, sensitive metadata redacted; `PropagateLayer` carries trace, request id and deadline on to outgoing calls |
//! | `metrics` | [`tonic-blueprint-metrics`](metrics) | the go-grpc-prometheus metric family from the real final status, and the `/metrics` exporter |
//! | `auth` | [`tonic-blueprint-auth`](auth) | verified callers: bearer JWTs (secret, PEM or a rotating JWKS) and hashed API keys, per-method scopes, the `Identity` every caller-keyed layer reads |
//! | `rate-limit` | [`tonic-blueprint-rate-limit`](rate_limit) | per-caller quotas per method, RESOURCE_EXHAUSTED with RetryInfo, bounded memory |
//! | `cache` | [`tonic-blueprint-cache`](cache) | unary response caching: opt-in per method, vary metadata, single-flight, trailers kept; the cache client |
//! | `redis` (off) | | the Redis backends: one quota across replicas, shared and two-tier caches |
//! | `nats` (off) | | two-tier cache invalidations broadcast to every replica over NATS |
//! | `tls` (off) | | TLS on every hop, rustls on ring (no OpenSSL): the server's certificate and mutual TLS (reloaded without dropping connections), `rediss://`, PostgreSQL `sslmode`; NATS speaks TLS in every build |
//! | `telemetry` | [`telemetry`] (this crate) | the tracing subscriber: env filter, pretty or JSON, rotated files, non-blocking |
//! | `otel` (off) | `telemetry::otel` (this crate) | sampled server, client and NATS consumer spans exported over OTLP/gRPC, never blocking a call (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...) |
//! | (always) | [`tonic-blueprint-core`](core) | the shared plumbing: RPC identity, method policy, trailers-only rejections, outcome observer, deadlines, frames, the error catalogue |
//!
//! Each layer is its own crate: depend on one alone to compile nothing else.
//!
//! ```no_run
//! use std::time::Duration;
//! use tonic::transport::Server;
//! use tonic_blueprint::panic_recovery::PanicRecoveryLayer;
//! use tonic_blueprint::timeout::TimeoutLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! let layers = ServiceBuilder::new()
//!     // Outermost first: panics inside the deadline are recovered too.
//!     .layer(PanicRecoveryLayer::new())
//!     .layer(TimeoutLayer::new(Duration::from_secs(30)));
//!
//! Server::builder()
//!     .layer(layers)
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The order of the full blueprint stack (outermost first) is RequestLogging, Metrics,
//! PanicRecovery, Timeout, Auth, RateLimit, RequestValidation, ResponseCache; each layer also works
//! alone and in any order.

#[doc(inline)]
pub use tonic_blueprint_core as core;

#[cfg(feature = "timeout")]
#[doc(inline)]
pub use tonic_blueprint_timeout as timeout;

#[cfg(feature = "panic-recovery")]
#[doc(inline)]
pub use tonic_blueprint_panic_recovery as panic_recovery;

#[cfg(feature = "logging")]
#[doc(inline)]
pub use tonic_blueprint_logging as logging;

#[cfg(feature = "metrics")]
#[doc(inline)]
pub use tonic_blueprint_metrics as metrics;

#[cfg(feature = "auth")]
#[doc(inline)]
pub use tonic_blueprint_auth as auth;

#[cfg(feature = "rate-limit")]
#[doc(inline)]
pub use tonic_blueprint_rate_limit as rate_limit;

#[cfg(feature = "validation")]
#[doc(inline)]
pub use tonic_blueprint_validation as validation;

#[cfg(feature = "cache")]
#[doc(inline)]
pub use tonic_blueprint_cache as cache;

#[cfg(feature = "telemetry")]
pub mod telemetry;

#[cfg(feature = "config")]
pub mod config;

#[cfg(feature = "db")]
pub mod db;

#[cfg(feature = "events")]
pub mod events;

#[cfg(feature = "server")]
pub mod server;

#[cfg(any(feature = "nats", feature = "events"))]
mod nats_tls;

#[cfg(feature = "metrics")]
pub mod kit_metrics;

/// The README's Rust examples, compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
