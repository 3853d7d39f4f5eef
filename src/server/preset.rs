//! The preset stack: the seven layers in the blueprint's order, built from the
//! configuration, each replaceable or removable.

use super::toggle::toggle;
use crate::cache::{MokaStore, ResponseCacheLayer};
use crate::config::BlueprintConfig;
use crate::logging::RequestLoggingLayer;
use crate::metrics::MetricsLayer;
use crate::panic_recovery::PanicRecoveryLayer;
use crate::rate_limit::{KeySource, Quota, RateLimitLayer};
use crate::timeout::TimeoutLayer;
use crate::validation::RequestValidationLayer;
use std::time::Duration;
use tonic_blueprint_core::{BoxError, MethodPolicy, MethodRegistry};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

/// The type every layer of the preset stack is boxed into.
pub type BoxedService = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    BoxError,
>;

/// The seven layers, outermost first: RequestLogging, Metrics, PanicRecovery, Timeout,
/// RateLimit, RequestValidation, ResponseCache. Set a field to `None` to remove a layer, or
/// to a layer of your own to replace it.
///
/// The layers nest as plain types (a removed layer costs one branch); only the whole stack is
/// boxed, into [`BoxedService`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PresetStack {
    /// Request ids, one span and one event per call.
    pub logging: Option<RequestLoggingLayer>,
    /// The go-grpc-prometheus metric family.
    pub metrics: Option<MetricsLayer>,
    /// Panics become INTERNAL.
    pub panic_recovery: Option<PanicRecoveryLayer>,
    /// Deadlines.
    pub timeout: Option<TimeoutLayer>,
    /// Quotas per caller and method.
    pub rate_limit: Option<RateLimitLayer>,
    /// `buf.validate` rules.
    pub validation: Option<RequestValidationLayer>,
    /// Cached responses of `NO_SIDE_EFFECTS` methods.
    pub cache: Option<ResponseCacheLayer>,
}

/// Why the stack could not be built.
#[derive(Debug)]
pub enum StackError {
    /// The descriptor set does not decode.
    Descriptors(String),
    /// The validation rules cannot be used.
    Validation(crate::validation::BuildError),
    /// The rate-limit metadata key is not a valid metadata name.
    RateLimitKey(String),
}

impl std::fmt::Display for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Descriptors(e) => write!(f, "the file descriptor set does not decode: {e}"),
            Self::Validation(e) => e.fmt(f),
            Self::RateLimitKey(key) => {
                write!(f, "RATE_LIMIT_KEY={key:?} is not a valid metadata name")
            }
        }
    }
}

impl std::error::Error for StackError {}

impl PresetStack {
    /// No layer at all (add the ones you want).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every layer, configured from `config`, with `descriptors` (the encoded file descriptor
    /// set of the served services, extension options kept) for method kinds, validation rules
    /// and the `NO_SIDE_EFFECTS` methods the cache serves. The cache is in process; put a
    /// Redis or two-tier store in `cache` yourself (see [`super::Server`]).
    pub fn from_config(config: &BlueprintConfig, descriptors: &[u8]) -> Result<Self, StackError> {
        let registry = MethodRegistry::from_file_descriptor_set(descriptors)
            .map_err(|e| StackError::Descriptors(e.to_string()))?;
        let key: http::HeaderName = config
            .rate_limit
            .key
            .parse()
            .map_err(|_| StackError::RateLimitKey(config.rate_limit.key.clone()))?;
        let quota = Quota::per_minute(config.rate_limit.per_minute);
        let validation = RequestValidationLayer::from_descriptors(descriptors)
            .map_err(StackError::Validation)?
            .max_message_bytes(
                usize::try_from(config.validation.max_message_bytes).unwrap_or(usize::MAX),
            );
        Ok(Self {
            logging: Some(RequestLoggingLayer::new().with_registry(registry.clone())),
            metrics: Some(MetricsLayer::new().with_registry(registry.clone())),
            panic_recovery: Some(PanicRecoveryLayer::new()),
            timeout: Some(TimeoutLayer::new(Duration::from_secs(
                config.timeout.request_seconds,
            ))),
            rate_limit: Some(
                RateLimitLayer::from_policy(per_method(&registry, quota))
                    .key(KeySource::Metadata(key))
                    .fallback_to_client_ip(true)
                    .with_registry(registry.clone()),
            ),
            validation: Some(validation),
            cache: Some(
                ResponseCacheLayer::new()
                    .with_registry(registry)
                    .default_ttl(Duration::from_secs(config.cache.ttl_seconds))
                    .store(MokaStore::new(config.cache.max_bytes)),
            ),
        })
    }
}

/// `quota` for each known method on its own (`RATE_LIMIT_PER_MINUTE` is per caller and
/// method), and as the shared default of unknown paths.
fn per_method(registry: &MethodRegistry, quota: Quota) -> MethodPolicy<Quota> {
    let mut policy = MethodPolicy::new(quota);
    for (path, _) in registry.iter() {
        // Paths from a descriptor set are always valid policy keys.
        let _ = policy.set(path, quota);
    }
    policy
}

impl<S> Layer<S> for PresetStack
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Service = BoxedService;

    fn layer(&self, inner: S) -> BoxedService {
        // Innermost first; only the whole stack is boxed.
        let service = toggle(self.cache.as_ref(), inner);
        let service = toggle(self.validation.as_ref(), service);
        let service = toggle(self.rate_limit.as_ref(), service);
        let service = toggle(self.timeout.as_ref(), service);
        let service = toggle(self.panic_recovery.as_ref(), service);
        let service = toggle(self.metrics.as_ref(), service);
        let service = toggle(self.logging.as_ref(), service);
        BoxCloneSyncService::new(
            ServiceExt::<http::Request<tonic::body::Body>>::map_response(service, |response| {
                response.map(tonic::body::Body::new)
            }),
        )
    }
}
