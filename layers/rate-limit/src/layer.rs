//! The layer: configuration, and the limiters every clone shares.

use crate::key::{KeyConfig, KeySource};
use crate::limiter::{Entry, Limiters};
use crate::quota::Quota;
use crate::service::RateLimit;
use ipnet::IpNet;
use std::sync::Arc;
use tonic_blueprint_core::builder::Built;
use tonic_blueprint_core::{MethodKey, MethodPolicy};
use tower_layer::Layer;

/// In-process keys held per quota entry before new callers share one overflow quota.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Limits calls per caller; see the [crate docs](crate).
///
/// The limiters are built when the layer is first applied and shared by every clone of the
/// service and of the layer; a builder call afterwards (on the layer or on a clone) gets
/// limiters of its own, for the services made afterwards.
#[derive(Clone)]
pub struct RateLimitLayer {
    /// The settings, and the limiters built from them
    /// ([`Built`]: the builder state of every layer).
    state: Built<Config, Limiters>,
}

/// The layer's settings.
#[derive(Clone)]
struct Config {
    policy: MethodPolicy<Quota>,
    keys: KeyConfig,
    capacity: usize,
    expose_remaining: bool,
    limit_infrastructure: bool,
    registry: Option<tonic_blueprint_core::MethodRegistry>,
    #[cfg(feature = "redis")]
    redis: Option<Arc<crate::redis::RedisBackend>>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.state.config();
        f.debug_struct("RateLimitLayer")
            .field("policy", &config.policy)
            .field("keys", &config.keys.source)
            .field("capacity", &config.capacity)
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
            state: Built::new(Config {
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
            }),
        }
    }

    /// The settings, to change; the one place that drops the built limiters.
    fn config_mut(&mut self) -> &mut Config {
        self.state.config_mut()
    }

    /// Sets the quota of a method (`pkg.Service/Method`), of a service (`pkg.Service/*`, whose
    /// methods share it) or the default.
    pub fn quota(mut self, key: MethodKey, quota: Quota) -> Self {
        self.config_mut().policy.insert(&key, quota);
        self
    }

    /// Where the key comes from (default: the client IP).
    pub fn key(mut self, source: KeySource) -> Self {
        self.config_mut().keys.source = source;
        self
    }

    /// Whether a call whose key source finds nothing counts against its client IP (default)
    /// or against one shared anonymous key.
    pub fn fallback_to_client_ip(mut self, fallback: bool) -> Self {
        self.config_mut().keys.fallback_to_ip = fallback;
        self
    }

    /// Proxies whose `x-forwarded-for` / `x-real-ip` are believed. From any other peer those
    /// headers are ignored, so a client cannot pick its own key.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.config_mut().keys.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// The secret keys are hashed with (SipHash-1-3; default: random per process). Replicas
    /// sharing Redis must share it.
    pub fn key_secret(mut self, k0: u64, k1: u64) -> Self {
        self.config_mut().keys.secret = (k0, k1);
        self
    }

    /// [`key_secret`](Self::key_secret) from a secret text (such as `RATE_LIMIT_KEY_SECRET`):
    /// the same text gives the same keys on every replica.
    pub fn key_secret_text(mut self, secret: &str) -> Self {
        self.config_mut().keys.secret = crate::key::secret_from_text(secret);
        self
    }

    /// Whether the health and reflection services ([`INFRASTRUCTURE_SERVICES`]) are limited
    /// too (default false: a probe every few seconds must never take a healthy replica out of
    /// service).
    ///
    /// [`INFRASTRUCTURE_SERVICES`]: tonic_blueprint_core::INFRASTRUCTURE_SERVICES
    pub fn limit_infrastructure(mut self, limit: bool) -> Self {
        self.config_mut().limit_infrastructure = limit;
        self
    }

    /// In-process keys held per quota entry (default [`DEFAULT_CAPACITY`]).
    pub fn capacity(mut self, keys: usize) -> Self {
        self.config_mut().capacity = keys;
        self
    }

    /// Whether admitted calls carry `ratelimit: "default";r=<remaining>` (default false).
    ///
    /// Off by default, as in Envoy's rate-limit filter: the value changes on every response,
    /// so HPACK cannot index it, and both ends pay to encode and decode it on every call
    /// (about 1 µs of CPU per call in the preset benchmark). Refusals always carry it.
    pub fn expose_remaining(mut self, expose: bool) -> Self {
        self.config_mut().expose_remaining = expose;
        self
    }

    /// The service descriptors: counters label only the methods they name, and fold every
    /// other path into `unknown` (without them, the first 1,000 paths are labelled).
    pub fn with_registry(mut self, registry: tonic_blueprint_core::MethodRegistry) -> Self {
        self.config_mut().registry = Some(registry);
        self
    }

    /// Counts in Redis, so every replica shares one quota per caller.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, backend: crate::redis::RedisBackend) -> Self {
        self.config_mut().redis = Some(Arc::new(backend));
        self
    }

    pub(crate) fn limiters(&self) -> Arc<Limiters> {
        self.state
            .get_or_build(|config| {
                let capacity = config.capacity;
                let policy = config
                    .policy
                    .clone()
                    .map_with_key(|key, quota| Entry::new(key.to_string(), quota, capacity));
                Limiters {
                    policy,
                    keys: config.keys.clone(),
                    expose_remaining: config.expose_remaining,
                    limit_infrastructure: config.limit_infrastructure,
                    counters: crate::limiter::Counters::new(config.registry.clone()),
                    #[cfg(feature = "redis")]
                    redis: config.redis.clone(),
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    type Handler = tower::util::ServiceFn<
        fn(http::Request<()>) -> std::future::Ready<Result<http::Response<()>, Infallible>>,
    >;

    fn handler() -> Handler {
        fn ok(
            _request: http::Request<()>,
        ) -> std::future::Ready<Result<http::Response<()>, Infallible>> {
            let mut response = http::Response::new(());
            response
                .headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static("0"));
            std::future::ready(Ok(response))
        }
        service_fn(ok as fn(_) -> _)
    }

    /// One call's `grpc-status`, and whether it carried the remaining quota.
    async fn call(service: &RateLimit<Handler>) -> (String, bool) {
        let request = http::Request::builder()
            .uri("/shop.v1.Cart/Add")
            .body(())
            .expect("request");
        let response = service.clone().oneshot(request).await.expect("response");
        let status = response.headers()["grpc-status"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let remaining = status == "0" && response.headers().contains_key("ratelimit");
        (status, remaining)
    }

    const ADMITTED: (&str, bool) = ("0", false);
    const REFUSED: &str = "8";

    #[tokio::test]
    async fn clones_made_after_building_share_the_limiters() {
        let layer = RateLimitLayer::new(Quota::per_minute(1));
        let first = layer.layer(handler());
        let clone = layer.clone();
        assert!(Arc::ptr_eq(&layer.limiters(), &clone.limiters()));

        let (status, _) = call(&first).await;
        assert_eq!(status, ADMITTED.0);
        // The clone's services count against the same quota.
        let (status, _) = call(&clone.layer(handler())).await;
        assert_eq!(status, REFUSED);
    }

    #[tokio::test]
    async fn a_builder_call_after_layer_takes_effect_for_services_made_afterwards() {
        let layer = RateLimitLayer::new(Quota::per_minute(1));
        let before = layer.layer(handler());
        let (status, remaining) = call(&before).await;
        assert_eq!((status.as_str(), remaining), ADMITTED);

        let layer = layer.expose_remaining(true);
        let after = layer.layer(handler());
        // New limiters: a fresh quota, and the remaining count exposed.
        assert_eq!(call(&after).await, ("0".to_owned(), true));
        assert_eq!(call(&after).await.0, REFUSED);
        // The service made before keeps the limiters it was made with.
        assert_eq!(call(&before).await.0, REFUSED);
    }

    #[tokio::test]
    async fn a_builder_call_on_a_clone_of_a_built_layer_gets_its_own_limiters() {
        let shared = RateLimitLayer::new(Quota::per_minute(1));
        let service = shared.layer(handler());
        assert_eq!(call(&service).await.0, ADMITTED.0);

        let own = shared.clone().capacity(10);
        assert!(!Arc::ptr_eq(&shared.limiters(), &own.limiters()));
        assert_eq!(call(&own.layer(handler())).await.0, ADMITTED.0);
        // The layer it was cloned from is untouched.
        assert_eq!(call(&shared.layer(handler())).await.0, REFUSED);
        assert_eq!(format!("{:?}", own.clone()), format!("{own:?}"));
        assert!(format!("{own:?}").contains("capacity: 10"));
    }
}
