//! The layer: configuration, and the policy calls look up, resolved from it.

use crate::service::Timeout;
use crate::setting::MethodTimeout;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tonic_blueprint_core::builder::Built;
use tonic_blueprint_core::{
    MethodKey, MethodPolicy, MethodRegistry, PolicyKey, RpcIdentity, RpcKind,
};
use tower_layer::Layer;

/// Gives every call a deadline; see the [crate docs](crate).
///
/// The policy calls look up is resolved from the settings when the layer is first applied
/// and shared by every clone of the service and of the layer; a builder call afterwards takes
/// effect for the services made afterwards.
#[derive(Clone)]
pub struct TimeoutLayer {
    /// The settings, and what calls look up: [`Config::resolve`]
    /// ([`Built`]: the builder state of every layer).
    state: Built<Config, MethodPolicy<MethodTimeout>>,
}

impl std::fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("settings", self.state.config())
            .field("resolved", self.resolved())
            .finish()
    }
}

/// The layer's settings.
#[derive(Clone, Debug)]
struct Config {
    /// As configured: the default is the request timeout, the entries are explicit.
    policy: MethodPolicy<MethodTimeout>,
    /// The default of server- and bidi-streaming methods without an entry of their own.
    stream: MethodTimeout,
    /// The methods' kinds, if known.
    registry: Option<MethodRegistry>,
}

impl Config {
    /// The policy calls use: the configured one, plus the stream timeout for every server-
    /// or bidi-streaming method of the registry that has no entry of its own (neither for
    /// the method nor for its service).
    fn resolve(&self) -> MethodPolicy<MethodTimeout> {
        let mut resolved = self.policy.clone();
        let Some(registry) = &self.registry else {
            return resolved;
        };
        let mut services = HashSet::new();
        let mut methods = HashSet::new();
        let _ = self.policy.clone().map_with_key(|key, _| match key {
            PolicyKey::Default => {}
            PolicyKey::Service(service) => {
                services.insert(service.to_owned());
            }
            PolicyKey::Method(service, method) => {
                methods.insert(format!("{service}/{method}"));
            }
        });
        for (path, info) in registry.iter() {
            if !matches!(info.kind, RpcKind::ServerStreaming | RpcKind::BidiStreaming) {
                continue;
            }
            let Some(id) = RpcIdentity::parse(path) else {
                continue;
            };
            if services.contains(id.service()) || methods.contains(&id.to_string()) {
                continue;
            }
            // A path from a descriptor set is always a valid policy key.
            let _ = resolved.set(path, self.stream);
        }
        resolved
    }
}

impl Default for TimeoutLayer {
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) (30 s) for every method.
    fn default() -> Self {
        Self::from_policy(MethodPolicy::default())
    }
}

impl TimeoutLayer {
    /// `timeout` for every method (until [`with_registry`](Self::with_registry) tells the
    /// streams apart).
    pub fn new(timeout: Duration) -> Self {
        Self::from_policy(MethodPolicy::new(MethodTimeout::after(timeout)))
    }

    /// Timeouts from a policy (for example one loaded with serde). Its default is the
    /// request timeout; its service and method entries apply to methods of every kind.
    pub fn from_policy(policy: MethodPolicy<MethodTimeout>) -> Self {
        Self {
            state: Built::new(Config {
                policy,
                stream: MethodTimeout::NONE,
                registry: None,
            }),
        }
    }

    /// The settings, to change; the one place that drops the resolved policy.
    fn config_mut(&mut self) -> &mut Config {
        self.state.config_mut()
    }

    /// The policy calls look up, resolved on first use.
    fn resolved(&self) -> &Arc<MethodPolicy<MethodTimeout>> {
        self.state.get_or_build(Config::resolve)
    }

    /// The methods' kinds, from the service descriptors: server- and bidi-streaming methods
    /// then take the [stream timeout](Self::stream_timeout) (none unless set) instead of the
    /// request timeout, unless their method or service has a timeout of its own. Unary and
    /// client-streaming methods, and paths the registry does not know, keep the request
    /// timeout.
    ///
    /// Without a registry the layer cannot tell a stream from a unary call: every method
    /// without an entry of its own gets the request timeout.
    pub fn with_registry(mut self, registry: MethodRegistry) -> Self {
        self.config_mut().registry = Some(registry);
        self
    }

