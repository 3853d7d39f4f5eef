//! The response body: polls the response stream inside `catch_unwind`.

use crate::hook::catch;
use crate::status::{PanicPhase, StatusForPanic, recover};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{RpcIdentity, status_trailers};

pin_project! {
    /// Response body of [`PanicRecovery`](crate::PanicRecovery).
    ///
    /// A panic while the body (the handler's response stream) is polled ends the stream with
    /// the recovered status in its trailers.
    pub struct PanicBody<B, H> {
        #[pin]
        inner: Option<B>,
        handler: Option<H>,
        id: RpcIdentity,
        lang: Lang,
        forward: bool,
    }
}

impl<B, H> PanicBody<B, H> {
    pub(crate) fn new(inner: B, handler: H, id: RpcIdentity, lang: Lang, forward: bool) -> Self {
        Self {
            inner: Some(inner),
            handler: Some(handler),
            id,
            lang,
            forward,
        }
    }
}

impl<B, H> Default for PanicBody<B, H> {
    /// An empty body (the body of a trailers-only response).
    fn default() -> Self {
        Self {
            inner: None,
            handler: None,
            id: RpcIdentity::unknown(),
            lang: Lang::En,
            forward: false,
        }
    }
}

impl<B, H> std::fmt::Debug for PanicBody<B, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanicBody")
            .field("rpc", &self.id)
            .field("done", &self.inner.is_none())
            .finish()
    }
}

impl<B, H> Body for PanicBody<B, H>
where
    B: Body<Data = Bytes>,
    H: StatusForPanic,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let forward = *this.forward;
        match catch(forward, || inner.poll_frame(cx)) {
            Ok(frame) => frame,
            Err(caught) => {
                let _ = catch(forward, || this.inner.set(None));
                let status = match this.handler.take() {
                    Some(handler) => recover(
                        &handler,
                        forward,
                        this.id,
                        *this.lang,
                        caught,
                        PanicPhase::Stream,
                    ),
                    None => crate::status::internal(*this.lang),
                };
                Poll::Ready(Some(Ok(Frame::trailers(status_trailers(status)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => {
                // A panic may replace the rest with trailers: only the lower bound holds.
                let mut hint = SizeHint::new();
                hint.set_lower(inner.size_hint().lower());
                hint
            }
            None => SizeHint::with_exact(0),
        }
    }
}
