//! Per-caller rate limiting for tonic services that speaks gRPC.
//!
//! [`RateLimitLayer`] counts each call against its caller's quota and refuses the calls past
//! it with **RESOURCE_EXHAUSTED**, as a trailers-only response (HTTP 200, never 429, which
//! gRPC clients read as UNAVAILABLE and retry) carrying:
//!
//! - `google.rpc.RetryInfo` with the exact delay (sub-second) and `google.rpc.QuotaFailure`;
//! - `retry-after` (whole seconds, rounded up) and the IETF RateLimit fields
//!   `ratelimit-policy: "default";q=<limit>;w=<seconds>` and `ratelimit: "default";r=0;t=<s>`
//!   in the initial metadata. Admitted calls carry `ratelimit: "default";r=<remaining>`
//!   when [`RateLimitLayer::expose_remaining`] turns it on.
//!
//! Quotas are per policy entry of a [`MethodPolicy`](tonic_blueprint_core::MethodPolicy):
//! a default (the blueprint's 100 per minute per caller, shared by every method without an
//! override, as in the Go original), per service (shared by its methods), per method; a zero
//! quota refuses the method, whatever a backend says. [`Mode::Strict`] (the default) guarantees that no window of the quota's length
//! admits more than the limit; [`Mode::Gcra`] is governor's algorithm with a configurable
//! burst (smoother, but "100 per minute, burst 100" can admit 199 calls in a minute).
//!
//! Keys ([`KeySource`]): the verified [`Identity`](tonic_blueprint_core::Identity) an auth
//! layer stored (subject and tenant), the client IP (from tonic's connect info;
//! `x-forwarded-for` / `x-real-ip` only from [trusted proxies](RateLimitLayer::trusted_proxies)),
//! a metadata value a trusted gateway sets, one global key, or a function. Keys are hashed
//! (SipHash-1-3 with a secret) and never stored raw; IPv6 clients count per /64. A call
//! without its key counts against its client IP (configurable). A metadata key is only as good
//! as what set it: a client that writes its own `x-user-id` gets a fresh quota per value, so use
//! one only behind a gateway that sets it. The hashing secret is random per process; replicas
//! sharing Redis must share one ([`RateLimitLayer::key_secret_text`]).
//!
//! The health and reflection services are not limited unless
//! [`RateLimitLayer::limit_infrastructure`] says so.
//!
//! The state is shared by every clone of the service and never waits in `poll_ready`.
//! In-process state is bounded: see [the bound](#memory). With the `redis` feature, every
//! replica counts in one Redis ([`redis::RedisBackend`]).
//!
//! Every decision feeds the shared counters `grpc_server_rate_limit_allowed_total`,
//! `grpc_server_rate_limited_total` and `grpc_server_rate_limit_backend_errors_total`.
//!
//! ```no_run
//! use tonic::transport::Server;
//! use tonic_blueprint_rate_limit::{KeySource, Quota, RateLimitLayer};
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! let limits = RateLimitLayer::new(Quota::per_minute(100))
//!     .quota("payments.v1.PaymentService/CreatePayment".parse()?, Quota::per_minute(10))
//!     // The caller an auth layer verified, else the client IP (behind these proxies).
//!     .key(KeySource::Identity)
//!     .trusted_proxies(["10.0.0.0/8".parse()?]);
//! Server::builder()
//!     .layer(limits)
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service: the third call within the minute is refused.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tonic_blueprint_rate_limit::{Quota, RateLimitLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let handler = service_fn(|_request: http::Request<()>| async {
//!     let mut response = http::Response::new(());
//!     response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("0"));
//!     Ok::<_, std::convert::Infallible>(response)
//! });
//! let service = RateLimitLayer::new(Quota::per_minute(2)).layer(handler);
//! let call = || http::Request::builder().uri("/shop.v1.Cart/Add").body(()).unwrap();
//! for _ in 0..2 {
//!     let admitted = service.clone().oneshot(call()).await.unwrap();
//!     assert_eq!(admitted.headers()["grpc-status"], "0");
//! }
//! let refused = service.clone().oneshot(call()).await.unwrap();
//! assert_eq!(refused.status(), http::StatusCode::OK); // never HTTP 429
//! assert_eq!(refused.headers()["grpc-status"], "8"); // RESOURCE_EXHAUSTED
//! assert!(refused.headers().contains_key("retry-after"));
//! # });
//! ```
//!
//! # Memory
//!
//! Each policy entry keeps at most [`RateLimitLayer::capacity`] keys (default
//! [`DEFAULT_CAPACITY`]), plus at most [`SWEEP_EVERY`] keys added between two size checks.
//! Idle keys (fully replenished) are swept at most once a second; while an entry is full, new
//! callers count against their client IP's overflow key (per /64 for IPv6), so a flood of
//! made-up keys from one address spends only that address's quota. With Redis, the in-process
//! map counts every call too (its decision is the `FallbackLocal` answer when Redis fails) and
//! bounds the distinct keys each replica writes to Redis the same way; Redis keys expire with
//! their window.
//!
//! Memory per distinct key: GCRA keeps one timestamp, strict eleven sub-window counters, so
//! a strict entry takes several times a GCRA one; `cargo bench --bench rate_limit` measures
//! the resident memory for one million keys (figures in BENCHMARKS.md). The capacity bounds
//! what one quota entry can hold.

mod body;
mod decision;
mod future;
mod key;
mod layer;
mod limiter;
mod local;
mod quota;
#[cfg(feature = "redis")]
pub mod redis;
mod refusal;
mod service;

pub use body::RateLimitBody;
pub use decision::Decision;
pub use future::ResponseFuture;
pub use key::{KeyRequest, KeySource};
pub use layer::{DEFAULT_CAPACITY, RateLimitLayer};
pub use local::{LocalLimiter, SWEEP_EVERY};
pub use quota::{InvalidQuota, Mode, Quota, STRICT_SUBWINDOWS};
pub use refusal::REFUSED_MESSAGE;
pub use service::RateLimit;
pub use tonic_blueprint_core::MethodKey;
