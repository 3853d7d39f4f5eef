//! The response body: ends a stream still running at the deadline.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tonic_blueprint_core::catalogue::Lang;
use tonic_blueprint_core::{RpcIdentity, status_trailers};

pin_project! {
    /// Response body of [`Timeout`](crate::Timeout).
    ///
    /// Passes the handler's body through until the deadline; then drops it (cancelling the
    /// handler's stream) and ends with DEADLINE_EXCEEDED trailers.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
        // Armed only once the body first waits: a unary body, ready at once, never registers
        // a timer.
        #[pin]
        timer: Option<Sleep>,
        fire_at: Option<Instant>,
        id: Option<RpcIdentity>,
        lang: Lang,
    }
}

impl<B> TimeoutBody<B> {
    pub(crate) fn new(inner: B, fire_at: Option<Instant>, id: RpcIdentity, lang: Lang) -> Self {
        Self {
            inner: Some(inner),
            timer: None,
            fire_at,
            id: Some(id),
            lang,
        }
    }
}

impl<B> Default for TimeoutBody<B> {
    /// An empty body (the body of a trailers-only rejection).
    fn default() -> Self {
        Self {
            inner: None,
            timer: None,
            fire_at: None,
            id: None,
            lang: Lang::En,
        }
    }
}

impl<B> std::fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("fire_at", &self.fire_at)
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
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let Some(fire_at) = *this.fire_at else {
            return inner.poll_frame(cx);
        };
        // The deadline comes first: a body that is always ready must not outrun it.
        let expired = match this.timer.as_mut().as_pin_mut() {
            Some(timer) => timer.poll(cx).is_ready(),
            None => Instant::now() >= fire_at,
        };
        if !expired {
            match inner.poll_frame(cx) {
                Poll::Ready(frame) => {
                    let finished = match &frame {
                        None | Some(Err(_)) => true,
                        Some(Ok(frame)) => frame.is_trailers(),
                    };
                    if finished {
                        *this.fire_at = None;
                        this.timer.set(None);
                    }
                    return Poll::Ready(frame);
                }
                Poll::Pending if this.timer.is_some() => return Poll::Pending,
                Poll::Pending => {
                    this.timer.set(Some(tokio::time::sleep_until(fire_at)));
                    let timer_ready = this
                        .timer
                        .as_mut()
                        .as_pin_mut()
                        .is_some_and(|t| t.poll(cx).is_ready());
                    if !timer_ready {
                        return Poll::Pending;
                    }
                }
            }
        }
        *this.fire_at = None;
        this.timer.set(None);
        this.inner.set(None);
        let id = this.id.take().unwrap_or_else(RpcIdentity::unknown);
        let trailers = status_trailers(crate::deadline_exceeded(&id, *this.lang));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
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
            Some(inner) if self.fire_at.is_some() => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.size_hint().lower());
                hint
            }
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
