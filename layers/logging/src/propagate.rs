//! The outgoing side: a layer for tonic channels that carries the call being served on to
//! the calls its handler makes.
//!
//! [`PropagateLayer`] wraps a [`Channel`](tonic::transport::Channel) (or any client service).
//! When a request goes out while a call is being served (the
//! [`CurrentCall`] the RequestLogging layer makes current
//! while the handler runs, or one put in the request's extensions), it adds:
//!
//! - `traceparent` (and the caller's `tracestate` and `baggage`): the callee's span joins the
//!   same trace, as a child of this call;
//! - `x-request-id`: the callee logs the same request id;
//! - `grpc-timeout`: what is left of this call's deadline (the effective one from the Timeout
//!   layer when [`CurrentCallLayer`](tonic_blueprint_core::CurrentCallLayer) noted it, else
//!   the client's `grpc-timeout`), or the request's own timeout when that is shorter. A call
//!   whose deadline has already passed fails at once with `DEADLINE_EXCEEDED`, without
//!   going out.
//!
//! Headers the request already has are kept. Outside a call it adds nothing.
//!
//! When the call is sampled and a span recorder is installed (the umbrella's `otel` feature),
//! the outgoing call is recorded as a client span (`<pkg.Service>/<Method>`, `rpc.*`
//! attributes, `server.address`), and the callee's parent is that span.
//!
//! The current call is a thread's, during a poll of the handler's future or response stream:
//! a handler that spawns a task to make the call wraps it in
//! [`CurrentCall::scope`].
//!
//! ```no_run
//! use tonic::transport::Endpoint;
//! use tonic_blueprint_logging::PropagateLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::from_static("http://ledger:50051");
//! let channel = ServiceBuilder::new()
//!     .layer(PropagateLayer::new().target(endpoint.uri()))
//!     .service(endpoint.connect_lazy());
//! // let client = LedgerClient::new(channel); // every call carries the trace, id and deadline
//! # let _ = channel;
//! # Ok(()) }
//! ```

use http::uri::Authority;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;
use tonic::Code;
use tonic_blueprint_core::code::code_from_error;
use tonic_blueprint_core::deadline::client_timeout;
use tonic_blueprint_core::headers::{GRPC_TIMEOUT, X_REQUEST_ID};
use tonic_blueprint_core::trace::{
    self, Attribute, FinishedSpan, SpanKind, TRACEPARENT, TraceContext,
};
use tonic_blueprint_core::{
    BoxError, CurrentCall, ObservedBody, OnOutcome, Outcome, RpcIdentity, code_label,
    encode_grpc_timeout, observe,
};
use tower_layer::Layer;
use tower_service::Service;

/// Carries the current call's trace, request id and deadline on to outgoing calls; see the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct PropagateLayer {
    target: Option<Authority>,
}

impl PropagateLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server the channel calls (the endpoint's URI), for the client span's
    /// `server.address` and `server.port`: a tonic client's requests name only the path
    /// until the channel adds its origin.
    pub fn target(mut self, uri: &http::Uri) -> Self {
        self.target = uri.authority().cloned();
        self
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Propagate<S> {
        Propagate::new(inner, self)
    }
}

/// The service of [`PropagateLayer`].
#[derive(Clone, Debug)]
pub struct Propagate<S> {
    inner: S,
    target: Option<Authority>,
}

impl<S> Propagate<S> {
    /// Wraps `inner` (a channel) as `layer` does.
    pub fn new(inner: S, layer: &PropagateLayer) -> Self {
        Self {
            inner,
            target: layer.target.clone(),
        }
    }

    /// The layer.
    pub fn layer() -> PropagateLayer {
        PropagateLayer::new()
    }

    tonic_blueprint_core::inner_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Propagate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ObservedBody<ResBody, ClientSpan>>;
    type Error = BoxError;
    type Future = PropagateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let call = CurrentCall::from_extensions(request.extensions())
            .cloned()
            .or_else(CurrentCall::get);
        let Some(call) = call else {
            return PropagateFuture::sent(self.inner.call(request), ClientSpan(None));
        };
        // A recorded client span is the callee's parent; otherwise the server span is.
        let recording = call.trace().is_sampled() && trace::recorder().is_some();
        let child = recording.then(|| call.trace().child());
        let headers = request.headers_mut();
        if !headers.contains_key(TRACEPARENT) {
            child.as_ref().unwrap_or(call.trace()).inject(headers);
        }
        if !headers.contains_key(X_REQUEST_ID)
            && let Some(id) = call.request_id()
        {
            headers.insert(X_REQUEST_ID, id.header_value().clone());
        }
        let span = ClientSpan(child.map(|context| {
            Started {
                context,
                start: SystemTime::now(),
                id: RpcIdentity::from_request(&request),
                authority: request
                    .uri()
                    .authority()
                    .cloned()
                    .or_else(|| self.target.clone()),
            }
        }));
        if let Some(deadline) = call.deadline() {
            let left = deadline.remaining();
            if left.is_zero() {
                span.finish(Code::DeadlineExceeded);
                return PropagateFuture::expired();
            }
            let own = client_timeout(request.headers());
            if own.is_none_or(|own| left < own) {
                let value: HeaderValue = encode_grpc_timeout(left);
                request.headers_mut().insert(GRPC_TIMEOUT, value);
            }
        }
        PropagateFuture::sent(self.inner.call(request), span)
    }
}

