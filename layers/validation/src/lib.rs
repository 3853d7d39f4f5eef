//! Request validation for tonic services: the rules live in the `.proto`.
//!
//! [`RequestValidationLayer`] reads the `buf.validate` (protovalidate) annotations from your
//! service's descriptors and checks every request before the handler sees it:
//!
//! - the rules are evaluated by [prost-protovalidate](https://docs.rs/prost-protovalidate),
//!   which implements the cross-language protovalidate rules (CEL included) and passes the
//!   upstream conformance suite; rules it cannot compile stop the layer from being built;
//! - unary and server-streaming requests are read through the core's bounded frame reader
//!   and checked whole; client-streaming and bidi requests are checked message by message as
//!   they arrive, and the first invalid one ends the call. Valid messages reach the handler
//!   byte for byte unchanged;
//! - a refusal is INVALID_ARGUMENT, trailers-only, with a `google.rpc.BadRequest` listing
//!   every violated field at once (dotted path, description, rule id as the reason), cut to
//!   fit the header budget. Oversized messages are RESOURCE_EXHAUSTED; truncated frames and
//!   undecodable bytes INVALID_ARGUMENT; an unsupported `grpc-encoding` UNIMPLEMENTED (gzip
//!   and deflate are inflated, within the size cap);
//! - messages come from the core's error catalogue: `grpc-message` and each description in
//!   English, and for a caller whose `grpc-accept-language` or `accept-language` asks for
//!   another language, the status's LocalizedMessage and each field's `localized_message` in
//!   it;
//! - rules annotations cannot express are Rust functions registered per method
//!   ([`Validate`], [`typed`]); metadata rules per method ([`MetadataRule`]);
//! - request types whose rules are all standard (no CEL) can be checked by their compiled
//!   rules instead, generated at build time by
//!   [prost-protovalidate-build](https://docs.rs/prost-protovalidate-build)
//!   ([`RequestValidationLayer::compiled`]): less than half the layer's cost per valid
//!   request, with the same answers. [`RequestValidationLayer::require_compiled`] makes a
//!   request type with rules but none compiled a start-up error rather than a silent
//!   fallback to the engine.
//!
//! ```no_run
//! use tonic_blueprint_validation::{MetadataRule, RequestValidationLayer, Violations, typed};
//! # #[derive(Clone, PartialEq, prost::Message)] struct CreatePaymentRequest { #[prost(string, tag = "3")] currency: String }
//! # const FILE_DESCRIPTOR_SET: &[u8] = &[];
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! // The set must keep extension options: protox's `Compiler::encode_file_descriptor_set`.
//! let validation = RequestValidationLayer::from_descriptors(FILE_DESCRIPTOR_SET)?
//!     .metadata("payments.v1.PaymentService/*", [MetadataRule::required("x-user-id").max_len(64)])?
//!     .with_rule(
//!         "payments.v1.PaymentService/CreatePayment",
//!         typed(|request: &CreatePaymentRequest, violations: &mut Violations| {
//!             if request.currency == "XXX" {
//!                 violations.add("currency", "currency.supported", "currency is not supported");
//!             }
//!         }),
//!     )?;
//! # let _ = validation; Ok(()) }
//! ```
//!
//! Called directly, as any tower service: an invalid request never reaches the handler.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tonic_blueprint_testkit::{CREATE, VALIDATED_DESCRIPTOR_SET, grpc_http_request};
//! use tonic_blueprint_testkit::pb::CreateRequest;
//! use tonic_blueprint_validation::RequestValidationLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let handler = service_fn(|_request: http::Request<tonic::body::Body>| async {
//!     unreachable!("an invalid request reached the handler");
//!     #[allow(unreachable_code)]
//!     Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::default()))
//! });
//! let service = RequestValidationLayer::from_descriptors(VALIDATED_DESCRIPTOR_SET)
//!     .unwrap()
//!     .layer(handler);
//! // Every required field missing: one INVALID_ARGUMENT listing each violation.
//! let request = grpc_http_request(CREATE, &CreateRequest::default());
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::OK); // never HTTP 400
//! assert_eq!(response.headers()["grpc-status"], "3"); // INVALID_ARGUMENT
//! assert!(response.headers().contains_key("grpc-status-details-bin")); // BadRequest
//! # });
//! ```
//!
//! Build the descriptor set with protox, with `proto/third_party` (which holds
//! `buf/validate/validate.proto`) on the include path, and keep its extension options:
//! a set that went through `prost_types` has lost them, and the layer refuses to start on
//! it rather than skip every rule.

mod body;
mod compiled;
mod decode;
mod handover;
mod layer;
mod metadata;
mod rules;
mod service;
mod violation;

pub use body::ValidationBody;
pub use layer::{BuildError, DEFAULT_MAX_MESSAGE_BYTES, RequestValidationLayer};
pub use metadata::MetadataRule;
pub use prost_reflect::DynamicMessage;
pub use rules::{Validate, typed};
pub use service::{RequestValidation, ResponseFuture};
pub use violation::{Violation, Violations};
