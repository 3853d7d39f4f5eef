//! Panic recovery for tonic services.
//!
//! [`PanicRecoveryLayer`] turns a panic in a handler into a gRPC **INTERNAL** status with a
//! fixed, generic message, and keeps the server serving:
//!
//! - a panic in the handler's future (or in the inner service's `call`) answers a
//!   trailers-only INTERNAL response (HTTP 200);
//! - a panic while the response stream is being produced (a server-streaming or bidi
//!   handler's stream) ends the stream with INTERNAL in its trailers, after the messages
//!   already sent (tonic's encoder batches messages that are ready at the same time; those
//!   batched with the panicking poll unwind with it and are not sent);
//! - the panic text never reaches the client: it may hold anything (SQL, secrets, paths);
//! - the panic, its source location and the RPC are logged at error level through `tracing`
//!   (fields `grpc.service`, `grpc.method`, `panic.message`, `panic.location`, `panic.phase`);
//! - every recovered panic increments the shared counter
//!   [`grpc_server_panics_recovered_total`](tonic_blueprint_core::names::PANICS_RECOVERED)
//!   (labels `grpc_service`, `grpc_method`), which the Metrics layer exports;
//! - a hook ([`StatusForPanic`]) builds a different status if you need one.
//!
//! tonic itself has no panic handling: a panic in a handler kills the HTTP/2 stream's task and
//! the client sees the stream reset (tonic reports UNKNOWN or INTERNAL with h2's text).
//! tower-http's `CatchPanicLayer` answers HTTP 500, which gRPC clients read as UNKNOWN, and does
//! not see panics raised while a stream is polled.
//!
//! ```no_run
//! use tonic::transport::Server;
//! use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! Server::builder()
//!     .layer(PanicRecoveryLayer::new())
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service: a handler that panics is answered INTERNAL, and its
//! panic text never reaches the client.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let handler = service_fn(|_request: http::Request<()>| async {
//!     if true {
//!         panic!("secret: the database password is hunter2");
//!     }
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let service = PanicRecoveryLayer::new().layer(handler);
//! let request = http::Request::builder().uri("/shop.v1.Cart/Add").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["grpc-status"], "13"); // INTERNAL
//! assert_eq!(response.headers()["grpc-message"], "internal%20error");
//! # });
//! ```
//!
//! A custom status, here with a support reference a user can quote:
//!
//! ```
//! use tonic_blueprint_panic_recovery::{PanicRecoveryLayer, RecoveredPanic};
//!
//! let layer = PanicRecoveryLayer::with_status(|panic: &RecoveredPanic<'_>| {
//!     tonic::Status::internal(format!("internal error in {}", panic.rpc.method()))
//! });
//! ```
//!
//! # The panic hook
//!
//! The location of a panic is only known to the process's panic hook, so the first layer built
//! installs a hook that records it, then calls the hook that was there before. For panics this
//! layer recovers, the previous hook (by default, the "thread panicked at" line on stderr) is
//! not called: the error-level event replaces it. Call
//! [`PanicRecoveryLayer::forward_to_panic_hook`] to keep calling it (for crash reporters that
//! install their own hook). A hook installed *after* the layer replaces the recorder; panics
//! are then still recovered, logged without a location.

mod body;
mod future;
mod hook;
mod layer;
mod service;
mod status;

pub use body::PanicBody;
pub use future::ResponseFuture;
pub use layer::PanicRecoveryLayer;
pub use service::PanicRecovery;
pub use status::{
    DefaultStatusForPanic, INTERNAL_MESSAGE, PanicPhase, RecoveredPanic, StatusForPanic,
};
