//! The service: keys the call, checks it, refuses or forwards.

use crate::body::RateLimitBody;
use crate::decision::Decision;
use crate::future::ResponseFuture;
use crate::limiter::Limiters;
use crate::refusal::refusal;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{RpcIdentity, is_infrastructure, reject};
use tower_service::Service;

/// Middleware that limits calls per caller; see the [crate docs](crate).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiters: Arc<Limiters>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> RateLimit<S> {
    /// `inner` behind the configuration of `layer` (what [`Layer::layer`] does; clones share
    /// one limiter).
    ///
    /// [`Layer::layer`]: tower_layer::Layer::layer
    pub fn new(inner: S, layer: &crate::RateLimitLayer) -> Self {
        tower_layer::Layer::layer(layer, inner)
    }

    pub(crate) fn from_limiters(inner: S, limiters: Arc<Limiters>) -> Self {
        Self { inner, limiters }
    }

    tonic_blueprint_core::inner_accessors!();
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RateLimit<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<RateLimitBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never waits for quota here: a refused call is answered, not queued.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        // Borrowed, not cloned: the shared count would bounce between cores on every call.
        let limiters = &self.limiters;
        if !limiters.limit_infrastructure && is_infrastructure(id.service()) {
            return ResponseFuture::allowed(self.inner.call(request), None);
        }
        {
            let entry = limiters.entry(&id);
            if entry.quota.limit == 0 {
                // Closed whatever any backend says: never let an outage open it.
                limiters
                    .counters
                    .increment(&id, crate::limiter::Count::Refused);
                return ResponseFuture::refused(reject(crate::refusal::closed(
                    &entry.policy_header,
                    Lang::from_headers(request.headers()),
                )));
            }
        }
        let key = limiters.key(&request);

        #[cfg(feature = "redis")]
        if let Some(redis) = limiters.redis.clone() {
            // The check is a network round trip: take the ready service and go async.
            let limiters = limiters.clone();
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::checking(Box::pin(async move {
                let entry = limiters.entry(&id);
                // Counted in process too: the local map bounds how many distinct keys this
                // replica writes to Redis (new callers beyond its capacity count under their
                // address's overflow key), and its decision is the fallback when Redis fails.
                let admitted = entry.local.admitted(key);
                let local = entry.local.check_admitted(admitted);
                let decision = redis.check(&limiters, &id, entry, admitted, local).await;
                respond(&limiters, &id, decision, inner, request).await
            }));
        }

        let entry = limiters.entry(&id);
        let decision = entry.local.check(key);
        limiters.counters.decision(&id, &decision);
        match decision {
            Decision::Refused { retry_after } => ResponseFuture::refused(reject(refusal(
                &entry.policy_header,
                &entry.quota_text,
                retry_after,
                Lang::from_headers(request.headers()),
            ))),
            Decision::Allowed { remaining } => {
                let header = limiters
                    .expose_remaining
                    .then(|| entry.remaining_header(remaining))
                    .flatten();
                ResponseFuture::allowed(self.inner.call(request), header)
            }
        }
    }
}

#[cfg(feature = "redis")]
async fn respond<S, ReqBody, ResBody>(
    limiters: &Limiters,
    id: &RpcIdentity,
    decision: Decision,
    mut inner: S,
    request: http::Request<ReqBody>,
) -> Result<http::Response<RateLimitBody<ResBody>>, S::Error>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    let entry = limiters.entry(id);
    limiters.counters.decision(id, &decision);
    match decision {
        Decision::Refused { retry_after } => Ok(reject(refusal(
            &entry.policy_header,
            &entry.quota_text,
            retry_after,
            Lang::from_headers(request.headers()),
        ))),
        Decision::Allowed { remaining } => {
            let mut response = inner.call(request).await?.map(RateLimitBody::new);
            if limiters.expose_remaining
                && let Some(value) = entry.remaining_header(remaining)
            {
                response
                    .headers_mut()
                    .insert(crate::refusal::RATELIMIT, value);
            }
            Ok(response)
        }
    }
}
