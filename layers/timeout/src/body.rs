//! The response body: ends a stream still running at the deadline.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::Sleep;
use tonic_blueprint_core::{RpcIdentity, status_trailers};

pin_project! {
    /// Response body of [`Timeout`](crate::Timeout).
    ///
    /// Passes the handler's body through until the deadline; then drops it (cancelling the
    /// handler's stream) and ends with DEADLINE_EXCEEDED trailers.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
        timer: Option<Pin<Box<Sleep>>>,
        id: Option<RpcIdentity>,
    }
}

impl<B> TimeoutBody<B> {
    pub(crate) fn new(inner: B, timer: Option<Pin<Box<Sleep>>>, id: RpcIdentity) -> Self {
        Self {
            inner: Some(inner),
            timer,
            id: Some(id),
        }
    }
}

impl<B> Default for TimeoutBody<B> {
    /// An empty body (the body of a trailers-only rejection).
    fn default() -> Self {
        Self {
            inner: None,
            timer: None,
            id: None,
        }
    }
}

impl<B> std::fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("deadline", &self.timer.as_ref().map(|t| t.deadline()))
            .field("done", &self.inner.is_none())
            .finish()
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        // The timer comes first: a body that is always ready must not outrun its deadline.
        if let Some(timer) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                *this.timer = None;
                this.inner.set(None);
                let id = this.id.take().unwrap_or_else(RpcIdentity::unknown);
                let trailers = status_trailers(crate::deadline_exceeded(&id));
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(inner.poll_frame(cx));
        let finished = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(frame)) => frame.is_trailers(),
        };
        if finished {
            *this.timer = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            // The deadline may add trailers: an exact hint would be a lie.
            Some(inner) if self.timer.is_some() => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.size_hint().lower());
                hint
            }
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
