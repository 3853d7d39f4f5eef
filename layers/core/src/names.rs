//! The shared counter family every layer feeds.
//!
//! Layers record these through the [`metrics`](https://docs.rs/metrics) facade with the labels
//! `grpc_service` and `grpc_method` (see [`LABEL_SERVICE`], [`LABEL_METHOD`]). No layer
//! depends on the Metrics layer: whichever recorder the application installs (the blueprint's
//! Prometheus exporter, or any other) gives them a home, and without one they cost nothing.

/// Label holding the fully qualified service name (`pkg.Service`).
pub const LABEL_SERVICE: &str = "grpc_service";
/// Label holding the method name.
pub const LABEL_METHOD: &str = "grpc_method";

/// Panics recovered by the PanicRecovery layer (counter).
pub const PANICS_RECOVERED: &str = "grpc_server_panics_recovered_total";
/// Calls ended by the Timeout layer with DEADLINE_EXCEEDED (counter).
pub const DEADLINES_EXCEEDED: &str = "grpc_server_deadline_exceeded_total";
/// Calls refused by the RateLimit layer (counter).
pub const RATE_LIMITED: &str = "grpc_server_rate_limited_total";
/// Calls the RateLimit layer let through (counter).
pub const RATE_LIMIT_ALLOWED: &str = "grpc_server_rate_limit_allowed_total";
/// Rate-limit checks whose backend failed or timed out, handled by the failure policy
/// (counter).
pub const RATE_LIMIT_BACKEND_ERRORS: &str = "grpc_server_rate_limit_backend_errors_total";
/// Requests refused by the RequestValidation layer (counter).
pub const VALIDATION_FAILURES: &str = "grpc_server_validation_failures_total";
/// Response cache hits (counter).
pub const CACHE_HITS: &str = "grpc_server_cache_hits_total";
/// Response cache misses (counter).
pub const CACHE_MISSES: &str = "grpc_server_cache_misses_total";
/// Response cache entries stored (counter).
pub const CACHE_SETS: &str = "grpc_server_cache_sets_total";
/// Response cache entries deleted or invalidated (counter).
pub const CACHE_DELETES: &str = "grpc_server_cache_deletes_total";
/// Response cache backend errors (counter).
pub const CACHE_ERRORS: &str = "grpc_server_cache_errors_total";
/// Calls the Auth layer refused, by `reason`: `missing`, `invalid`, `expired` or
/// `forbidden` (counter).
pub const AUTH_FAILURES: &str = "grpc_server_auth_failures_total";
/// The label of [`AUTH_FAILURES`] saying why.
pub const LABEL_REASON: &str = "reason";
/// Calls refused at once because too many were in flight (load shedding; counter).
pub const SHED: &str = "grpc_server_shed_total";
