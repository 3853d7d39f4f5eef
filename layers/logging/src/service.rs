//! The service: request id, span, and the call's record.

use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::record::LogRecord;
use crate::redact::Redacted;
use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tonic_blueprint_core::deadline::client_timeout;
use tonic_blueprint_core::headers::X_REQUEST_ID;
use tonic_blueprint_core::observer::CallObserver;
use tonic_blueprint_core::trace::{self, TraceContext};
use tonic_blueprint_core::{
    BoxError, CurrentCall, Deadline, DeadlineSource, Fanout, ObservedBody, RequestId, RpcIdentity,
    RpcKind, is_infrastructure,
};
use tower_service::Service;

/// Middleware that logs every call; see the [crate docs](crate).
#[derive(Clone)]
pub struct RequestLogging<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RequestLogging<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLogging")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> RequestLogging<S> {
    /// Wraps `inner` as `layer` does.
    pub fn new(inner: S, layer: &crate::RequestLoggingLayer) -> Self {
        Self::from_config(inner, layer.config())
    }

    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    tonic_blueprint_core::inner_accessors!();
}

/// Client deadlines further away than this are not shown as a date (the largest
/// `grpc-timeout`, 99999999H, lands past year 9999, which RFC 3339 cannot write).
const MAX_SHOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

fn new_request_id() -> RequestId {
    // `NoContext`: no process-wide lock; ids stay unique through their random bits.
    let id = uuid::Uuid::new_v7(uuid::Timestamp::now(uuid::NoContext));
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    // A hyphenated UUID is always an acceptable id; the fallback only keeps this panic-free.
    RequestId::from_generated_owned(text).unwrap_or_else(|| RequestId::from_static("unassigned"))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestLogging<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Error: 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = http::Response<crate::LoggedBody<ObservedBody<ResBody, Fanout>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        // Noted in the call's observer below, for the layers further in (not an extension).
        let id = RpcIdentity::from_request(&request).unwrap_or_else(RpcIdentity::unknown);
        let kind = match RpcKind::of(request.extensions()) {
            RpcKind::Unknown => self
                .config
                .registry
                .as_ref()
                .map(|r| r.kind(&id))
                .unwrap_or_default(),
            known => known,
        };
        let request_id = match request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(RequestId::accept)
        {
            Some(id) => id,
            None => {
                let id = new_request_id();
                request
                    .headers_mut()
                    .insert(X_REQUEST_ID, id.header_value().clone());
                id
            }
        };
        let peer = tonic_blueprint_core::connection::peer_addr(request.extensions());
        let client = client_timeout(request.headers());

        let call = self.config.trace_context.then(|| {
            let trace = TraceContext::incoming(request.headers());
            let client = client.map(|timeout| Deadline::after(timeout, DeadlineSource::Client));
            // The request id and the trace ride in the call, which rides in the call's
            // observer (noted below): no extension of their own. `RequestId::from_extensions`
            // and `TraceContext::from_extensions` find them there.
            CurrentCall::new(trace, Some(request_id.clone()), client)
        });
        if call.is_none() {
            request.extensions_mut().insert(request_id.clone());
        }

        // What only the span shows is worked out only when info is on at all (the span is
        // disabled otherwise): a service logging at warn pays for none of it.
        let (span, peer_text) = if tracing::level_enabled!(tracing::Level::INFO) {
            let peer_text = crate::record::PeerText::new(peer);
            let deadline = client
                .filter(|timeout| *timeout <= MAX_SHOWN_DEADLINE)
                .and_then(|timeout| SystemTime::now().checked_add(timeout))
                .map(humantime::format_rfc3339_millis);
            let ids = call.as_ref().map(|call| {
                (
                    call.trace().trace_id().to_hex(),
                    call.trace().span_id().to_hex(),
                )
            });
            let span = tracing::info_span!(
                "grpc.request",
                grpc.service = id.service(),
                grpc.method = id.method(),
                grpc.method_type = kind.as_str(),
                // As text, unquoted in the human-readable format (as a socket address shows).
                peer.address = peer_text.as_str().map(tracing::field::display),
                request_id = request_id.as_str(),
                grpc.request.deadline = deadline.as_ref().map(tracing::field::display),
                trace_id = ids.as_ref().map(|(trace, _)| trace.as_str()),
                span_id = ids.as_ref().map(|(_, span)| span.as_str()),
                enduser.id = tracing::field::Empty,
            );
            (span, Some(peer_text))
        } else {
            (tracing::Span::none(), None)
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            let metadata = Redacted {
                headers: request.headers(),
                sensitive: &self.config.sensitive,
            };
            tracing::debug!(parent: &span, grpc.request.metadata = %metadata, "request metadata");
        }

        // The server span is recorded only when sampled and a recorder is installed.
        let recorded = call
            .as_ref()
            .filter(|call| call.trace().is_sampled() && trace::recorder().is_some())
            .map(|_| crate::record::Recorded {
                start: SystemTime::now(),
                authority: request.uri().authority().cloned(),
            });
        let watch_id = id.clone();
        let record = LogRecord {
            span: span.clone(),
            levels: self.config.levels(is_infrastructure(id.service())),
            id,
            kind,
            peer,
            peer_text,
            request_id,
            started,
            done: false,
            call: call.clone(),
            recorded,
        };
        // Echoed on the response never-indexed: a value new with every call would only churn
        // the connection's HPACK table (and evict the headers worth keeping there).
        let mut echoed = record.request_id.header_value().clone();
        echoed.set_sensitive(true);
        let (request, watch) = tonic_blueprint_core::watch(request, record);
        // For the layers further in: the identity, the kind (metrics without descriptors of
        // its own) and the call being served.
        if let Some(observer) = request.extensions().get::<CallObserver>() {
            observer.note_identity(watch_id);
            observer.note_kind(kind);
            if let Some(call) = &call {
                observer.note_call(call.clone());
            }
        }
        let future = {
            let _entered = span.enter();
            let _current = call.as_ref().map(CurrentCall::enter);
            self.inner.call(request)
        };
        // A unary or client-streaming handler has returned its one message by the time the
        // response body is polled: no code of the service runs there, so no span is entered.
        let body_in_span = !matches!(kind, RpcKind::Unary | RpcKind::ClientStreaming);
        ResponseFuture::new(watch, echoed, future, span, call, body_in_span)
    }
}
