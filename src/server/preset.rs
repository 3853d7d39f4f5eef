//! The preset stack: the eight layers in the blueprint's order, built from the
//! configuration, each replaceable or removable.

use super::in_flight::InFlightLimitLayer;
use super::toggle::toggle;
use crate::auth::{AuthLayer, JwtVerifier};
use crate::cache::{MokaStore, ResponseCacheLayer};
use crate::config::BlueprintConfig;
use crate::logging::RequestLoggingLayer;
use crate::metrics::MetricsLayer;
use crate::panic_recovery::PanicRecoveryLayer;
use crate::rate_limit::{KeySource, Quota, RateLimitLayer};
use crate::timeout::TimeoutLayer;
#[cfg(feature = "validation")]
use crate::validation::RequestValidationLayer;
use std::time::Duration;
use tonic_blueprint_core::{BoxError, ErrorStatus, MethodPolicy, MethodRegistry};
use tower::{Layer, Service, ServiceExt};

use super::boxed::BoxedService;

/// The layers, outermost first: RequestLogging, Metrics, the in-flight limit, PanicRecovery,
/// Timeout, Auth, RateLimit, RequestValidation, ResponseCache. Errors of inner layers are
/// answered as gRPC statuses inside Metrics ([`ErrorStatus`]). Set a field to `None` to remove a layer, or
/// to a layer of your own to replace it.
/// Right inside Auth, [`CurrentCallLayer`](tonic_blueprint_core::CurrentCallLayer) notes the
/// effective deadline and the caller in the call being served, for the
/// [`PropagateLayer`](crate::logging::PropagateLayer) of outgoing calls.
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
    /// Load shedding past `MAX_IN_FLIGHT` calls in flight.
    pub in_flight: Option<InFlightLimitLayer>,
    /// Panics become INTERNAL.
    pub panic_recovery: Option<PanicRecoveryLayer>,
    /// Deadlines.
    pub timeout: Option<TimeoutLayer>,
    /// Verified callers (present when `AUTH_JWT_SECRET` or `AUTH_JWKS_URL` is set, or client
    /// certificates name callers: `TLS_CLIENT_CA_FILE` with `AUTH_MTLS_IDENTITY` not `off`).
    pub auth: Option<AuthLayer>,
    /// Quotas per caller and method.
    pub rate_limit: Option<RateLimitLayer>,
    /// `buf.validate` rules.
    #[cfg(feature = "validation")]
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
    #[cfg(feature = "validation")]
    Validation(crate::validation::BuildError),
    /// The rate-limit metadata key is not a valid metadata name.
    RateLimitKey(String),
    /// The JWKS at `AUTH_JWKS_URL` could not be fetched.
    Jwks(crate::auth::JwksError),
    /// Rate limits shared through Redis need `RATE_LIMIT_KEY_SECRET` (every replica must hash
    /// keys alike).
    RateLimitSecret,
}

