//! The service: metadata rules, then the message (unary) or each message (client streams).

use crate::body::{ValidatingBody, ValidationBody, Verdict};
use crate::decode::{Encoding, message_bytes};
use crate::layer::Shared;
use crate::violation::Violations;
use bytes::Bytes;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{BoxError, RpcIdentity, read_unary_request, reject};
use tower_service::Service;

/// Middleware that validates requests; see the [crate docs](crate).
#[derive(Clone)]
pub struct RequestValidation<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RequestValidation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestValidation")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> RequestValidation<S> {
    /// `inner` behind the configuration of `layer` (what [`Layer::layer`] does).
    ///
    /// [`Layer::layer`]: tower_layer::Layer::layer
    pub fn new(inner: S, layer: &crate::RequestValidationLayer) -> Self {
        tower_layer::Layer::layer(layer, inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    tonic_blueprint_core::inner_accessors!();
}

type Boxed<B, E> =
    Pin<Box<dyn Future<Output = Result<http::Response<ValidationBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`RequestValidation`]: the inner service's error type is kept.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        // Nothing to check, or a client stream checked as it flows.
        Direct { #[pin] future: F, verdict: Option<Verdict> },
        // Refused before the handler.
        Refused { response: Option<http::Response<ValidationBody<B>>> },
        // A unary message read and checked first.
        Checked { future: Boxed<B, E> },
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ValidationBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Direct { future, verdict } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(match verdict.take() {
                    // A refused message before the handler answered: answer the refusal.
                    Some(v) if v.get().is_some() => reject(
                        v.get()
                            .cloned()
                            .unwrap_or_else(|| tonic::Status::unknown("")),
                    ),
                    Some(v) => response.map(|b| ValidationBody::guarded(b, v)),
                    None => response.map(ValidationBody::inner),
                }))
            }
            StateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| reject(tonic::Status::internal("polled after completion"))))),
            StateProj::Checked { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestValidation<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = http::Response<ValidationBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let metadata_rules = self.shared.metadata.get(&id);
        let rules = self.shared.methods.get(id.path());
        let checks_messages = rules.is_some_and(|r| r.checks_messages());
        if metadata_rules.is_empty() && !checks_messages {
            return direct(
                self.inner
                    .call(request.map(tonic_blueprint_core::tonic_body)),
                None,
            );
        }
        let lang = Lang::from_headers(request.headers());
        let mut violations = Violations::new(lang);
        for rule in metadata_rules.iter() {
            rule.check(request.headers(), &mut violations);
        }
        let Some(rules) = rules.filter(|r| r.checks_messages()).cloned() else {
            if !violations.is_empty() {
                return self.refuse(&id, violations.into_status());
            }
            return direct(
                self.inner
                    .call(request.map(tonic_blueprint_core::tonic_body)),
                None,
            );
        };
        if rules.client_streaming {
            if !violations.is_empty() {
                return self.refuse(&id, violations.into_status());
            }
            let verdict = Verdict::default();
            let encoding = Encoding::of(request.headers());
            let shared = self.shared.clone();
            let request = request.map(|body| {
                tonic::body::Body::new(ValidatingBody::new(
                    body,
                    rules,
                    shared,
                    encoding,
                    lang,
                    id,
                    verdict.clone(),
                ))
            });
            return direct(self.inner.call(request), Some(verdict));
        }
        // The message must be read before the handler runs: take the ready service and go.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let future = async move {
            let (parts, body) = request.into_parts();
            let refuse = |status: tonic::Status| {
                shared.counters.increment(&id, 0);
                Ok(reject(status))
            };
            let unary = match read_unary_request(body, shared.max_message_bytes).await {
                Ok(unary) => unary,
                Err(e) => return refuse(e.to_status_in(lang)),
            };
            let message = match message_bytes(
                unary.is_compressed(),
                unary.message(),
                Encoding::of(&parts.headers),
                shared.max_message_bytes,
                lang,
            ) {
                Ok(message) => message,
                Err(status) => return refuse(status),
            };
            if let Err(status) = rules.check(&shared.validator, message, &mut violations) {
                return refuse(status);
            }
            if !violations.is_empty() {
                return refuse(violations.into_status());
            }
            let request =
                http::Request::from_parts(parts, tonic::body::Body::new(unary.into_body()));
            let response = inner.call(request).await?;
            Ok(response.map(ValidationBody::inner))
        };
        ResponseFuture {
            state: State::Checked {
                future: Box::pin(future),
            },
        }
    }
}

fn direct<F, B, E>(future: F, verdict: Option<Verdict>) -> ResponseFuture<F, B, E> {
    ResponseFuture {
        state: State::Direct { future, verdict },
    }
}

impl<S> RequestValidation<S> {
    fn refuse<F, B, E>(&self, id: &RpcIdentity, status: tonic::Status) -> ResponseFuture<F, B, E> {
        self.shared.counters.increment(id, 0);
        ResponseFuture {
            state: State::Refused {
                response: Some(reject(status)),
            },
        }
    }
}
