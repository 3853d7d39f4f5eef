//! The response future: the handler against the timer until the response headers.

use crate::body::TimeoutBody;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Sleep;
use tonic_blueprint_core::{RpcIdentity, reject};

pin_project! {
    /// Response future of [`Timeout`](crate::Timeout).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        timer: Option<Pin<Box<Sleep>>>,
        id: RpcIdentity,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timer: Option<Pin<Box<Sleep>>>, id: RpcIdentity) -> Self {
        Self { inner, timer, id }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rpc", &self.id)
            .field("deadline", &self.timer.as_ref().map(|t| t.deadline()))
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let timer = this.timer.take();
            return Poll::Ready(result.map(|response| {
                // A trailers-only response is complete: a timer on its (empty) body could only
                // add a second, contradicting status.
                let timer = timer.filter(|_| !response.headers().contains_key("grpc-status"));
                let id = this.id.clone();
                response.map(|body| TimeoutBody::new(body, timer, id))
            }));
        }
        if let Some(timer) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(reject(crate::deadline_exceeded(this.id))));
            }
        }
        Poll::Pending
    }
}
