//! The final status of a call, reported exactly once.
//!
//! A gRPC response says how it ended in one of several places: in the response headers
//! (trailers-only), in the trailers at the end of a stream, by a body error, or not at all when
//! the client goes away first. [`observe`] wraps a response so that one callback learns which,
//! once: metrics count it, logs print it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::{Arc, Mutex};
//! use http_body_util::BodyExt;
//! use tonic_blueprint_core::{observe, reject, Outcome, OutcomeSource};
//!
//! let seen = Arc::new(Mutex::new(None));
//! let sink = seen.clone();
//! let response: http::Response<http_body_util::Empty<bytes::Bytes>> =
//!     reject(tonic::Status::not_found("no such payment"));
//! let response = observe(response, move |o: Outcome| *sink.lock().unwrap() = Some(o));
//! response.into_body().collect().await.unwrap();
//!
//! let outcome = seen.lock().unwrap().take().unwrap();
//! assert_eq!(outcome.code, tonic::Code::NotFound);
//! assert_eq!(outcome.source, OutcomeSource::Headers);
//! # });
//! ```

use crate::BoxError;
use crate::code::{code_from_headers, code_from_http_status};
use crate::frame::MessageCounter;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic::Code;

/// Where the final status came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeSource {
    /// The response headers: a trailers-only response, or a non-200 HTTP status.
    Headers,
    /// The trailers at the end of the response body.
    Trailers,
    /// The body ended without trailers (clients read this as UNKNOWN).
    EndOfStream,
    /// The body returned an error: the stream is reset and the client sees INTERNAL.
    BodyError,
    /// The response was dropped before its end: the client cancelled or disconnected.
    Dropped,
    /// The service returned an error instead of a response (tonic resets the stream).
    ServiceError,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The gRPC status code the client sees.
    pub code: Code,
    /// Where it came from.
    pub source: OutcomeSource,
    /// Complete response messages sent before the end.
    pub messages_sent: u64,
}

/// What [`observe`] calls with the outcome. Implemented for every `FnOnce(Outcome)`.
pub trait OnOutcome {
    /// Called exactly once, with the final status.
    fn on_outcome(self, outcome: Outcome);

    /// Called as response messages complete, with how many just did (live counts for long
    /// streams). Does nothing unless overridden.
    fn on_messages_sent(&mut self, _count: u64) {}
}

impl<F: FnOnce(Outcome)> OnOutcome for F {
    fn on_outcome(self, outcome: Outcome) {
        self(outcome)
    }
}

/// Wraps `response` so that `on` learns its final status exactly once.
///
/// A response whose headers already decide the status (trailers-only, or a non-200 HTTP
/// status) is reported at once.
pub fn observe<B, F>(response: http::Response<B>, on: F) -> http::Response<ObservedBody<B, F>>
where
    F: OnOutcome,
{
    let decided = if response.status() != http::StatusCode::OK {
        Some(code_from_http_status(response.status()))
    } else {
        code_from_headers(response.headers())
    };
    let on = match decided {
        Some(code) => {
            on.on_outcome(Outcome {
                code,
                source: OutcomeSource::Headers,
                messages_sent: 0,
            });
            None
        }
        None => Some(on),
    };
    response.map(|inner| ObservedBody {
        inner,
        on,
        counter: MessageCounter::default(),
    })
}

pin_project! {
    /// A response body that reports how the call ended; see [`observe`].
    pub struct ObservedBody<B, F: OnOutcome> {
        #[pin]
        inner: B,
        on: Option<F>,
        counter: MessageCounter,
    }

    impl<B, F: OnOutcome> PinnedDrop for ObservedBody<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(on) = this.on.take() {
                on.on_outcome(Outcome {
                    code: Code::Cancelled,
                    source: OutcomeSource::Dropped,
                    messages_sent: this.counter.total(),
                });
            }
        }
    }
}

impl<B, F: OnOutcome> ObservedBody<B, F> {
    /// `inner` passed through, observed by nobody (a layer whose call another layer observes).
    pub fn unobserved(inner: B) -> Self {
        Self {
            inner,
            on: None,
            counter: MessageCounter::default(),
        }
    }
}

