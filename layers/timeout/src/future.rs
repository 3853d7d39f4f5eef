//! The response future: the handler against the deadline until the response headers.

use crate::body::TimeoutBody;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{RpcIdentity, reject};

pin_project! {
    /// Response future of [`Timeout`](crate::Timeout).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Armed only once the handler first waits: a handler that answers on its first poll
        // never pays for registering a timer.
        #[pin]
        timer: Option<Sleep>,
        fire_at: Option<Instant>,
        id: RpcIdentity,
        lang: Lang,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, fire_at: Option<Instant>, id: RpcIdentity, lang: Lang) -> Self {
        Self {
            inner,
            timer: None,
            fire_at,
            id,
            lang,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rpc", &self.id)
            .field("fire_at", &self.fire_at)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let fire_at = *this.fire_at;
            let id = this.id.clone();
            let lang = *this.lang;
            return Poll::Ready(result.map(|response| {
                // A trailers-only response is complete: a deadline on its (empty) body could
                // only add a second, contradicting status.
                let fire_at = fire_at.filter(|_| {
                    !response
                        .headers()
                        .contains_key(tonic_blueprint_core::headers::GRPC_STATUS)
                });
                response.map(|body| TimeoutBody::new(body, fire_at, id, lang))
            }));
        }
        let Some(fire_at) = *this.fire_at else {
            return Poll::Pending;
        };
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(fire_at)));
        }
        if let Some(timer) = this.timer.as_pin_mut()
            && timer.poll(cx).is_ready()
        {
            return Poll::Ready(Ok(reject(crate::deadline_exceeded(this.id, *this.lang))));
        }
        Poll::Pending
    }
}
