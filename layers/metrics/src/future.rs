//! The response future: hands the response to the call's observer.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic_blueprint_core::{Fanout, ObservedBody, Watch};

pin_project! {
    /// Response future of [`Metrics`](crate::Metrics).
    pub struct ResponseFuture<F> {
        // Declared first so it drops first: a call cancelled before its response is counted
        // before the handler's own drop is observable.
        watch: Option<Watch>,
        #[pin]
        inner: F,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(watch: Watch, inner: F) -> Self {
        Self {
            watch: Some(watch),
            inner,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes>,
    E: 'static,
{
    type Output = Result<http::Response<ObservedBody<B, Fanout>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(watch) = this.watch.take() else {
            return Poll::Pending;
        };
        match result {
            Ok(response) => Poll::Ready(Ok(watch.respond(response))),
            Err(err) => {
                watch.fail(&err);
                Poll::Ready(Err(err))
            }
        }
    }
}
