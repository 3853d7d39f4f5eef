//! The response body of a layer that may refuse: the inner body, or empty for a trailers-only
//! refusal.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// The inner body, or (its [`Default`]) empty, for a trailers-only refusal built with
    /// [`reject`](crate::reject).
    ///
    /// ```
    /// use http_body::Body;
    /// use tonic_blueprint_core::{RefusableBody, reject};
    ///
    /// let refused: http::Response<RefusableBody<tonic::body::Body>> =
    ///     reject(tonic::Status::unauthenticated("missing credentials"));
    /// assert!(refused.body().is_end_stream());
    /// ```
    pub struct RefusableBody<B> {
        #[pin]
        inner: Option<B>,
    }
}

impl<B> RefusableBody<B> {
    /// The inner body.
    pub fn new(inner: B) -> Self {
        Self { inner: Some(inner) }
    }
}

impl<B> Default for RefusableBody<B> {
    fn default() -> Self {
        Self { inner: None }
    }
}

impl<B> std::fmt::Debug for RefusableBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusableBody")
            .field("refused", &self.inner.is_none())
            .finish()
    }
}

impl<B: Body<Data = Bytes>> Body for RefusableBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
