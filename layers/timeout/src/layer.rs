//! The layer: configuration only.

use crate::service::Timeout;
use crate::setting::MethodTimeout;
use std::sync::Arc;
use std::time::Duration;
use tonic_blueprint_core::MethodPolicy;
use tower_layer::Layer;

/// Gives every call a deadline; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    policy: Arc<MethodPolicy<MethodTimeout>>,
}

impl Default for TimeoutLayer {
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) (30 s) for every method.
    fn default() -> Self {
        Self::from_policy(MethodPolicy::default())
    }
}

impl TimeoutLayer {
    /// `timeout` for every method.
    pub fn new(timeout: Duration) -> Self {
        Self::from_policy(MethodPolicy::new(MethodTimeout::after(timeout)))
    }

    /// Timeouts from a policy (for example one loaded with serde).
    pub fn from_policy(policy: MethodPolicy<MethodTimeout>) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// Sets the timeout of every method of `service` (`pkg.Service`).
    pub fn with_service(mut self, service: &str, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.policy).set_service(service, MethodTimeout::after(timeout));
        self
    }

    /// Sets the timeout of one method (`pkg.Service/Method`).
    ///
    /// # Panics
    ///
    /// When `method` is not `pkg.Service/Method`.
    pub fn with_method(mut self, method: &str, timeout: Duration) -> Self {
        self.set(method, MethodTimeout::after(timeout));
        self
    }

    /// Removes the server-side timeout of a method or service (`pkg.Service/Method`,
    /// `pkg.Service/*`), for long-lived streams. A client's `grpc-timeout` still applies.
    ///
    /// # Panics
    ///
    /// When `key` is not a method or service key.
    pub fn without_timeout(mut self, key: &str) -> Self {
        self.set(key, MethodTimeout::NONE);
        self
    }

    fn set(&mut self, key: &str, value: MethodTimeout) {
        if let Err(e) = Arc::make_mut(&mut self.policy).set(key, value) {
            panic!("{e}");
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &MethodPolicy<MethodTimeout> {
        &self.policy
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::from_shared(inner, self.policy.clone())
    }
}
