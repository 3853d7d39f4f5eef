//! Header names the layers read and write on every call, as [`HeaderName`] constants.
//!
//! Looking a header up by `&str` parses and validates the name on every lookup; a constant
//! `HeaderName` is hashed directly. In the preset stack the string lookups added up to about
//! a microsecond per call.

use http::HeaderName;

/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-timeout`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `grpc-encoding`.
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-accept-language`.
pub const GRPC_ACCEPT_LANGUAGE: HeaderName = HeaderName::from_static("grpc-accept-language");
/// `accept-language`.
pub const ACCEPT_LANGUAGE: HeaderName = http::header::ACCEPT_LANGUAGE;
/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `ratelimit`, the IETF RateLimit field.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `x-cache`.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `x-cache-tags`.
pub const X_CACHE_TAGS: HeaderName = HeaderName::from_static("x-cache-tags");
