//! The service: catches panics in `call` and hands the rest to the future and body.

use crate::future::ResponseFuture;
use crate::layer::PanicRecoveryLayer;
use crate::status::{DefaultStatusForPanic, PanicPhase, StatusForPanic, recover};
use std::task::{Context, Poll};
use tonic_blueprint_core::RpcIdentity;
use tonic_blueprint_core::catalogue::Lang;
use tower_service::Service;

/// Middleware that recovers panics as INTERNAL; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct PanicRecovery<S, H = DefaultStatusForPanic> {
    inner: S,
    handler: H,
    forward: bool,
}

impl<S> PanicRecovery<S> {
    /// Wraps `inner` with the default status.
    pub fn new(inner: S) -> Self {
        crate::hook::install();
        Self::with_parts(inner, DefaultStatusForPanic, false)
    }

    /// The layer with the default status.
    pub fn layer() -> PanicRecoveryLayer {
        PanicRecoveryLayer::new()
    }
}

impl<S, H> PanicRecovery<S, H> {
    pub(crate) fn with_parts(inner: S, handler: H, forward: bool) -> Self {
        Self {
            inner,
            handler,
            forward,
        }
    }

    tonic_blueprint_core::inner_accessors!();
}

impl<S, H, ReqBody, ResBody> Service<http::Request<ReqBody>> for PanicRecovery<S, H>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    H: StatusForPanic,
{
    type Response = http::Response<crate::PanicBody<ResBody, H>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let handler = self.handler.clone();
        let lang = Lang::from_headers(request.headers());
        match crate::hook::catch(self.forward, || self.inner.call(request)) {
            Ok(future) => ResponseFuture::new(future, handler, id, lang, self.forward),
            Err(caught) => {
                let status = recover(
                    &handler,
                    self.forward,
                    &id,
                    lang,
                    caught,
                    PanicPhase::Handler,
                );
                ResponseFuture::panicked(status, handler, id, lang, self.forward)
            }
        }
    }
}
