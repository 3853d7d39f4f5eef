//! The layer: configuration only, shared by every clone of the service.

use crate::access::Access;
use crate::api_key::ApiKeys;
use crate::jwt::JwtVerifier;
use crate::service::Auth;
use http::HeaderName;
use std::sync::Arc;
use tonic_blueprint_core::{INFRASTRUCTURE_SERVICES, Identity, MethodKey, MethodPolicy};
use tower_layer::Layer;

/// The default metadata key of API keys.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

type PeerFn = dyn Fn(&http::Extensions) -> Option<Identity> + Send + Sync;

/// Verifies who calls; see the [crate docs](crate).
#[derive(Clone)]
pub struct AuthLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) jwt: Option<JwtVerifier>,
    pub(crate) api_keys: ApiKeys,
    pub(crate) api_key_header: HeaderName,
    pub(crate) access: MethodPolicy<Access>,
    pub(crate) peer: Option<Arc<PeerFn>>,
}

impl Clone for Shared {
    fn clone(&self) -> Self {
        Self {
            jwt: self.jwt.clone(),
            api_keys: self.api_keys.clone(),
            api_key_header: self.api_key_header.clone(),
            access: self.access.clone(),
            peer: self.peer.clone(),
        }
    }
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("jwt", &self.shared.jwt)
            .field("api_keys", &self.shared.api_keys)
            .field("api_key_header", &self.shared.api_key_header)
            .field("access", &self.shared.access)
            .field("peer", &self.shared.peer.is_some())
            .finish()
    }
}

impl Default for AuthLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthLayer {
    /// No credential source yet; every method needs a verified caller except the health and
    /// reflection services ([`INFRASTRUCTURE_SERVICES`]), which are [`Access::Public`].
    pub fn new() -> Self {
        let mut access = MethodPolicy::new(Access::Authenticated);
        for service in INFRASTRUCTURE_SERVICES {
            access.set_service(service, Access::Public);
        }
        Self {
            shared: Arc::new(Shared {
                jwt: None,
                api_keys: ApiKeys::new(),
                api_key_header: HeaderName::from_static(DEFAULT_API_KEY_HEADER),
                access,
                peer: None,
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Building happens before the layer is shared; a clone taken earlier keeps its own.
        Arc::make_mut(&mut self.shared)
    }

    /// Verifies `authorization: Bearer <JWT>` with `verifier`.
    pub fn jwt(mut self, verifier: JwtVerifier) -> Self {
        self.shared_mut().jwt = Some(verifier);
        self
    }

    /// Accepts these API keys in the API-key metadata (default `x-api-key`).
    pub fn api_keys(mut self, keys: ApiKeys) -> Self {
        self.shared_mut().api_keys = keys;
        self
    }

    /// The metadata key API keys come in (default [`DEFAULT_API_KEY_HEADER`]).
    pub fn api_key_header(mut self, name: HeaderName) -> Self {
        self.shared_mut().api_key_header = name;
        self
    }

    /// The identity of the connection itself, asked when the call carries no token or API
    /// key: for example the subject of a verified client certificate, read from the
    /// connection info the TLS acceptor put in the request extensions.
    pub fn peer_identity(
        mut self,
        f: impl Fn(&http::Extensions) -> Option<Identity> + Send + Sync + 'static,
    ) -> Self {
        self.shared_mut().peer = Some(Arc::new(f));
        self
    }

    /// The access rule of every method (replaces the default; keep the infrastructure
    /// services public yourself if you want them so).
    pub fn access(mut self, policy: MethodPolicy<Access>) -> Self {
        self.shared_mut().access = policy;
        self
    }

    /// The access rule of one method (`pkg.Service/Method`) or service (`pkg.Service/*`).
    pub fn method_access(mut self, key: MethodKey, access: Access) -> Self {
        self.shared_mut().access.insert(&key, access);
        self
    }

    /// The access rule of every method not set otherwise (default
    /// [`Access::Authenticated`]).
    pub fn default_access(mut self, access: Access) -> Self {
        self.shared_mut().access.set_default(access);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth::from_shared(inner, self.shared.clone())
    }
}