    /// The server's deadline for server- and bidi-streaming methods without a timeout of
    /// their own (`None`, the default: no server deadline, for long-lived watch, subscribe
    /// and tail streams). A client's `grpc-timeout` still applies. Takes effect for the
    /// methods of the [registry](Self::with_registry).
    pub fn stream_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config_mut().stream = MethodTimeout::from(timeout);
        self
    }

    /// Sets the timeout of a method (`pkg.Service/Method`) or of every method of a service
    /// (`pkg.Service/*`), whatever its kind, streams included.
    pub fn with_timeout(mut self, key: MethodKey, timeout: Duration) -> Self {
        self.config_mut()
            .policy
            .insert(&key, MethodTimeout::after(timeout));
        self
    }

    /// Removes the server-side timeout of a method or service, for long-lived streams. A
    /// client's `grpc-timeout` still applies.
    pub fn without_timeout(mut self, key: MethodKey) -> Self {
        self.config_mut().policy.insert(&key, MethodTimeout::NONE);
        self
    }

    /// The policy as configured: its default is the request timeout; the stream timeout
    /// and the registry are not in it (see [`timeout_for`](Self::timeout_for)).
    pub fn policy(&self) -> &MethodPolicy<MethodTimeout> {
        &self.state.config().policy
    }

    /// The server's timeout for a method, as calls get it (`None`: no server deadline).
    pub fn timeout_for(&self, id: &RpcIdentity) -> Option<Duration> {
        self.resolved().get(id).duration()
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::from_shared(inner, self.resolved().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str) -> MethodKey {
        key.parse().expect("a valid key")
    }

    const UNARY: &str = "/shop.v1.Cart/Add";
    const UPLOAD: &str = "/shop.v1.Cart/Upload";
    const WATCH: &str = "/shop.v1.Cart/Watch";
    const CHAT: &str = "/shop.v1.Cart/Chat";
    const OTHER_WATCH: &str = "/shop.v1.Orders/Tail";

    fn registry() -> MethodRegistry {
        let mut registry = MethodRegistry::default();
        registry.insert(UNARY, RpcKind::Unary);
        registry.insert(UPLOAD, RpcKind::ClientStreaming);
        registry.insert(WATCH, RpcKind::ServerStreaming);
        registry.insert(CHAT, RpcKind::BidiStreaming);
        registry.insert(OTHER_WATCH, RpcKind::ServerStreaming);
        registry
    }

    fn timeout(layer: &TimeoutLayer, path: &str) -> Option<Duration> {
        layer.timeout_for(&RpcIdentity::parse(path).expect("path"))
    }

    const S30: Option<Duration> = Some(Duration::from_secs(30));

    #[test]
    fn without_a_registry_every_method_gets_the_request_timeout() {
        let layer = TimeoutLayer::default().stream_timeout(Some(Duration::from_secs(600)));
        for path in [UNARY, UPLOAD, WATCH, CHAT] {
            assert_eq!(timeout(&layer, path), S30, "{path}");
        }
    }

    #[test]
    fn streams_have_no_server_deadline_by_default_once_kinds_are_known() {
        let layer = TimeoutLayer::default().with_registry(registry());
        assert_eq!(timeout(&layer, UNARY), S30);
        assert_eq!(timeout(&layer, UPLOAD), S30);
        assert_eq!(timeout(&layer, WATCH), None);
        assert_eq!(timeout(&layer, CHAT), None);
        // A path the registry does not know keeps the request timeout.
        assert_eq!(timeout(&layer, "/shop.v1.Cart/Unknown"), S30);
    }

    #[test]
    fn the_stream_timeout_applies_whatever_the_order_of_the_builder_calls() {
        let hour = Some(Duration::from_secs(3600));
        let a = TimeoutLayer::default()
            .stream_timeout(hour)
            .with_registry(registry());
        let b = TimeoutLayer::default()
            .with_registry(registry())
            .stream_timeout(hour);
        for layer in [a, b] {
            assert_eq!(timeout(&layer, WATCH), hour);
            assert_eq!(timeout(&layer, CHAT), hour);
            assert_eq!(timeout(&layer, UNARY), S30);
        }
    }

    #[test]
    fn a_method_or_service_entry_beats_the_kind() {
        let layer = TimeoutLayer::new(Duration::from_secs(5))
            .with_registry(registry())
            .stream_timeout(Some(Duration::from_secs(3600)))
            .with_timeout(key("shop.v1.Cart/Watch"), Duration::from_secs(60))
            .with_timeout(key("shop.v1.Orders/*"), Duration::from_secs(7))
            .without_timeout(key("shop.v1.Cart/Add"));
        assert_eq!(timeout(&layer, WATCH), Some(Duration::from_secs(60)));
        assert_eq!(timeout(&layer, OTHER_WATCH), Some(Duration::from_secs(7)));
        assert_eq!(timeout(&layer, CHAT), Some(Duration::from_secs(3600)));
        assert_eq!(timeout(&layer, UNARY), None);
        assert_eq!(timeout(&layer, UPLOAD), Some(Duration::from_secs(5)));
        // The configured policy is what was set, not the resolution.
        assert_eq!(
            layer.policy().default_value().duration(),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn entries_of_a_loaded_policy_count_as_explicit() {
        let policy: MethodPolicy<MethodTimeout> = serde_json::from_str(
            r#"{ "default": "10s", "shop.v1.Cart/Watch": "90s", "shop.v1.Orders/*": "none" }"#,
        )
        .expect("policy");
        let layer = TimeoutLayer::from_policy(policy)
            .with_registry(registry())
            .stream_timeout(Some(Duration::from_secs(3600)));
        assert_eq!(timeout(&layer, WATCH), Some(Duration::from_secs(90)));
        assert_eq!(timeout(&layer, OTHER_WATCH), None);
        assert_eq!(timeout(&layer, CHAT), Some(Duration::from_secs(3600)));
        assert_eq!(timeout(&layer, UNARY), Some(Duration::from_secs(10)));
    }

    #[test]
    fn clones_made_after_building_share_the_resolved_policy() {
        let layer = TimeoutLayer::default().with_registry(registry());
        let _service = layer.layer(());
        let built = layer.resolved().clone();
        assert!(Arc::ptr_eq(&built, layer.clone().resolved()));
        assert!(Arc::ptr_eq(&built, layer.resolved()));
    }

    #[test]
    fn a_builder_call_after_layer_resolves_again_for_its_own_clone() {
        let layer = TimeoutLayer::default();
        let _service = layer.layer(());
        let built = layer.resolved().clone();
        let changed = layer.clone().with_registry(registry());
        assert!(!Arc::ptr_eq(&built, changed.resolved()));
        assert_eq!(timeout(&changed, WATCH), None);
        // The layer it was cloned from keeps its settings and its resolution.
        assert_eq!(timeout(&layer, WATCH), S30);
        assert!(Arc::ptr_eq(&built, layer.resolved()));
        let debug = format!("{layer:?}");
        assert!(debug.starts_with("TimeoutLayer { settings: "), "{debug}");
        assert!(debug.contains(", resolved: "), "{debug}");
    }

    #[tokio::test]
    async fn a_builder_call_after_layer_takes_effect_for_services_made_afterwards() {
        use tower::{ServiceExt, service_fn};

        let slow = service_fn(|_request: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let call = || {
            http::Request::builder()
                .uri(UNARY)
                .body(())
                .expect("request")
        };
        let layer = TimeoutLayer::new(Duration::from_secs(60));
        let before = layer.layer(slow);
        let layer = layer.with_timeout(key("shop.v1.Cart/Add"), Duration::from_millis(20));
        let after = layer.layer(slow);

        let response = after.oneshot(call()).await.expect("response");
        assert_eq!(response.headers()["grpc-status"], "4");
        // The service made before keeps the 60 s it was made with.
        let waited = tokio::time::timeout(Duration::from_millis(200), before.oneshot(call())).await;
        assert!(waited.is_err());
    }
}
