//! gRPC-correct deadlines for tonic services.
//!
//! [`TimeoutLayer`] gives every call a deadline: the earlier of the server's policy for the
//! method and the client's `grpc-timeout`. The server's policy tells calls from streams:
//!
//! - **unary and client-streaming calls** get the request timeout: 30 s unless configured;
//! - **server- and bidi-streaming calls** (watch, subscribe and tail APIs that stay open for
//!   hours) get the stream timeout: none unless configured
//!   ([`TimeoutLayer::stream_timeout`]). The layer knows a method's kind from the service
//!   descriptors ([`TimeoutLayer::with_registry`]); without them every method gets the
//!   request timeout;
//! - either is overridden per service or per method through a
//!   [`MethodPolicy`](tonic_blueprint_core::MethodPolicy), whatever the method's kind;
//! - a client's `grpc-timeout` always applies, streams included.
//!
//! A stream without a deadline relies on HTTP/2 keepalive (`Server::http2_keepalive_interval`
//! and `http2_keepalive_timeout`) to find peers that went away without a word.
//!
//! - Before the response headers, expiry answers **DEADLINE_EXCEEDED** as a trailers-only
//!   response (HTTP 200) and drops the handler's future, cancelling its work.
//! - After the headers, a streaming response still running at the deadline is ended with
//!   **DEADLINE_EXCEEDED** in its trailers; the handler's stream is dropped.
//! - The effective [`Deadline`](tonic_blueprint_core::Deadline) is in the request extensions,
//!   where handlers read what is left (`request.extensions().get::<Deadline>()`).
//! - A malformed `grpc-timeout` (more than 8 digits, an unknown unit, ...) is ignored, as tonic
//!   and grpc-java do: the server policy still bounds the call.
//! - Every expiry increments the shared counter
//!   [`grpc_server_deadline_exceeded_total`](tonic_blueprint_core::names::DEADLINES_EXCEEDED).
//!
//! ```no_run
//! use std::time::Duration;
//! use tonic::transport::Server;
//! use tonic_blueprint_timeout::TimeoutLayer;
//!
//! # async fn run(svc: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! # const FILE_DESCRIPTOR_SET: &[u8] = &[];
//! let registry = tonic_blueprint_core::MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET)?;
//! let timeouts = TimeoutLayer::new(Duration::from_secs(30)) // unary and client streams
//!     // Server and bidi streams: none by default (a client's grpc-timeout still applies).
//!     .with_registry(registry)
//!     .stream_timeout(Some(Duration::from_secs(4 * 3600)))
//!     .with_timeout("reports.v1.Reports/*".parse()?, Duration::from_secs(120))
//!     .with_timeout("payments.v1.PaymentService/GetPayment".parse()?, Duration::from_secs(2))
//!     // No server deadline for this one stream, whatever the stream timeout.
//!     .without_timeout("payments.v1.PaymentService/WatchPayments".parse()?);
//!
//! Server::builder()
//!     .http2_keepalive_interval(Some(Duration::from_secs(30)))
//!     .http2_keepalive_timeout(Some(Duration::from_secs(10)))
//!     .layer(timeouts)
//!     .add_routes(svc)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service: a handler slower than the deadline is answered
//! DEADLINE_EXCEEDED, trailers-only.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tonic_blueprint_timeout::TimeoutLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let slow = service_fn(|_request: http::Request<()>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let service = TimeoutLayer::new(Duration::from_millis(20)).layer(slow);
//! let request = http::Request::builder().uri("/shop.v1.Cart/Add").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::OK); // never HTTP 504
//! assert_eq!(response.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED
//! # });
//! ```
//!
//! # Do not combine with `Server::timeout`
//!
//! tonic's own [`Server::timeout`](tonic::transport::Server::timeout) answers CANCELLED
//! ("Timeout expired") rather than DEADLINE_EXCEEDED, bounds only the time to the response
//! headers (a stream runs on past it) and cannot vary per method. It sits outside every layer,
//! so with a shorter or equal value it fires first and this layer never answers. Set the
//! server-wide default here instead.
//!
//! tonic always applies a client's `grpc-timeout` in that same outer timer, even without
//! `Server::timeout`. This layer therefore fires 1 ms before a deadline that comes from the
//! client, so that the client receives DEADLINE_EXCEEDED rather than tonic's CANCELLED.
//!
//! # Clients
//!
//! tonic's *client* applies a request's timeout locally too and answers CANCELLED
//! ("Timeout expired") when its own timer fires before the server's DEADLINE_EXCEEDED
//! arrives. That is the client's behaviour; grpc-go and grpc-java clients report
//! DEADLINE_EXCEEDED.
//!
//! # Serde
//!
//! [`MethodTimeout`] reads `"30s"`, `"250ms"`, `"2m"`, a number of seconds, or `"none"`, so a
//! whole policy loads from configuration:
//!
//! ```
//! use tonic_blueprint_core::MethodPolicy;
//! use tonic_blueprint_timeout::{MethodTimeout, TimeoutLayer};
//!
//! let policy: MethodPolicy<MethodTimeout> = serde_json::from_str(
//!     r#"{ "default": "30s", "payments.v1.PaymentService/WatchPayments": "none" }"#,
//! ).unwrap();
//! let layer = TimeoutLayer::from_policy(policy);
//! ```

mod body;
mod future;
mod layer;
mod service;
mod setting;

pub use body::TimeoutBody;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use service::Timeout;
pub use setting::{DEFAULT_TIMEOUT, MethodTimeout};
pub use tonic_blueprint_core::MethodKey;

/// The message clients receive with DEADLINE_EXCEEDED: always English; a caller that asks
/// for another language gets it in a `google.rpc.LocalizedMessage` detail.
pub const DEADLINE_EXCEEDED_MESSAGE: &str = tonic_blueprint_core::catalogue::DEADLINE_EXCEEDED_EN;

/// `grpc_server_deadline_exceeded_total` by method: registered once per method (not per
/// expiry), the first [`MAX_METHODS`](tonic_blueprint_core::counters::MAX_METHODS) methods
/// labelled, every other path folded into `unknown`.
///
/// One table for the process, registered with the global recorder on first use: the response
/// future and body that count an expiry do not hold the layer's state.
static DEADLINES_EXCEEDED: std::sync::LazyLock<tonic_blueprint_core::MethodCounters> =
    std::sync::LazyLock::new(|| {
        tonic_blueprint_core::MethodCounters::new(
            &[tonic_blueprint_core::names::DEADLINES_EXCEEDED],
            None,
        )
    });

fn deadline_exceeded(
    id: &tonic_blueprint_core::RpcIdentity,
    lang: tonic_blueprint_core::catalogue::Lang,
) -> tonic::Status {
    DEADLINES_EXCEEDED.increment(id, 0);
    tonic_blueprint_core::catalogue::status(
        tonic::Code::DeadlineExceeded,
        tonic_blueprint_core::catalogue::Text::DeadlineExceeded,
        lang,
    )
}
