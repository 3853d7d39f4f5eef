//! Client streams validated message by message, and the response body that ends a call
//! with the validation status once a streamed message was refused.

use crate::decode::{Encoding, message_bytes, too_large};
use crate::layer::Shared;
use crate::rules::MethodRules;
use crate::violation::{Violations, plain};
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use tonic::{Code, Status};
use tonic_blueprint_core::catalogue::{Lang, Text};
use tonic_blueprint_core::frame::PREFIX_LEN;
use tonic_blueprint_core::{BoxError, RpcIdentity, status_trailers};

/// Where a refused streamed message leaves its status for the response side.
pub(crate) type Verdict = Arc<OnceLock<Status>>;

pin_project! {
    /// A client stream's request body: hands on each message frame, unchanged, once it is
    /// whole and valid; the first invalid one ends the stream with its status.
    pub(crate) struct ValidatingBody<B> {
        #[pin]
        inner: B,
        buffer: BytesMut,
        rules: Arc<MethodRules>,
        shared: Arc<Shared>,
        encoding: Encoding,
        lang: Lang,
        id: RpcIdentity,
        verdict: Verdict,
        failed: bool,
    }
}

impl<B> ValidatingBody<B> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        inner: B,
        rules: Arc<MethodRules>,
        shared: Arc<Shared>,
        encoding: Encoding,
        lang: Lang,
        id: RpcIdentity,
        verdict: Verdict,
    ) -> Self {
        Self {
            inner,
            buffer: BytesMut::new(),
            rules,
            shared,
            encoding,
            lang,
            id,
            verdict,
            failed: false,
        }
    }
}

/// The next whole frame in `buffer`, checked; `Ok(None)` when more bytes are needed.
fn next_frame(
    buffer: &mut BytesMut,
    rules: &MethodRules,
    shared: &Shared,
    encoding: Encoding,
    lang: Lang,
) -> Result<Option<Bytes>, Status> {
    if buffer.len() < PREFIX_LEN {
        return Ok(None);
    }
    let flag = buffer[0];
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if flag > 1 {
        return Err(plain(Code::InvalidArgument, Text::InvalidFrameFlag, lang));
    }
    if len > shared.max_message_bytes {
        return Err(too_large(shared.max_message_bytes, lang));
    }
    if buffer.len() < PREFIX_LEN + len {
        buffer.reserve(PREFIX_LEN + len - buffer.len());
        return Ok(None);
    }
    let frame = buffer.split_to(PREFIX_LEN + len).freeze();
    if rules.checks_messages() {
        let message = message_bytes(
            flag == 1,
            frame.slice(PREFIX_LEN..),
            encoding,
            shared.max_message_bytes,
            lang,
        )?;
        let mut violations = Violations::new(lang);
        rules.check(&shared.validator, message, &mut violations)?;
        if !violations.is_empty() {
            return Err(violations.into_status());
        }
    }
    Ok(Some(frame))
}

impl<B> ValidatingBody<B> {
    fn fail(self: Pin<&mut Self>, status: Status) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        *this.failed = true;
        this.shared.counters.increment(this.id, 0);
        let _ = this.verdict.set(status.clone());
        Poll::Ready(Some(Err(Box::new(status))))
    }
}

impl<B> Body for ValidatingBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.failed {
                return Poll::Ready(None);
            }
            let this = self.as_mut().project();
            match next_frame(
                this.buffer,
                this.rules,
                this.shared,
                *this.encoding,
                *this.lang,
            ) {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                Ok(None) => {}
                Err(status) => return self.fail(status),
            }
            let this = self.as_mut().project();
            match ready!(this.inner.poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        while data.has_remaining() {
                            let chunk = data.chunk().len();
                            this.buffer.extend_from_slice(data.chunk());
                            data.advance(chunk);
                        }
                    }
                    Err(frame) => {
                        if !this.buffer.is_empty() {
                            let lang = *this.lang;
                            return self.fail(plain(
                                Code::InvalidArgument,
                                Text::TruncatedFrame,
                                lang,
                            ));
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    if this.buffer.is_empty() {
                        return Poll::Ready(None);
                    }
                    let lang = *this.lang;
                    return self.fail(plain(Code::InvalidArgument, Text::TruncatedFrame, lang));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.buffer.is_empty() && self.inner.is_end_stream())
    }
}

pin_project! {
    /// The response body of a validated method: the handler's, except that once a streamed
    /// request message was refused, the call ends with that refusal's status.
    pub struct ValidationBody<B> {
        #[pin]
        inner: Option<B>,
        verdict: Option<Verdict>,
        done: bool,
    }
}

impl<B> Default for ValidationBody<B> {
    /// An empty body (for trailers-only refusals).
    fn default() -> Self {
        Self {
            inner: None,
            verdict: None,
            done: true,
        }
    }
}

impl<B> ValidationBody<B> {
    pub(crate) fn inner(inner: B) -> Self {
        Self {
            inner: Some(inner),
            verdict: None,
            done: false,
        }
    }

    pub(crate) fn guarded(inner: B, verdict: Verdict) -> Self {
        Self {
            inner: Some(inner),
            verdict: Some(verdict),
            done: false,
        }
    }
}

/// The trailers that end a call whose streamed message was refused, if one was.
fn refusal_trailers(verdict: Option<&Verdict>) -> Option<HeaderMap> {
    verdict
        .and_then(|v| v.get())
        .map(|status| status_trailers(status.clone()))
}

impl<B> Body for ValidationBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(trailers) = refusal_trailers(this.verdict.as_ref()) {
            *this.done = true;
            this.inner.set(None);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            *this.done = true;
            return Poll::Ready(None);
        };
        match ready!(inner.poll_frame(cx)) {
            Some(Ok(frame)) if frame.is_trailers() => {
                *this.done = true;
                // The handler may have answered before seeing the refused message's error.
                let trailers = refusal_trailers(this.verdict.as_ref());
                Poll::Ready(Some(Ok(trailers.map_or(frame, Frame::trailers))))
            }
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Err(e)) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) if self.verdict.is_none() => inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}
