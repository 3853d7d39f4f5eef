//! Structured per-RPC logging for tonic services.
//!
//! [`RequestLoggingLayer`] gives every call:
//!
//! - a **request id**: the client's `x-request-id` when it is 1 to 128 printable characters,
//!   otherwise a new UUID v7. It is stored in the request extensions
//!   ([`RequestId`](tonic_blueprint_core::RequestId)) and the request metadata for the handler,
//!   and echoed in the response metadata;
//! - **one tracing span** per RPC, `grpc.request`, with the fields of go-grpc-middleware's
//!   logging interceptor: `grpc.service`, `grpc.method`, `grpc.method_type`, `peer.address`,
//!   `request_id`, `grpc.request.deadline`. The handler's future and its response stream run
//!   inside it, so everything they log carries the request id;
//! - **one finishing event** with `grpc.code` (Go spelling), `grpc.time_ms` and the message
//!   counts `grpc.messages_received` / `grpc.messages_sent`, from the status the client really
//!   sees (headers, trailers, body error, or `Canceled` when the client goes away);
//! - a **level by outcome**: OK at info (configurable), codes the client caused at warn,
//!   codes the server caused (`Unknown`, `Unimplemented`, `Internal`, `Unavailable`,
//!   `DataLoss`) at error;
//! - a place in the **caller's trace** (W3C Trace Context): a valid `traceparent` is continued
//!   (with its `tracestate` and `baggage`), anything else starts a new trace; the span gets
//!   `trace_id` and `span_id`, so every log line of the call carries them; the
//!   [`TraceContext`](tonic_blueprint_core::TraceContext) and the
//!   [`CurrentCall`](tonic_blueprint_core::CurrentCall) go in the request extensions. Trace
//!   headers are never echoed in the response. With a span recorder installed (the
//!   umbrella's `otel` feature) a sampled call is recorded as an OpenTelemetry server span
//!   named `<pkg.Service>/<Method>` with `rpc.system`, `rpc.service`, `rpc.method`,
//!   `rpc.grpc.status_code`, `server.address`, `network.peer.address` and `enduser.id`,
//!   status Error for the codes the server causes (`Unknown`, `DeadlineExceeded`,
//!   `Unimplemented`, `Internal`, `Unavailable`, `DataLoss`);
//! - the request metadata at debug level, with **sensitive values redacted** (`authorization`,
//!   `proxy-authorization`, `cookie`, `x-api-key` and any you add): they are never logged, at
//!   any level. Payloads are never logged.
//!
//! ```no_run
//! use tonic::transport::Server;
//! use tonic_blueprint_logging::RequestLoggingLayer;
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! Server::builder()
//!     .layer(RequestLoggingLayer::new().sensitive_header("x-session-token"))
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service: the call gets a request id (echoed in the response
//! metadata) and its outcome is logged once the response ends.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tonic_blueprint_logging::RequestLoggingLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let handler = service_fn(|_request: http::Request<tonic::body::Body>| async {
//!     let mut response = http::Response::new(tonic::body::Body::default());
//!     response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("0"));
//!     Ok::<_, std::convert::Infallible>(response)
//! });
//! let service = RequestLoggingLayer::new().layer(handler);
//! let request = http::Request::builder()
//!     .uri("/shop.v1.Cart/Add")
//!     .body(tonic::body::Body::default())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["grpc-status"], "0");
//! assert!(response.headers().contains_key("x-request-id"));
//! # });
//! ```
//!
//! Put it outermost: it assigns the request id first, so every later layer's events carry it.
//!
//! The handler runs as the [`CurrentCall`](tonic_blueprint_core::CurrentCall): put
//! [`PropagateLayer`] on the channels it calls other services through, and each outgoing
//! call carries the trace, the request id and the rest of the deadline without code. Add
//! [`CurrentCallLayer`](tonic_blueprint_core::CurrentCallLayer) inside the Timeout and Auth
//! layers so the effective deadline and the caller are known (the preset stack does).

mod body;
mod future;
mod layer;
mod level;
pub mod propagate;
mod record;
mod redact;
mod service;

pub use body::LoggedBody;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_SENSITIVE_HEADERS, RequestLoggingLayer};
pub use level::default_level;
pub use propagate::{Propagate, PropagateLayer};
pub use service::RequestLogging;
