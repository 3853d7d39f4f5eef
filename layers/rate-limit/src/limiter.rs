//! The limiters of every policy entry, and the check of one call.

use crate::decision::Decision;
use crate::key::{CallKey, KeyConfig};
use crate::local::LocalLimiter;
use crate::quota::Quota;
use http::HeaderValue;
use std::sync::Arc;
use tonic_blueprint_core::{MethodCounters, MethodPolicy, RpcIdentity, names};

/// One policy entry: its quota and in-process state.
#[derive(Debug)]
pub(crate) struct Entry {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) name: String,
    pub(crate) quota: Quota,
    pub(crate) quota_text: String,
    pub(crate) policy_header: HeaderValue,
    pub(crate) local: Arc<LocalLimiter>,
    /// `ratelimit: "default";r=<n>` for every n up to the limit (capped), built once.
    remaining: Vec<HeaderValue>,
}

impl Entry {
    pub(crate) fn new(name: String, quota: Quota, capacity: usize) -> Self {
        let policy_header =
            HeaderValue::from_str(&format!("\"default\";{}", quota.policy_params()))
                .unwrap_or(HeaderValue::from_static("\"default\""));
        let remaining = (0..quota.limit.min(MAX_CACHED_REMAINING))
            .filter_map(crate::refusal::remaining_header)
            .collect();
        Self {
            remaining,
            quota_text: quota.to_string(),
            local: LocalLimiter::new(&quota, capacity),
            name,
            quota,
            policy_header,
        }
    }
}

/// Remaining-quota header values built ahead per entry.
const MAX_CACHED_REMAINING: u32 = 4096;

impl Entry {
    /// The `ratelimit` field for `remaining` calls left.
    /// `None` for [`u32::MAX`], the "not counted" value (a failed-open check).
    pub(crate) fn remaining_header(&self, remaining: u32) -> Option<HeaderValue> {
        if remaining == u32::MAX {
            return None;
        }
        match self.remaining.get(remaining as usize) {
            Some(value) => Some(value.clone()),
            None => crate::refusal::remaining_header(remaining),
        }
    }
}

/// Everything the service needs, shared by every clone.
#[derive(Debug)]
pub(crate) struct Limiters {
    pub(crate) policy: MethodPolicy<Entry>,
    pub(crate) keys: KeyConfig,
    pub(crate) expose_remaining: bool,
    pub(crate) limit_infrastructure: bool,
    pub(crate) counters: Counters,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<crate::redis::RedisBackend>>,
}

impl Limiters {
    pub(crate) fn entry(&self, id: &RpcIdentity) -> &Entry {
        self.policy.get(id)
    }

    pub(crate) fn key<B>(&self, request: &http::Request<B>) -> CallKey {
        self.keys.key(request)
    }
}

/// The shared-family counters of the layer, in [`Count`] order.
const COUNTERS: [&str; 3] = [
    names::RATE_LIMIT_ALLOWED,
    names::RATE_LIMITED,
    names::RATE_LIMIT_BACKEND_ERRORS,
];

/// Which counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Count {
    Allowed = 0,
    Refused = 1,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    BackendError = 2,
}

/// The layer's counters, registered once per method.
#[derive(Debug)]
pub(crate) struct Counters(MethodCounters);

impl Counters {
    pub(crate) fn new(registry: Option<tonic_blueprint_core::MethodRegistry>) -> Self {
        Self(MethodCounters::new(&COUNTERS, registry))
    }

    pub(crate) fn increment(&self, id: &RpcIdentity, which: Count) {
        self.0.increment(id, which as usize);
    }

    pub(crate) fn decision(&self, id: &RpcIdentity, decision: &Decision) {
        let which = match decision {
            Decision::Allowed { .. } => Count::Allowed,
            Decision::Refused { .. } => Count::Refused,
        };
        self.increment(id, which);
    }
}