pin_project! {
    /// Response future of [`Propagate`].
    pub struct PropagateFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Sent {
            #[pin]
            inner: F,
            span: Option<ClientSpan>,
        },
        Expired,
    }
}

impl<F> PropagateFuture<F> {
    fn sent(inner: F, span: ClientSpan) -> Self {
        Self {
            state: State::Sent {
                inner,
                span: Some(span),
            },
        }
    }

    fn expired() -> Self {
        Self {
            state: State::Expired,
        }
    }
}

impl<F> std::fmt::Debug for PropagateFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropagateFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for PropagateFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ObservedBody<B, ClientSpan>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Expired => Poll::Ready(Err(Box::new(tonic::Status::deadline_exceeded(
                "the deadline of the call being served has passed",
            )))),
            StateProj::Sent { inner, span } => {
                let result = ready!(inner.poll(cx));
                let span = span.take().unwrap_or(ClientSpan(None));
                Poll::Ready(match result {
                    Ok(response) => Ok(observe(response, span)),
                    Err(err) => {
                        let err: BoxError = err.into();
                        span.finish(code_from_error(err.as_ref()).unwrap_or(Code::Unavailable));
                        Err(err)
                    }
                })
            }
        }
    }
}

/// The client span of one outgoing call, recorded when its response ends (nothing when the
/// call is not recorded). Opaque; it appears in [`Propagate`]'s response body type.
#[derive(Debug)]
pub struct ClientSpan(Option<Started>);

#[derive(Debug)]
struct Started {
    context: TraceContext,
    start: SystemTime,
    id: Option<RpcIdentity>,
    authority: Option<Authority>,
}

impl ClientSpan {
    fn finish(self, code: Code) {
        let Some(started) = self.0 else {
            return;
        };
        let (service, method) = started
            .id
            .as_ref()
            .map_or(("unknown", "unknown"), |id| (id.service(), id.method()));
        let name = format!("{service}/{method}");
        let mut attributes = Vec::with_capacity(6);
        attributes.extend([
            Attribute::str("rpc.system", "grpc"),
            Attribute::str("rpc.service", service),
            Attribute::str("rpc.method", method),
            Attribute::i64("rpc.grpc.status_code", i64::from(i32::from(code))),
        ]);
        if let Some(authority) = &started.authority {
            attributes.push(Attribute::str("server.address", authority.host()));
            if let Some(port) = authority.port_u16() {
                attributes.push(Attribute::i64("server.port", i64::from(port)));
            }
        }
        trace::record(&FinishedSpan {
            name: &name,
            kind: SpanKind::Client,
            context: &started.context,
            start: started.start,
            end: SystemTime::now(),
            attributes: &attributes,
            // On the client side every code but OK is an error (OpenTelemetry RPC conventions).
            error: (code != Code::Ok).then(|| code_label(code)),
        });
    }
}

impl OnOutcome for ClientSpan {
    fn on_outcome(self, outcome: Outcome) {
        self.finish(outcome.code);
    }
}
