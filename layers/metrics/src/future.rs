//! The response future: hands the call's record to the outcome observer.

use crate::record::CallRecord;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic::Code;
use tonic_blueprint_core::code::code_from_error;
use tonic_blueprint_core::{BoxError, ObservedBody, observe};

pin_project! {
    /// Response future of [`Metrics`](crate::Metrics).
    pub struct ResponseFuture<F> {
        // Declared first so it drops first: a call cancelled before its response is counted
        // before the handler's own drop is observable.
        record: Option<CallRecord>,
        #[pin]
        inner: F,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(record: CallRecord, inner: F) -> Self {
        Self {
            record: Some(record),
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
    E: Into<BoxError>,
{
    type Output = Result<http::Response<ObservedBody<B, CallRecord>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(record) = this.record.take() else {
            return Poll::Pending;
        };
        match result {
            Ok(response) => Poll::Ready(Ok(observe(response, record))),
            Err(err) => {
                let err: BoxError = err.into();
                let code = code_from_error(err.as_ref()).unwrap_or(Code::Internal);
                record.finish(code);
                Poll::Ready(Err(err))
            }
        }
    }
}
