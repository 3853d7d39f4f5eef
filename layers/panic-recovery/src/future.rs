//! The response future: polls the handler inside `catch_unwind`.

use crate::body::PanicBody;
use crate::hook::catch;
use crate::status::{PanicPhase, StatusForPanic, recover};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{RpcIdentity, reject};

pin_project! {
    /// Response future of [`PanicRecovery`](crate::PanicRecovery).
    pub struct ResponseFuture<F, H> {
        #[pin]
        inner: Option<F>,
        panicked: Option<Status>,
        handler: H,
        id: RpcIdentity,
        lang: Lang,
        forward: bool,
    }
}

impl<F, H> ResponseFuture<F, H> {
    pub(crate) fn new(inner: F, handler: H, id: RpcIdentity, lang: Lang, forward: bool) -> Self {
        Self {
            inner: Some(inner),
            panicked: None,
            handler,
            id,
            lang,
            forward,
        }
    }

    pub(crate) fn panicked(
        status: Status,
        handler: H,
        id: RpcIdentity,
        lang: Lang,
        forward: bool,
    ) -> Self {
        Self {
            inner: None,
            panicked: Some(status),
            handler,
            id,
            lang,
            forward,
        }
    }
}

impl<F, H> std::fmt::Debug for ResponseFuture<F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rpc", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F, H, B, E> Future for ResponseFuture<F, H>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    H: StatusForPanic,
{
    type Output = Result<http::Response<PanicBody<B, H>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.panicked.take() {
            return Poll::Ready(Ok(reject(status)));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            // Polled after completion: the same contract as any future, but never a panic here.
            return Poll::Pending;
        };
        match catch(*this.forward, || inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                let (handler, id, forward) = (this.handler.clone(), this.id.clone(), *this.forward);
                let lang = *this.lang;
                this.inner.set(None);
                Poll::Ready(result.map(|response| {
                    response.map(|body| PanicBody::new(body, handler, id, lang, forward))
                }))
            }
            Err(caught) => {
                let forward = *this.forward;
                // Dropping a future that panicked may panic again: contain that too.
                let _ = catch(forward, || this.inner.set(None));
                let status = recover(
                    this.handler,
                    forward,
                    this.id,
                    *this.lang,
                    caught,
                    PanicPhase::Handler,
                );
                Poll::Ready(Ok(reject(status)))
            }
        }
    }
}
