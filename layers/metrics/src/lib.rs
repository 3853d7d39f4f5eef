//! Prometheus metrics for tonic services that existing gRPC dashboards understand.
//!
//! [`MetricsLayer`] records, per RPC, the metric family of
//! [go-grpc-prometheus](https://github.com/grpc-ecosystem/go-grpc-prometheus) (kept today by
//! go-grpc-middleware's prometheus provider), so Grafana dashboards and alerts built for Go
//! services work unchanged:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `grpc_server_started_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_handled_total` | counter | the same + `grpc_code` (`OK`, `Canceled`, `InvalidArgument`, ...) |
//! | `grpc_server_msg_received_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_msg_sent_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_handling_seconds` | histogram, buckets .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_in_flight_calls` | gauge | `grpc_type`, `grpc_service`, `grpc_method` |
//!
//! - `grpc_code` is the status the client really sees: from the response headers, from the
//!   trailers of a stream, from a body error, or `Canceled` when the client goes away first
//!   (the core's outcome observer). A stream that fails in its trailers is not counted as OK.
//! - The in-flight gauge goes back down exactly once per call, whatever ends it
//!   (cancellation, deadline, panic, error).
//! - `grpc_type` comes from the service descriptors ([`MethodRegistry`]); without them it is
//!   `unknown`.
//! - Paths the server does not serve fold into one `unknown` service and method when the
//!   descriptors are given; without them, at most [`DEFAULT_MAX_METHODS`] distinct methods are
//!   labelled and the rest fold, so random paths can never blow up the series count.
//!
//! The other blueprint layers feed the shared counters of
//! [`tonic_blueprint_core::names`] (panics recovered, deadlines exceeded, rate-limited calls,
//! validation failures, cache hits, misses, sets, deletes and errors) through the `metrics`
//! facade; [`exporter`] describes them so they come with HELP and TYPE lines.
//!
//! ```no_run
//! use tonic::transport::Server;
//! use tonic_blueprint_core::MethodRegistry;
//! use tonic_blueprint_metrics::{MetricsLayer, exporter};
//!
//! # const FILE_DESCRIPTOR_SET: &[u8] = &[];
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // The Prometheus recorder, installed globally, and /metrics on its own address.
//! let handle = exporter::install()?;
//! let (metrics_addr, _metrics_server) =
//!     exporter::spawn_server("127.0.0.1:9090".parse()?, handle).await?;
//!
//! let registry = MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET)?;
//! Server::builder()
//!     .layer(MetricsLayer::new().with_registry(registry))
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service, with the `metrics` crate's debugging recorder: the
//! call is counted with its final status.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use metrics_util::debugging::DebuggingRecorder;
//! use tonic_blueprint_metrics::MetricsLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let _guard = metrics::set_default_local_recorder(&recorder);
//!
//! let handler = service_fn(|_request: http::Request<tonic::body::Body>| async {
//!     let mut response = http::Response::new(tonic::body::Body::default());
//!     response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("5"));
//!     Ok::<_, std::convert::Infallible>(response)
//! });
//! let service = MetricsLayer::new().layer(handler);
//! let request = http::Request::builder()
//!     .uri("/shop.v1.Cart/Get")
//!     .body(tonic::body::Body::default())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["grpc-status"], "5");
//! drop(response);
//!
//! let handled = snapshotter.snapshot().into_vec().into_iter().any(|(key, ..)| {
//!     key.key().name() == "grpc_server_handled_total"
//!         && key.key().labels().any(|l| l.key() == "grpc_code" && l.value() == "NotFound")
//! });
//! assert!(handled);
//! # });
//! ```

#[cfg(feature = "prometheus")]
pub mod exporter;
mod future;
mod layer;
mod names;
mod record;
mod service;
mod table;

pub use future::ResponseFuture;
pub use layer::{DEFAULT_MAX_METHODS, MetricsLayer};
pub use names::{
    HANDLED, HANDLING_SECONDS, HANDLING_SECONDS_BUCKETS, IN_FLIGHT, LABEL_CODE, LABEL_TYPE,
    MSG_RECEIVED, MSG_SENT, STARTED,
};
pub use service::Metrics;
pub use tonic_blueprint_core::MethodRegistry;
