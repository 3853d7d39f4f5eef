//! The response future.

use crate::body::RateLimitBody;
use http::HeaderValue;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

type Checking<B, E> =
    Pin<Box<dyn Future<Output = Result<http::Response<RateLimitBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<F, B, E> {
        // Admitted in process: the handler's future, and the `ratelimit` field to add.
        Allowed {
            #[pin]
            inner: F,
            remaining: Option<HeaderValue>,
        },
        // Refused: the trailers-only answer, until polled.
        Refused {
            response: Option<http::Response<RateLimitBody<B>>>,
        },
        // Checking with a remote backend, then the handler.
        Checking {
            future: Checking<B, E>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn allowed(inner: F, remaining: Option<HeaderValue>) -> Self {
        Self {
            state: State::Allowed { inner, remaining },
        }
    }

    pub(crate) fn refused(response: http::Response<RateLimitBody<B>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn checking(future: Checking<B, E>) -> Self {
        Self {
            state: State::Checking { future },
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Allowed { .. } => "allowed",
            State::Refused { .. } => "refused",
            State::Checking { .. } => "checking",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<RateLimitBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Allowed { inner, remaining } => {
                let response = ready!(inner.poll(cx))?;
                let mut response = response.map(RateLimitBody::new);
                if let Some(value) = remaining.take() {
                    response
                        .headers_mut()
                        .insert(crate::refusal::RATELIMIT, value);
                }
                Poll::Ready(Ok(response))
            }
            Proj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            Proj::Checking { future } => future.as_mut().poll(cx),
        }
    }
}
