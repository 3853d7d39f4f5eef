//! What a refused call receives, and what an admitted one may carry.

use http::HeaderValue;
use std::time::Duration;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_blueprint_core::catalogue::{self, Lang, Text};
use tonic_types::ErrorDetails;

/// The message of a refusal (no internal detail: the key is never named).
pub const REFUSED_MESSAGE: &str = tonic_blueprint_core::catalogue::RATE_LIMITED_EN;

/// RESOURCE_EXHAUSTED with RetryInfo and QuotaFailure details, and `retry-after`,
/// `ratelimit-policy` and `ratelimit` in the (trailers-only) initial metadata. The message
/// and QuotaFailure's description are English; the caller's language is in a
/// LocalizedMessage detail.
pub(crate) fn refusal(
    policy: &HeaderValue,
    quota_text: &str,
    retry_after: Duration,
    lang: Lang,
) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(retry_after));
    details.add_quota_failure_violation(
        "caller",
        format!("{}: {quota_text}", Text::QuotaUsedUp.text(Lang::En)),
    );
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut metadata = MetadataMap::new();
    metadata.insert("retry-after", MetadataValue::from(secs));
    if let Ok(policy) = MetadataValue::try_from(policy.as_bytes()) {
        metadata.insert("ratelimit-policy", policy);
    }
    if let Ok(state) = MetadataValue::try_from(format!("\"default\";r=0;t={secs}")) {
        metadata.insert("ratelimit", state);
    }
    let message = |lang: Lang| {
        format!(
            "{}; {} {:.3}s",
            Text::RateLimited.text(lang),
            Text::RetryIn.text(lang),
            retry_after.as_secs_f64()
        )
    };
    catalogue::status_with_details_and_metadata(
        Code::ResourceExhausted,
        message,
        lang,
        details,
        metadata,
    )
}

/// RESOURCE_EXHAUSTED for a method whose quota is zero: no RetryInfo or `retry-after`, since
/// no retry will succeed.
pub(crate) fn closed(policy: &HeaderValue, lang: Lang) -> Status {
    let details =
        ErrorDetails::with_quota_failure_violation("method", Text::MethodClosed.text(Lang::En));
    let mut metadata = MetadataMap::new();
    if let Ok(policy) = MetadataValue::try_from(policy.as_bytes()) {
        metadata.insert("ratelimit-policy", policy);
    }
    catalogue::status_with_details_and_metadata(
        Code::ResourceExhausted,
        |lang: Lang| {
            format!(
                "{}; {}",
                Text::RateLimited.text(lang),
                Text::MethodClosed.text(lang)
            )
        },
        lang,
        details,
        metadata,
    )
}

/// The IETF `ratelimit` field, as a header name.
pub(crate) const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// The `ratelimit` field of an admitted call: how many calls remain.
pub(crate) fn remaining_header(remaining: u32) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"default\";r={remaining}")).ok()
}
