//! The response future: runs the handler inside the call's span (and as the current call),
//! echoes the request id.

use crate::body::LoggedBody;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic_blueprint_core::headers::X_REQUEST_ID;
use tonic_blueprint_core::{CurrentCall, Fanout, ObservedBody, Watch};

pin_project! {
    /// Response future of [`RequestLogging`](crate::RequestLogging).
    pub struct ResponseFuture<F> {
        // Declared first so it drops (and logs `Canceled`) before the handler's future.
        watch: Option<Watch>,
        request_id: http::HeaderValue,
        #[pin]
        inner: F,
        span: tracing::Span,
        call: Option<CurrentCall>,
        body_in_span: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        watch: Watch,
        request_id: http::HeaderValue,
        inner: F,
        span: tracing::Span,
        call: Option<CurrentCall>,
        body_in_span: bool,
    ) -> Self {
        Self {
            watch: Some(watch),
            request_id,
            inner,
            span,
            call,
            body_in_span,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes>,
    E: 'static,
{
    type Output = Result<http::Response<LoggedBody<ObservedBody<B, Fanout>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            let _current = this.call.as_ref().map(CurrentCall::enter);
            ready!(this.inner.poll(cx))
        };
        let Some(watch) = this.watch.take() else {
            return Poll::Pending;
        };
        match result {
            Ok(mut response) => {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID, this.request_id.clone());
                let (span, call) = if *this.body_in_span {
                    (Some(this.span.clone()), this.call.take())
                } else {
                    (None, None)
                };
                let response = watch.respond(response);
                Poll::Ready(Ok(response.map(|body| LoggedBody::new(body, span, call))))
            }
            Err(err) => {
                watch.fail(&err);
                Poll::Ready(Err(err))
            }
        }
    }
}