impl<B, F: OnOutcome> std::fmt::Debug for ObservedBody<B, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody")
            .field("reported", &self.on.is_none())
            .field("messages_sent", &self.counter.total())
            .finish()
    }
}

impl<B, F> Body for ObservedBody<B, F>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    F: OnOutcome,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx)).map(|f| f.map_err(Into::into));
        if this.on.is_none() {
            return Poll::Ready(frame);
        }
        let decided = match &frame {
            Some(Ok(frame)) => match (frame.data_ref(), frame.trailers_ref()) {
                (Some(data), _) => {
                    let completed = this.counter.feed(data);
                    if completed > 0
                        && let Some(on) = this.on.as_mut()
                    {
                        on.on_messages_sent(completed);
                    }
                    None
                }
                (None, Some(trailers)) => Some((
                    code_from_headers(trailers).unwrap_or(Code::Unknown),
                    OutcomeSource::Trailers,
                )),
                (None, None) => None,
            },
            // The server resets the stream (RST_STREAM INTERNAL_ERROR), whatever the error
            // holds: clients read that as INTERNAL.
            Some(Err(_)) => Some((Code::Internal, OutcomeSource::BodyError)),
            None => Some((Code::Unknown, OutcomeSource::EndOfStream)),
        };
        if let Some((code, source)) = decided
            && let Some(on) = this.on.take()
        {
            on.on_outcome(Outcome {
                code,
                source,
                messages_sent: this.counter.total(),
            });
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<Outcome>>>;

    struct Script(VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl Body for Script {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn message() -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")))
    }

    fn trailers(code: &'static str) -> Result<Frame<Bytes>, BoxError> {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static(code));
        Ok(Frame::trailers(t))
    }

    fn run(
        frames: Vec<Result<Frame<Bytes>, BoxError>>,
    ) -> (http::Response<ObservedBody<Script, impl OnOutcome>>, Seen) {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let response = http::Response::new(Script(frames.into()));
        let observed = observe(response, move |o| sink.lock().unwrap().push(o));
        (observed, seen)
    }

    #[tokio::test]
    async fn status_in_trailers_after_messages() {
        let (response, seen) = run(vec![message(), message(), trailers("13")]);
        response.into_body().collect().await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [Outcome {
                code: Code::Internal,
                source: OutcomeSource::Trailers,
                messages_sent: 2
            }]
        );
    }

    #[tokio::test]
    async fn a_body_error_is_internal_as_the_client_sees_it() {
        let err: BoxError = Box::new(tonic::Status::data_loss("gone"));
        let (response, seen) = run(vec![message(), Err(err)]);
        assert!(response.into_body().collect().await.is_err());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].code, Code::Internal);
        assert_eq!(seen[0].source, OutcomeSource::BodyError);
    }

    #[tokio::test]
    async fn end_without_trailers_is_unknown() {
        let (response, seen) = run(vec![message()]);
        response.into_body().collect().await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(
            (seen[0].code, seen[0].source),
            (Code::Unknown, OutcomeSource::EndOfStream)
        );
    }

    #[tokio::test]
    async fn drop_before_the_end_is_cancelled_and_reported_once() {
        let (response, seen) = run(vec![message(), message(), trailers("0")]);
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [Outcome {
                code: Code::Cancelled,
                source: OutcomeSource::Dropped,
                messages_sent: 1
            }]
        );
    }

    #[tokio::test]
    async fn headers_decide_trailers_only_and_http_errors() {
        let (response, seen) = run(vec![]);
        drop(response);
        // No status in headers: reported at drop as Cancelled.
        assert_eq!(seen.lock().unwrap()[0].source, OutcomeSource::Dropped);

        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let mut response = http::Response::new(Script(VecDeque::new()));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        let response = observe(response, move |o| sink.lock().unwrap().push(o));
        drop(response);
        assert_eq!(
            *seen.lock().unwrap(),
            [Outcome {
                code: Code::Unavailable,
                source: OutcomeSource::Headers,
                messages_sent: 0
            }]
        );
    }
}
