//! The layer: configuration, and the limiters every clone shares.

use crate::key::{KeyConfig, KeySource};
use crate::limiter::{Entry, Limiters};
use crate::quota::Quota;
use crate::service::RateLimit;
use ipnet::IpNet;
use std::sync::{Arc, OnceLock};
use tonic_blueprint_core::{MethodKey, MethodPolicy};
use tower_layer::Layer;

/// In-process keys held per quota entry before new callers share one overflow quota.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Limits calls per caller; see the [crate docs](crate).
#[derive(Clone)]
pub struct RateLimitLayer {
    policy: MethodPolicy<Quota>,
    keys: KeyConfig,
    capacity: usize,
    expose_remaining: bool,
    limit_infrastructure: bool,
    registry: Option<tonic_blueprint_core::MethodRegistry>,
    #[cfg(feature = "redis")]
    redis: Option<Arc<crate::redis::RedisBackend>>,
    built: Arc<OnceLock<Arc<Limiters>>>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policy", &self.policy)
            .field("keys", &self.keys.source)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for RateLimitLayer {
    /// The blueprint's default: 100 calls per minute per client IP, strict.
    fn default() -> Self {
        Self::new(Quota::default())
    }
}

impl RateLimitLayer {
    /// `quota` for every method, keyed by the client IP.
    pub fn new(quota: Quota) -> Self {
        Self::from_policy(MethodPolicy::new(quota))
    }

    /// Quotas per method (for example loaded with serde from `"100/min"` strings).
    pub fn from_policy(policy: MethodPolicy<Quota>) -> Self {
        Self {
            policy,
            keys: KeyConfig {
                source: KeySource::ClientIp,
                fallback_to_ip: true,
                trusted_proxies: Vec::new(),
                secret: crate::key::random_secret(),
            },
            capacity: DEFAULT_CAPACITY,
            expose_remaining: false,
            limit_infrastructure: false,
            registry: None,
            #[cfg(feature = "redis")]
            redis: None,
            built: Arc::default(),
        }
    }

    fn changed(mut self) -> Self {
        self.built = Arc::default();
        self
    }

    /// Sets the quota of a method (`pkg.Service/Method`), of a service (`pkg.Service/*`, whose
    /// methods share it) or the default.
    pub fn quota(mut self, key: MethodKey, quota: Quota) -> Self {
        self.policy.insert(&key, quota);
        self.changed()
    }

    /// Where the key comes from (default: the client IP).
    pub fn key(mut self, source: KeySource) -> Self {
        self.keys.source = source;
        self.changed()
    }

    /// Whether a call whose key source finds nothing counts against its client IP (default)
    /// or against one shared anonymous key.
    pub fn fallback_to_client_ip(mut self, fallback: bool) -> Self {
        self.keys.fallback_to_ip = fallback;
        self.changed()
    }

    /// Proxies whose `x-forwarded-for` / `x-real-ip` are believed. From any other peer those
    /// headers are ignored, so a client cannot pick its own key.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.keys.trusted_proxies = proxies.into_iter().collect();
        self.changed()
    }

    /// The secret keys are hashed with (SipHash-1-3; default: random per process). Replicas
    /// sharing Redis must share it.
    pub fn key_secret(mut self, k0: u64, k1: u64) -> Self {
        self.keys.secret = (k0, k1);
        self.changed()
    }

    /// [`key_secret`](Self::key_secret) from a secret text (such as `RATE_LIMIT_KEY_SECRET`):
    /// the same text gives the same keys on every replica.
    pub fn key_secret_text(mut self, secret: &str) -> Self {
        self.keys.secret = crate::key::secret_from_text(secret);
        self.changed()
    }

    /// Whether the health and reflection services ([`INFRASTRUCTURE_SERVICES`]) are limited
    /// too (default false: a probe every few seconds must never take a healthy replica out of
    /// service).
    ///
    /// [`INFRASTRUCTURE_SERVICES`]: tonic_blueprint_core::INFRASTRUCTURE_SERVICES
    pub fn limit_infrastructure(mut self, limit: bool) -> Self {
        self.limit_infrastructure = limit;
        self.changed()
    }

    /// In-process keys held per quota entry (default [`DEFAULT_CAPACITY`]).
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = keys;
        self.changed()
    }

    /// Whether admitted calls carry `ratelimit: "default";r=<remaining>` (default false).
    ///
    /// Off by default, as in Envoy's rate-limit filter: the value changes on every response,
    /// so HPACK cannot index it, and both ends pay to encode and decode it on every call
    /// (about 1 µs of CPU per call in the preset benchmark). Refusals always carry it.
    pub fn expose_remaining(mut self, expose: bool) -> Self {
        self.expose_remaining = expose;
        self.changed()
    }

    /// The service descriptors: counters label only the methods they name, and fold every
    /// other path into `unknown` (without them, the first 1,000 paths are labelled).
    pub fn with_registry(mut self, registry: tonic_blueprint_core::MethodRegistry) -> Self {
        self.registry = Some(registry);
        self.changed()
    }

    /// Counts in Redis, so every replica shares one quota per caller.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, backend: crate::redis::RedisBackend) -> Self {
        self.redis = Some(Arc::new(backend));
        self.changed()
    }

    pub(crate) fn limiters(&self) -> Arc<Limiters> {
        self.built
            .get_or_init(|| {
                let capacity = self.capacity;
                let policy = self
                    .policy
                    .clone()
                    .map_with_key(|key, quota| Entry::new(key.to_string(), quota, capacity));
                Arc::new(Limiters {
                    policy,
                    keys: self.keys.clone(),
                    expose_remaining: self.expose_remaining,
                    limit_infrastructure: self.limit_infrastructure,
                    counters: crate::limiter::Counters::new(self.registry.clone()),
                    #[cfg(feature = "redis")]
                    redis: self.redis.clone(),
                })
            })
            .clone()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::from_limiters(inner, self.limiters())
    }
}
