//! A limit on calls in flight, with load shedding: past it, a call is refused at once with
//! RESOURCE_EXHAUSTED (trailers-only, counted in `grpc_server_shed_total`) instead of
//! queueing, so an overloaded replica answers fast and clients back off or go elsewhere.
//!
//! A call is in flight from its arrival until its response body ends (a stream counts for as
//! long as it streams). Health and reflection calls are never shed, so an overloaded replica
//! is not also reported dead.

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use tonic_blueprint_core::catalogue::{self, Lang, Text};
use tonic_blueprint_core::{RefusableBody, RpcIdentity, is_infrastructure, names, reject};
use tower::{Layer, Service};

/// Sheds calls past `max` in flight: refused at once with RESOURCE_EXHAUSTED, counted in
/// `grpc_server_shed_total`; health and reflection are never shed.
#[derive(Clone, Debug)]
pub struct InFlightLimitLayer {
    max: usize,
    count: Arc<AtomicUsize>,
}

impl InFlightLimitLayer {
    /// At most `max` calls in flight across every connection (`0`: no limit).
    pub fn new(max: usize) -> Self {
        Self {
            max: if max == 0 { usize::MAX } else { max },
            count: Arc::default(),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> InFlightLimit<S> {
        InFlightLimit {
            inner,
            max: self.max,
            count: self.count.clone(),
        }
    }
}

/// Middleware of [`InFlightLimitLayer`].
#[derive(Clone, Debug)]
pub struct InFlightLimit<S> {
    inner: S,
    max: usize,
    count: Arc<AtomicUsize>,
}

/// Held while a call is in flight.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for InFlightLimit<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<InFlightBody<ResBody>>;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let slot = if is_infrastructure(id.service()) {
            None
        } else {
            let before = self.count.fetch_add(1, Ordering::Relaxed);
            let slot = Slot(self.count.clone());
            if before >= self.max {
                drop(slot);
                metrics::counter!(names::SHED).increment(1);
                let status = catalogue::status(
                    tonic::Code::ResourceExhausted,
                    Text::Overloaded,
                    Lang::from_headers(request.headers()),
                );
                return InFlightFuture {
                    inner: None,
                    refused: Some(reject(status)),
                    slot: None,
                };
            }
            Some(slot)
        };
        InFlightFuture {
            inner: Some(self.inner.call(request)),
            refused: None,
            slot,
        }
    }
}

pin_project! {
    /// Response future of [`InFlightLimit`].
    pub struct InFlightFuture<F> {
        #[pin]
        inner: Option<F>,
        refused: Option<http::Response<RefusableBody<()>>>,
        slot: Option<Slot>,
    }
}

impl<F> std::fmt::Debug for InFlightFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for InFlightFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<InFlightBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let response = ready!(inner.poll(cx))?;
                let slot = this.slot.take();
                Poll::Ready(Ok(response.map(|inner| InFlightBody {
                    inner: Some(inner),
                    _slot: slot,
                })))
            }
            None => match this.refused.take() {
                Some(refused) => Poll::Ready(Ok(refused.map(|_| InFlightBody {
                    inner: None,
                    _slot: None,
                }))),
                None => Poll::Pending,
            },
        }
    }
}

pin_project! {
    /// Response body of [`InFlightLimit`]: the call stays in flight until it ends.
    pub struct InFlightBody<B> {
        #[pin]
        inner: Option<B>,
        _slot: Option<Slot>,
    }
}

impl<B> std::fmt::Debug for InFlightBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
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
