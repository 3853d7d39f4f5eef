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
//! Put it outermost: it assigns the request id first, so every later layer's events carry it.

mod body;
mod future;
mod layer;
mod level;
mod record;
mod redact;
mod service;

pub use body::LoggedBody;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_SENSITIVE_HEADERS, RequestLoggingLayer};
pub use level::default_level;
pub use record::LogRecord;
pub use service::RequestLogging;
