//! An adapter that lets a layer's inner service take any request body: each body is boxed
//! into tonic's `Body`, so layers that wrap request bodies (logging, metrics) stack on one
//! boxed service type.

use bytes::Bytes;
use std::task::{Context, Poll};
use tonic_blueprint_core::BoxError;
use tower::Service;

/// `inner`, accepting any body with `Bytes` chunks.
#[derive(Clone, Debug)]
pub(crate) struct AnyBody<S> {
    inner: S,
}

impl<S> AnyBody<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<http::Request<B>> for AnyBody<S>
where
    S: Service<http::Request<tonic::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.inner.call(request.map(tonic::body::Body::new))
    }
}
