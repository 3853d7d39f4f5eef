//! The response body: the handler's, or empty for a refusal.

/// Response body of [`RateLimit`](crate::RateLimit): the inner body, or empty for a
/// trailers-only refusal.
pub type RateLimitBody<B> = tonic_blueprint_core::RefusableBody<B>;
