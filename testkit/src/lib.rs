//! The test harness of tonic-blueprint.
//!
//! Every layer's integration tests use the same three parts:
//!
//! - [`TestService`]: a gRPC service with unary, server-streaming, client-streaming and bidi
//!   methods whose requests ask it to echo, sleep, panic (before the first response or in the
//!   middle of a stream) or fail with a given code ([`pb::TestRequest`]);
//! - [`TestServer`]: a real tonic server on `127.0.0.1:0` with any layer stack
//!   (`Server::builder().layer(..)`), serving that service over a real socket;
//! - clients: tonic's generated [`pb::test_service_client::TestServiceClient`], and
//!   [`RawClient`], a plain HTTP/2 client that shows what is on the wire (HTTP status, headers,
//!   trailers-only or not, trailers) and can send headers tonic's client would rewrite.
//!
//! ```no_run
//! # async fn demo() {
//! use tonic::transport::Server;
//! use tonic_blueprint_testkit::{TestServer, pb::TestRequest, UNARY};
//!
//! let server = TestServer::start(Server::builder()).await;
//! let response = server
//!     .raw()
//!     .call(UNARY, &[TestRequest::echo("hi")], &[("grpc-timeout", "50m")])
//!     .await
//!     .unwrap();
//! assert_eq!(response.grpc_status(), Some(tonic::Code::Ok));
//! # }
//! ```

mod capture;
pub mod load;
mod own_server;
pub mod prom;
mod raw;
mod request;
mod server;
mod service;
mod validated;

pub use capture::{Captured, counters_by_method, grpc_http_request, unary_http_request};
pub use own_server::{OwnNats, OwnRedis, free_port, unique_prefix};
pub use raw::{RawClient, RawResponse};
pub use server::TestServer;
pub use service::{HandlerCounts, PANIC_TEXT, TestService};
pub use validated::{CHAT, CREATE, UPLOAD, ValidatedTestService};

/// Generated code for `proto/blueprint/test/v1/test.proto` and `validated.proto`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("blueprint.test.v1");
}

/// The encoded `FileDescriptorSet` of the test proto (for reflection and
/// [`MethodRegistry`](tonic_blueprint_core::MethodRegistry)).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/test_descriptor.bin"));

/// The encoded `FileDescriptorSet` of the validated test service with its imports, rule
/// annotations kept (for the validation layer).
pub const VALIDATED_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/validated_descriptor.bin"));

/// Path of the unary method.
pub const UNARY: &str = "/blueprint.test.v1.TestService/Unary";
/// Path of the server-streaming method.
pub const SERVER_STREAM: &str = "/blueprint.test.v1.TestService/ServerStream";
/// Path of the client-streaming method.
pub const CLIENT_STREAM: &str = "/blueprint.test.v1.TestService/ClientStream";
/// Path of the bidi-streaming method.
pub const BIDI: &str = "/blueprint.test.v1.TestService/Bidi";
/// The four method paths, one per RPC kind.
pub const ALL_METHODS: [&str; 4] = [UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI];

/// A boxed error, for test results.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
