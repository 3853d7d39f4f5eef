//! The service: reads the credential, verifies it, stores the identity or refuses.

use crate::access::Access;
use crate::failure::Failure;
use crate::future::ResponseFuture;
use crate::jwt::Verdict;
use crate::layer::Shared;
use http::HeaderMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{Identity, RefusableBody, RpcIdentity, reject};
use tower_service::Service;

/// Middleware that verifies who calls; see the [crate docs](crate).
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Auth<S> {
    /// `inner` behind the configuration of `layer`.
    pub fn new(inner: S, layer: &crate::AuthLayer) -> Self {
        Self::from_shared(inner, layer.shared.clone())
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    tonic_blueprint_core::inner_accessors!();
}

/// What the credentials of a call prove.
enum Found {
    Verified(Identity),
    Nothing,
    Failed(Failure),
    /// A JWT naming a `kid` the JWKS may learn by refreshing.
    UnknownKey,
}

impl Shared {
    fn authenticate(&self, headers: &HeaderMap, extensions: &http::Extensions) -> Found {
        if let Some(jwt) = &self.jwt {
            let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Found::Failed(Failure::Invalid);
                }
                let Some(token) = bearer(value.as_bytes()) else {
                    return Found::Failed(Failure::Invalid);
                };
                return match jwt.verify(token) {
                    Verdict::Verified(identity) => Found::Verified(identity),
                    Verdict::Failed(failure) => Found::Failed(failure),
                    Verdict::UnknownKey => Found::UnknownKey,
                };
            }
        }
        if !self.api_keys.is_empty()
            && let Some(value) = headers.get(&self.api_key_header)
        {
            return match self.api_keys.verify(value.as_bytes()) {
                Some(identity) => Found::Verified(identity.clone()),
                None => Found::Failed(Failure::Invalid),
            };
        }
        if let Some(peer) = &self.peer
            && let Some(identity) = peer(extensions)
        {
            return Found::Verified(identity);
        }
        Found::Nothing
    }

    /// After a JWKS refresh: the token once more, an unknown key now final.
    fn authenticate_again(&self, headers: &HeaderMap, extensions: &http::Extensions) -> Found {
        match self.authenticate(headers, extensions) {
            Found::UnknownKey => Found::Failed(Failure::Invalid),
            found => found,
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), if that is what `value` holds.
fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What to do with a call once its credentials are known.
enum Decision {
    Admit(Option<Identity>),
    Refuse(Failure),
}

fn decide(found: Found, access: &Access) -> Decision {
    match found {
        Found::Verified(identity) => {
            let missing = access
                .required_scopes()
                .iter()
                .any(|scope| !identity.has_scope(scope));
            if missing {
                Decision::Refuse(Failure::Forbidden)
            } else {
                Decision::Admit(Some(identity))
            }
        }
        Found::Nothing if access.allows_anonymous() => Decision::Admit(None),
        Found::Nothing => Decision::Refuse(Failure::Missing),
        Found::Failed(failure) => Decision::Refuse(failure),
        Found::UnknownKey => Decision::Refuse(Failure::Invalid),
    }
}

fn admit<B>(request: &mut http::Request<B>, identity: Option<Identity>) {
    if let Some(identity) = identity {
        tracing::Span::current().record("enduser.id", identity.subject());
        request.extensions_mut().insert(identity);
    }
}

fn refusal<B>(failure: Failure, headers: &HeaderMap) -> http::Response<RefusableBody<B>> {
    failure.count();
    reject(failure.status(Lang::from_headers(headers)))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<RefusableBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let access = self.shared.access.get(&id);
        if matches!(access, Access::Public) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let found = self
            .shared
            .authenticate(request.headers(), request.extensions());
        if let Found::UnknownKey = found
            && let Some(jwks) = self
                .shared
                .jwt
                .as_ref()
                .and_then(|j| j.jwks_source())
                .cloned()
        {
            // The key may have rotated in: refresh the set (at most once per interval, bounded
            // by the fetch timeout) and verify again. Take the ready service and go async.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let shared = self.shared.clone();
            return ResponseFuture::waiting(Box::pin(async move {
                jwks.refresh_for_unknown_kid().await;
                let found = shared.authenticate_again(request.headers(), request.extensions());
                let access = shared.access.get(&id);
                match decide(found, access) {
                    Decision::Admit(identity) => {
                        admit(&mut request, identity);
                        Ok(inner.call(request).await?.map(RefusableBody::new))
                    }
                    Decision::Refuse(failure) => Ok(refusal(failure, request.headers())),
                }
            }));
        }
        match decide(found, access) {
            Decision::Admit(identity) => {
                admit(&mut request, identity);
                ResponseFuture::inner(self.inner.call(request))
            }
            Decision::Refuse(failure) => {
                ResponseFuture::refused(refusal(failure, request.headers()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer(b"Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(&[0xff, b' ', b'x']), None);
    }
}
