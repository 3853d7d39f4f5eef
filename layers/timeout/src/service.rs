//! The service: computes the deadline and arms the timer.

use crate::future::ResponseFuture;
use crate::layer::TimeoutLayer;
use crate::setting::MethodTimeout;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::deadline::client_timeout;
use tonic_blueprint_core::{Deadline, MethodPolicy, RpcIdentity};
use tower_service::Service;

/// How much earlier than a client-supplied deadline the timer fires.
///
/// tonic's server applies the client's `grpc-timeout` in its own timer outside every layer and
/// answers CANCELLED when it fires. Its timer starts a few microseconds before ours and tokio
/// rounds both up to the next millisecond tick, so ours could land one tick later. Firing one
/// tick earlier makes ours the one the client sees unless more than a millisecond passes
/// between the two timers being created (nothing but synchronous `call`s sits between them).
/// The race was not seen in 1,500 calls without the lead; the lead removes it by construction.
/// One millisecond is far below the precision a client can expect of a deadline.
const CLIENT_DEADLINE_LEAD: Duration = Duration::from_millis(1);

/// Middleware that gives every call a deadline; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    policy: Arc<MethodPolicy<MethodTimeout>>,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with `timeout` for every method.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self::from_shared(inner, Arc::new(MethodPolicy::new(timeout.into())))
    }

    pub(crate) fn from_shared(inner: S, policy: Arc<MethodPolicy<MethodTimeout>>) -> Self {
        Self { inner, policy }
    }

    /// The layer with the default policy (30 s).
    pub fn layer() -> TimeoutLayer {
        TimeoutLayer::default()
    }

    tonic_blueprint_core::inner_accessors!();
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Timeout<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<crate::TimeoutBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let server = self.policy.get(&id).duration();
        let client = client_timeout(request.headers());
        let fire_at = Deadline::effective(server, client).map(|deadline| {
            request.extensions_mut().insert(deadline);
            // Whenever the client sent a timeout, tonic's outer timer runs on it: stay ahead
            // of it even when the server's timeout is equal (a tie names the server).
            match client {
                Some(_) => deadline
                    .expires_at()
                    .checked_sub(CLIENT_DEADLINE_LEAD)
                    .unwrap_or(deadline.expires_at()),
                None => deadline.expires_at(),
            }
        });
        let lang = Lang::from_headers(request.headers());
        ResponseFuture::new(self.inner.call(request), fire_at, id, lang)
    }
}
