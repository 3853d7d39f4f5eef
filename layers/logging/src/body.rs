//! The response body, polled inside the call's span.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic_blueprint_core::CurrentCall;

pin_project! {
    /// Response body of [`RequestLogging`](crate::RequestLogging): the handler's response
    /// stream runs inside the call's span (and as the current call), so what it logs carries
    /// the request id and trace, and what it calls carries them on. The body of a unary or
    /// client-streaming call, where no service code runs, enters no span.
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        span: Option<tracing::Span>,
        call: Option<CurrentCall>,
    }
}

impl<B> LoggedBody<B> {
    pub(crate) fn new(inner: B, span: Option<tracing::Span>, call: Option<CurrentCall>) -> Self {
        Self { inner, span, call }
    }
}

impl<B> std::fmt::Debug for LoggedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody").finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for LoggedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let _current = this.call.as_ref().map(CurrentCall::enter);
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