impl std::fmt::Display for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Descriptors(e) => write!(f, "the file descriptor set does not decode: {e}"),
            #[cfg(feature = "validation")]
            Self::Validation(e) => e.fmt(f),
            Self::RateLimitKey(key) => {
                write!(f, "RATE_LIMIT_KEY={key:?} is not a valid metadata name")
            }
            Self::Jwks(e) => write!(f, "AUTH_JWKS_URL: {e}"),
            Self::RateLimitSecret => f.write_str(
                "RATE_LIMIT_KEY_SECRET is required with REDIS_URL: every replica must hash rate-limit keys with the same secret",
            ),
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
        let key = match config.rate_limit.key.trim() {
            // No trusted gateway: the verified caller, else the peer address.
            "" => KeySource::Identity,
            name => KeySource::Metadata(
                name.parse()
                    .map_err(|_| StackError::RateLimitKey(name.to_owned()))?,
            ),
        };
        let mut rate_limit = RateLimitLayer::from_policy(per_method(
            &registry,
            Quota::per_minute(config.rate_limit.per_minute),
        ))
        .key(key)
        .fallback_to_client_ip(true)
        .with_registry(registry.clone());
        if !config.rate_limit.key_secret.is_empty() {
            rate_limit = rate_limit.key_secret_text(&config.rate_limit.key_secret);
        }
        #[cfg(feature = "validation")]
        let validation = RequestValidationLayer::from_descriptors(descriptors)
            .map_err(StackError::Validation)?
            .max_message_bytes(
                usize::try_from(config.validation.max_message_bytes).unwrap_or(usize::MAX),
            );
        Ok(Self {
            logging: Some(RequestLoggingLayer::new().with_registry(registry.clone())),
            metrics: Some(MetricsLayer::new().with_registry(registry.clone())),
            in_flight: Some(InFlightLimitLayer::new(
                usize::try_from(config.server.max_in_flight).unwrap_or(usize::MAX),
            )),
            panic_recovery: Some(PanicRecoveryLayer::new()),
            // Unary and client-streaming calls: REQUEST_TIMEOUT_SECONDS. Server and bidi
            // streams (health's Watch and reflection included): STREAM_TIMEOUT_SECONDS, none
            // by default.
            timeout: Some(
                TimeoutLayer::new(config.timeout.request_timeout())
                    .with_registry({
                        let mut kinds = registry.clone();
                        for set in [
                            tonic_health::pb::FILE_DESCRIPTOR_SET,
                            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                        ] {
                            // The crates' own descriptor sets always decode.
                            let _ = kinds.add_file_descriptor_set(set);
                        }
                        kinds
                    })
                    .stream_timeout(config.timeout.stream_timeout()),
            ),
            auth: (config.auth.enabled() || mtls_identity(config).is_some())
                .then(|| auth_layer(config, None)),
            rate_limit: Some(rate_limit),
            #[cfg(feature = "validation")]
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

/// The auth layer of `config`: HS256 tokens signed with `AUTH_JWT_SECRET`, and tokens signed
/// with the keys of `jwks` (fetched from `AUTH_JWKS_URL` by [`super::Server::preset_stack`]);
/// `iss` and `aud` checked when `AUTH_ISSUER` and `AUTH_AUDIENCE` are set. Without `jwks`,
/// a token only the JWKS could verify is refused: the layer fails closed. With client
/// certificates required (`TLS_CLIENT_CA_FILE`), a call without a token is the
/// certificate's subject (`AUTH_MTLS_IDENTITY`).
pub(super) fn auth_layer(config: &BlueprintConfig, jwks: Option<crate::auth::Jwks>) -> AuthLayer {
    let auth = &config.auth;
    let mut verifier = JwtVerifier::new();
    if !auth.jwt_secret.is_empty() {
        verifier = verifier.secret(auth.jwt_secret.as_bytes());
    }
    if let Some(jwks) = jwks {
        verifier = verifier.jwks(jwks);
    }
    if !auth.issuer.trim().is_empty() {
        verifier = verifier.issuer(auth.issuer.trim());
    }
    if !auth.audience.trim().is_empty() {
        verifier = verifier.audience(auth.audience.trim());
    }
    let layer = AuthLayer::new().jwt(verifier);
    #[cfg(feature = "tls")]
    if let Some(from) = mtls_identity(config) {
        return layer
            .peer_identity(move |extensions| super::tls::client_identity(extensions, from));
    }
    layer
}

/// What names a caller from its client certificate, when the server verifies them.
#[cfg(feature = "tls")]
fn mtls_identity(config: &BlueprintConfig) -> Option<super::tls::MtlsIdentity> {
    if !config.tls.client_auth() {
        return None;
    }
    super::tls::MtlsIdentity::parse(&config.auth.mtls_identity)
}

/// Without the `tls` feature the server verifies no client certificate.
#[cfg(not(feature = "tls"))]
fn mtls_identity(_config: &BlueprintConfig) -> Option<std::convert::Infallible> {
    None
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
        #[cfg(feature = "validation")]
        let service = toggle(self.validation.as_ref(), service);
        let service = toggle(self.rate_limit.as_ref(), service);
        // Inside Timeout and Auth: the call being served (made current by logging) learns
        // its effective deadline and caller, for the outgoing calls and events it causes.
        let service = tonic_blueprint_core::current::NoteCurrentCall::new(
            service,
            &tonic_blueprint_core::CurrentCallLayer,
        );
        let service = toggle(self.auth.as_ref(), service);
        let service = toggle(self.timeout.as_ref(), service);
        let service = toggle(self.panic_recovery.as_ref(), service);
        let service = toggle(self.in_flight.as_ref(), service);
        // Inside metrics and logging, so they record the status an inner layer's error
        // becomes (yours too, added with `Server::builder().layer(..)` after the preset).
        let service = ErrorStatus::new(service);
        let service = toggle(self.metrics.as_ref(), service);
        let service = toggle(self.logging.as_ref(), service);
        BoxedService::new(
            ServiceExt::<http::Request<tonic::body::Body>>::map_response(service, |response| {
                response.map(tonic::body::Body::new)
            }),
        )
    }
}
