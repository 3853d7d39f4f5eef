//! The shared gRPC plumbing of [tonic-blueprint]'s layers.
//!
//! Every layer of the blueprint needs the same few pieces, and each would get them subtly wrong
//! on its own. They live here, small and free of heavy dependencies:
//!
//! | module | what it holds |
//! |---|---|
//! | [`builder`] | [`Built`](builder::Built): a layer's settings and the state its services share, rebuilt after a builder call |
//! | [`caller`] | [`Identity`]: the caller an authentication layer proved, read by every layer keyed on the caller |
//! | [`connection`] | [`peer_addr`](connection::peer_addr): the peer of a plain TCP or TLS connection, and (feature `tls`) its verified client certificates (feature `connect-info`) |
//! | [`identity`] | [`RpcIdentity`]: `/pkg.Service/Method` parsed once, stored in the request extensions, and the [`RpcKind`] |
//! | [`policy`] | [`MethodPolicy`]: one value per method (default, `pkg.Service/*`, exact method), serde-loadable |
//! | [`rejection`] | [`reject`]: trailers-only gRPC error responses (always HTTP 200) with capped message and details |
//! | [`refusable`] | [`RefusableBody`]: the response body of a layer that may refuse (inner, or empty) |
//! | [`observer`] | [`CallObserver`]: one observer per call that every watching layer (logging, metrics, yours) shares: the request body wrapped once, the response observed once, the end reported once |
//! | [`outcome`] | [`observe`]: a response-body wrapper that reports the final gRPC status exactly once |
//! | [`error_status`] | [`ErrorStatusLayer`]: errors of inner tower layers (timeout, load shed, your own) answered as gRPC statuses |
//! | [`deadline`] | the `grpc-timeout` parser and the [`Deadline`] request extension |
//! | [`frame`] | the bounded reader of a unary request's length-prefixed message frames |
//! | [`method_table`] | [`MethodTable`]: one value per method (metric handles, counters), built once, unknown and excess paths folded into one |
//! | [`counters`] | [`MethodCounters`]: a layer's shared-family counters, registered once per method, unknown paths folded |
//! | [`names`] | the names of the counters every layer feeds through the `metrics` facade |
//! | [`registry`] | [`MethodRegistry`]: each method's kind and `NO_SIDE_EFFECTS` marking, from the descriptors |
//! | [`request_id`] | [`RequestId`]: the id every log line of a call carries |
//! | [`tonic_body`](mod@tonic_body) | [`tonic_body()`](fn@tonic_body): a request body passed on as tonic's without re-checking one that already is |
//! | [`trace`] | W3C Trace Context: the strict `traceparent`/`tracestate`/`baggage` parsers, the [`TraceContext`] extension, samplers, the process's span recorder |
//! | [`current`] | [`CurrentCall`]: the call being served (trace, request id, deadline, caller), for the calls and events it causes |
//! | [`events`] | structured log events with fixed field names (gRPC request, database query, cache operation) |
//! | [`code`] | gRPC status code names in the Go spelling dashboards expect |
//!
//! # Example
//!
//! A layer that refuses calls to one method, the way every blueprint layer refuses:
//! with `Ok` of a trailers-only response, never an HTTP error.
//!
//! ```
//! use tonic_blueprint_core::{RpcIdentity, reject};
//!
//! let request = http::Request::builder()
//!     .uri("/shop.v1.Cart/Checkout")
//!     .body(())
//!     .unwrap();
//! let identity = RpcIdentity::from_request(&request).unwrap();
//! assert_eq!(identity.service(), "shop.v1.Cart");
//! assert_eq!(identity.method(), "Checkout");
//!
//! let response: http::Response<()> = reject(tonic::Status::unavailable("checkout is closed"));
//! assert_eq!(response.status(), http::StatusCode::OK);
//! assert_eq!(response.headers()["grpc-status"], "14");
//! ```
//!
//! [tonic-blueprint]: https://docs.rs/tonic-blueprint

pub mod accessors;
pub mod builder;
pub mod caller;
pub mod catalogue;
pub mod code;
#[cfg(feature = "connect-info")]
pub mod connection;
pub mod counters;
pub mod current;
pub mod deadline;
pub mod error_status;
pub mod events;
pub mod frame;
pub mod headers;
pub mod identity;
pub mod method_table;
pub mod names;
pub mod observer;
pub mod outcome;
pub mod policy;
pub mod refusable;
pub mod registry;
pub mod rejection;
pub mod request_id;
pub mod tonic_body;
pub mod trace;

pub use caller::{AuthMethod, INFRASTRUCTURE_SERVICES, Identity, is_infrastructure};
pub use code::code_label;
pub use counters::MethodCounters;
pub use current::{CurrentCall, CurrentCallLayer};
pub use deadline::{Deadline, DeadlineSource, encode_grpc_timeout, parse_grpc_timeout};
pub use error_status::{ErrorStatus, ErrorStatusLayer, status_for_error};
pub use frame::{
    CountedBody, FrameError, MessageCounter, RequestEvents, UnaryRequest, read_unary_request,
};
pub use identity::{PathMap, RpcIdentity, RpcKind};
pub use method_table::MethodTable;
pub use observer::{
    CallEnd, CallHook, CallObserver, Fanout, SharedCallHook, Watch, watch, watch_shared,
};
pub use outcome::{ObservedBody, OnOutcome, Outcome, OutcomeSource, observe};
pub use policy::{MethodKey, MethodPolicy, PolicyKey};
pub use refusable::RefusableBody;
pub use registry::{MethodInfo, MethodRegistry};
pub use rejection::{MAX_DETAILS_BYTES, MAX_MESSAGE_BYTES, cap_status, reject, status_trailers};
pub use request_id::RequestId;
pub use tonic_body::tonic_body;
pub use trace::TraceContext;

/// A boxed, thread-safe error, as tower and tonic use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
