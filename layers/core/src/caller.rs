//! Who calls: the [`Identity`] an authentication layer proved.
//!
//! The auth layer (`tonic-blueprint-auth`) verifies a credential (a JWT, an API key, a client
//! certificate) and stores an [`Identity`] in the request extensions. Everything keyed on "the
//! caller" reads this one type: the rate limiter's key, the response cache's vary, the logs'
//! `enduser.id`, and the handlers' own authorization. Nothing the caller writes in its metadata
//! becomes an identity without that proof.
//!
//! ```
//! use tonic_blueprint_core::{AuthMethod, Identity};
//!
//! let mut request = tonic::Request::new(());
//! assert!(Identity::require(&request).is_err()); // UNAUTHENTICATED
//!
//! request.extensions_mut().insert(
//!     Identity::new("alice", AuthMethod::Jwt)
//!         .with_tenant("acme")
//!         .with_scopes(["payments:read"]),
//! );
//! let caller = Identity::require(&request).unwrap();
//! assert_eq!(caller.subject(), "alice");
//! assert_eq!(caller.tenant(), Some("acme"));
//! assert!(caller.has_scope("payments:read"));
//! assert!(!caller.has_scope("payments:write"));
//! ```

use std::fmt;
use std::sync::Arc;

/// How an [`Identity`] was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A JSON Web Token in `authorization: Bearer`, signature and claims verified.
    Jwt,
    /// An API key, compared by hash in constant time.
    ApiKey,
    /// The client certificate of a mutual-TLS connection.
    MutualTls,
    /// A header set by a trusted gateway in front of the service (configured explicitly).
    Gateway,
}

impl AuthMethod {
    /// A short name for logs: `jwt`, `api_key`, `mtls`, `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ApiKey => "api_key",
            Self::MutualTls => "mtls",
            Self::Gateway => "gateway",
        }
    }
}

/// A verified caller, in the request extensions. Cloning it is cheap (shared buffers).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    subject: Arc<str>,
    tenant: Option<Arc<str>>,
    scopes: Arc<[Box<str>]>,
    method: AuthMethod,
}

impl Identity {
    /// A caller named `subject` (a JWT's `sub`, an API key's owner, a certificate's subject).
    pub fn new(subject: impl Into<Arc<str>>, method: AuthMethod) -> Self {
        Self {
            subject: subject.into(),
            tenant: None,
            scopes: Arc::from(Vec::<Box<str>>::new()),
            method,
        }
    }

    /// The caller's tenant, for multi-tenant services.
    pub fn with_tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The scopes the credential grants.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Who calls.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The caller's tenant, when the credential names one.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The scopes the credential grants.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }

    /// Whether the credential grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// How the identity was proven.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The verified caller of a handler's request, if any.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Identity> {
        request.extensions().get::<Identity>()
    }

    /// The verified caller of a handler's request, or UNAUTHENTICATED.
    ///
    /// A handler behind the auth layer always has one unless its method allows anonymous
    /// calls; this is the one call a handler needs to know who calls.
    pub fn require<T>(request: &tonic::Request<T>) -> Result<&Identity, tonic::Status> {
        Self::of(request)
            .ok_or_else(|| tonic::Status::unauthenticated(crate::catalogue::MISSING_CREDENTIALS_EN))
    }

    /// The verified caller of an HTTP request (what layers see), if any.
    pub fn from_http<B>(request: &http::Request<B>) -> Option<&Identity> {
        request.extensions().get::<Identity>()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("scopes", &self.scopes)
            .field("method", &self.method)
            .finish()
    }
}

/// Services that answer infrastructure, not callers: health checks and reflection.
///
/// They are public by default in the auth layer, never rate-limited or cached by the preset,
/// and their calls are logged at debug, so a probe every few seconds neither takes a healthy
/// replica out of service nor fills the logs.
pub const INFRASTRUCTURE_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Whether `service` (`pkg.Service`) is one of the [`INFRASTRUCTURE_SERVICES`].
pub fn is_infrastructure(service: &str) -> bool {
    INFRASTRUCTURE_SERVICES.contains(&service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_reads_back_from_http_extensions() {
        let mut request = http::Request::new(());
        assert!(Identity::from_http(&request).is_none());
        request
            .extensions_mut()
            .insert(Identity::new("bob", AuthMethod::ApiKey));
        let id = Identity::from_http(&request).unwrap();
        assert_eq!(id.subject(), "bob");
        assert_eq!(id.tenant(), None);
        assert_eq!(id.scopes().count(), 0);
        assert_eq!(id.method().as_str(), "api_key");
    }

    #[test]
    fn a_request_without_identity_is_unauthenticated() {
        let request = tonic::Request::new(());
        let status = Identity::require(&request).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn infrastructure_services_are_named() {
        assert!(is_infrastructure("grpc.health.v1.Health"));
        assert!(is_infrastructure(
            "grpc.reflection.v1alpha.ServerReflection"
        ));
        assert!(!is_infrastructure("payments.v1.PaymentService"));
    }
}
