//! The service: starts the call's record and counts received messages.

use crate::future::ResponseFuture;
use crate::table::Table;
use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic_blueprint_core::observer::CallObserver;
use tonic_blueprint_core::{BoxError, Fanout, ObservedBody, RpcIdentity};
use tower_service::Service;

/// Middleware that records the metrics of every call; see the [crate docs](crate).
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    table: Arc<Table>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> Metrics<S> {
    /// `inner` behind the configuration of `layer` (what [`Layer::layer`] does).
    ///
    /// [`Layer::layer`]: tower_layer::Layer::layer
    pub fn new(inner: S, layer: &crate::MetricsLayer) -> Self {
        tower_layer::Layer::layer(layer, inner)
    }

    pub(crate) fn from_table(inner: S, table: Arc<Table>) -> Self {
        Self { inner, table }
    }

    tonic_blueprint_core::inner_accessors!();
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Metrics<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Error: 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = http::Response<ObservedBody<ResBody, Fanout>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // Noted in the call's observer below, for the layers further in (not an extension).
        let id = RpcIdentity::from_request(&request).unwrap_or_else(RpcIdentity::unknown);
        let metrics = self.table.get(&id);
        let kind = metrics.kind;
        let (request, watch) =
            tonic_blueprint_core::watch_shared(request, crate::record::start(metrics));
        // For the layers further in; the kind for a logging layer without descriptors.
        if let Some(observer) = request.extensions().get::<CallObserver>() {
            observer.note_identity(id);
            observer.note_kind(kind);
        }
        ResponseFuture::new(watch, self.inner.call(request))
    }
}
