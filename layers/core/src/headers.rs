//! Header names the layers read and write on every call, as [`HeaderName`] constants.
//!
//! Looking a header up by `&str` parses and validates the name on every lookup; a constant
//! `HeaderName` is hashed directly. In the preset stack the string lookups added up to about
//! a microsecond per call. A layer's own headers (`x-cache`, `ratelimit`) live in its crate.

use http::HeaderName;

/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-timeout` ([`deadline::GRPC_TIMEOUT`](crate::deadline::GRPC_TIMEOUT)).
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static(crate::deadline::GRPC_TIMEOUT);
/// `grpc-encoding`.
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-accept-language`.
pub const GRPC_ACCEPT_LANGUAGE: HeaderName = HeaderName::from_static("grpc-accept-language");
/// `accept-language`.
pub const ACCEPT_LANGUAGE: HeaderName = http::header::ACCEPT_LANGUAGE;
/// `x-request-id` ([`request_id::HEADER`](crate::request_id::HEADER)).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static(crate::request_id::HEADER);
