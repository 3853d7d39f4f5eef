//! The response future: runs the handler inside the call's span (and as the current call),
//! echoes the request id.

use crate::body::LoggedBody;
use crate::record::LogRecord;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic_blueprint_core::code::code_from_error;
use tonic_blueprint_core::headers::X_REQUEST_ID;
use tonic_blueprint_core::{BoxError, CurrentCall, ObservedBody, observe};

pin_project! {
    /// Response future of [`RequestLogging`](crate::RequestLogging).
    pub struct ResponseFuture<F> {
        // Declared first so it drops (and logs `Canceled`) before the handler's future.
        record: Option<LogRecord>,
        #[pin]
        inner: F,
        span: tracing::Span,
        call: Option<CurrentCall>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        record: LogRecord,
        inner: F,
        span: tracing::Span,
        call: Option<CurrentCall>,
    ) -> Self {
        Self {
            record: Some(record),
            inner,
            span,
            call,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<LoggedBody<ObservedBody<B, LogRecord>>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            let _current = this.call.as_ref().map(CurrentCall::enter);
            ready!(this.inner.poll(cx))
        };
        let Some(record) = this.record.take() else {
            return Poll::Pending;
        };
        match result {
            Ok(mut response) => {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID, record.request_id.header_value().clone());
                let span = this.span.clone();
                let call = this.call.take();
                let response = observe(response, record);
                Poll::Ready(Ok(response.map(|body| LoggedBody::new(body, span, call))))
            }
            Err(err) => {
                let err: BoxError = err.into();
                record.finish(
                    code_from_error(err.as_ref()).unwrap_or(tonic::Code::Internal),
                    0,
                );
                Poll::Ready(Err(err))
            }
        }
    }
}
