//! Errors from inner tower layers as gRPC statuses.
//!
//! tonic turns a service error into a status only when the error holds a `tonic::Status`;
//! anything else resets the HTTP/2 stream, and the client sees a bare transport failure.
//! tower's own layers fail that way: `Timeout` with `Elapsed`, `LoadShed` with `Overloaded`,
//! and so does a user's own layer. [`ErrorStatusLayer`] answers every such error with a
//! trailers-only response instead: `Elapsed` is DEADLINE_EXCEEDED, `Overloaded` is
//! RESOURCE_EXHAUSTED, a `tonic::Status` is itself, anything else is INTERNAL with no detail
//! (the error is logged, never sent). Messages come from the [`catalogue`](mod@crate::catalogue) module:
//! English, with the caller's language in a LocalizedMessage detail.
//!
//! Put it outside the tower layers whose errors it should map:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use tonic_blueprint_core::ErrorStatusLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // A handler slower than tower's own Timeout, which fails with `Elapsed`.
//! let slow = service_fn(|_request: http::Request<()>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(ErrorStatusLayer::new())
//!     .timeout(Duration::from_millis(10))
//!     .service(slow);
//!
//! let response = service.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::OK); // never a stream reset
//! assert_eq!(response.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED
//! # });
//! ```

use crate::catalogue::{self, Lang, Text};
use crate::{BoxError, RefusableBody, reject};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

/// The status a client gets for `error`; see the [module docs](self).
pub fn status_for_error(error: &BoxError, lang: Lang) -> Status {
    if let Some(status) = error.downcast_ref::<Status>() {
        return status.clone();
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return catalogue::status(Code::DeadlineExceeded, Text::DeadlineExceeded, lang);
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return catalogue::status(Code::ResourceExhausted, Text::Overloaded, lang);
    }
    catalogue::status(Code::Internal, Text::Internal, lang)
}

/// Answers errors of the inner service with gRPC statuses; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorStatusLayer;

impl ErrorStatusLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ErrorStatusLayer {
    type Service = ErrorStatus<S>;

    fn layer(&self, inner: S) -> ErrorStatus<S> {
        ErrorStatus::new(inner)
    }
}

/// Middleware that answers errors of the inner service with gRPC statuses.
#[derive(Clone, Debug)]
pub struct ErrorStatus<S> {
    inner: S,
    /// An error `poll_ready` returned: the next call answers it.
    not_ready: Option<Status>,
}

impl<S> ErrorStatus<S> {
    /// `inner`, its errors answered as statuses.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            not_ready: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn answer<B>(error: BoxError, lang: Lang) -> http::Response<RefusableBody<B>> {
    let status = status_for_error(&error, lang);
    if status.code() == tonic::Code::Internal && error.downcast_ref::<Status>().is_none() {
        tracing::error!(error = %error, "an inner layer failed; answered INTERNAL");
    }
    reject(status)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ErrorStatus<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<RefusableBody<ResBody>>;
    type Error = Infallible;
    type Future = ErrorStatusFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(status_for_error(&e.into(), Lang::En));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let lang = Lang::from_headers(request.headers());
        if let Some(status) = self.not_ready.take() {
            return ErrorStatusFuture {
                state: State::Answered {
                    response: Some(reject(status)),
                },
            };
        }
        ErrorStatusFuture {
            state: State::Inner {
                future: self.inner.call(request),
                lang,
            },
        }
    }
}

pin_project! {
    /// Response future of [`ErrorStatus`].
    pub struct ErrorStatusFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F, lang: Lang },
        Answered { response: Option<http::Response<RefusableBody<B>>> },
    }
}

impl<F, B> std::fmt::Debug for ErrorStatusFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorStatusFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ErrorStatusFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<RefusableBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, lang } => match std::task::ready!(future.poll(cx)) {
                Ok(response) => Poll::Ready(Ok(response.map(RefusableBody::new))),
                Err(e) => Poll::Ready(Ok(answer(e.into(), *lang))),
            },
            StateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_errors_map_to_their_statuses_and_the_rest_says_nothing() {
        let elapsed: BoxError = tower::timeout::error::Elapsed::new().into();
        assert_eq!(
            status_for_error(&elapsed, Lang::En).code(),
            tonic::Code::DeadlineExceeded
        );
        let overloaded: BoxError = tower::load_shed::error::Overloaded::new().into();
        assert_eq!(
            status_for_error(&overloaded, Lang::En).code(),
            tonic::Code::ResourceExhausted
        );
        let status: BoxError = Status::not_found("nope").into();
        assert_eq!(status_for_error(&status, Lang::En).message(), "nope");
        let other: BoxError = "db password is hunter2".into();
        let mapped = status_for_error(&other, Lang::En);
        assert_eq!(mapped.code(), tonic::Code::Internal);
        assert!(!mapped.message().contains("hunter2"));
        let spanish = status_for_error(&elapsed, Lang::Es);
        assert_eq!(spanish.message(), "deadline exceeded");
        assert_eq!(
            tonic_types::StatusExt::get_details_localized_message(&spanish)
                .expect("LocalizedMessage")
                .message,
            "plazo excedido"
        );
    }

    /// The language of an answered error comes from the request's headers, a repeated
    /// header included.
    #[tokio::test]
    async fn an_answered_error_speaks_the_callers_language() {
        use tower::{ServiceExt, service_fn};
        let failing = service_fn(|_: http::Request<()>| async {
            Err::<http::Response<http_body_util::Empty<bytes::Bytes>>, BoxError>(
                tower::timeout::error::Elapsed::new().into(),
            )
        });
        let service = ErrorStatusLayer::new().layer(failing);
        for headers in [
            &[("grpc-accept-language", "es")][..],
            &[("accept-language", "fr"), ("accept-language", "es;q=0.5")][..],
            &[][..],
        ] {
            let mut request = http::Request::new(());
            for (name, value) in headers {
                request
                    .headers_mut()
                    .append(*name, http::HeaderValue::from_static(value));
            }
            let response = service.clone().oneshot(request).await.expect("answered");
            let status = Status::from_header_map(response.headers()).expect("trailers-only");
            assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
            let localized = tonic_types::StatusExt::get_details_localized_message(&status);
            if headers.is_empty() {
                assert!(localized.is_none(), "English needs no LocalizedMessage");
            } else {
                assert_eq!(localized.expect("Spanish").message, "plazo excedido");
            }
        }
    }
}
