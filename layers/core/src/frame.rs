//! gRPC message frames: the 5-byte prefix (compressed flag, big-endian length) and its message.
//!
//! [`read_unary_request`] reads a unary request body into memory with a size cap, so a layer
//! can look at the message (validation, cache keys), then gives the exact bytes back to the
//! handler with [`UnaryRequest::into_body`]. [`MessageCounter`] counts messages in a stream
//! of data chunks without buffering them.
//!
//! ```
//! # tokio_test_block_on(async {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tonic_blueprint_core::read_unary_request;
//!
//! let body = Full::new(Bytes::from_static(b"\0\0\0\0\x03abc"));
//! let request = read_unary_request(body, 1024).await.unwrap();
//! assert_eq!(request.message(), &b"abc"[..]);
//! assert!(!request.is_compressed());
//!
//! let too_big = Full::new(Bytes::from_static(b"\0\0\0\x10\0"));
//! let err = read_unary_request(too_big, 1024).await.unwrap_err();
//! assert_eq!(err.to_status().code(), tonic::Code::ResourceExhausted);
//! # });
//! # fn tokio_test_block_on(f: impl std::future::Future) { tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f); }
//! ```

use crate::BoxError;
use crate::catalogue::{self, Lang, Text};
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::{Code, Status};

/// Bytes in a message frame's prefix: one flag byte and a 4-byte big-endian length.
pub const PREFIX_LEN: usize = 5;

/// Why a request body could not be read as one gRPC message.
#[derive(Debug)]
pub enum FrameError {
    /// The message (or the body) is larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body ended inside a frame.
    Truncated,
    /// The body held no message.
    Missing,
    /// A unary body held more than one message.
    TooMany,
    /// The compressed flag was neither 0 nor 1.
    InvalidFlag(u8),
    /// Reading the body failed (the client went away or reset the stream).
    Body(BoxError),
}

impl FrameError {
    /// The status a layer answers for this error. The message says what was wrong with the
    /// request and nothing about the server.
    pub fn to_status(&self) -> Status {
        self.to_status_in(Lang::En)
    }

    /// [`FrameError::to_status`] for a caller speaking `lang`: the same English message, and
    /// the text in `lang` in a LocalizedMessage detail (see [`crate::catalogue`]).
    pub fn to_status_in(&self, lang: Lang) -> Status {
        let invalid = |text: Text| catalogue::status(Code::InvalidArgument, text, lang);
        match self {
            Self::TooLarge { limit } => catalogue::status(
                Code::ResourceExhausted,
                |lang: Lang| format!("{} ({limit} bytes)", Text::MessageTooLarge.text(lang)),
                lang,
            ),
            Self::Truncated => invalid(Text::TruncatedFrame),
            Self::Missing => invalid(Text::MissingMessage),
            Self::TooMany => invalid(Text::TooManyMessages),
            Self::InvalidFlag(_) => invalid(Text::InvalidFrameFlag),
            // The client went away: nobody reads this.
            Self::Body(_) => Status::cancelled("request body could not be read"),
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body(e) => write!(f, "request body could not be read: {e}"),
            other => f.write_str(other.to_status().message()),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Body(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// A unary request body read into memory: its one message and the exact bytes it came in.
#[derive(Debug, Clone)]
pub struct UnaryRequest {
    raw: Bytes,
    compressed: bool,
    trailers: Option<HeaderMap>,
}

impl UnaryRequest {
    /// The message bytes (compressed if [`is_compressed`](Self::is_compressed)).
    pub fn message(&self) -> Bytes {
        self.raw.slice(PREFIX_LEN..)
    }

    /// Whether the message is compressed with the request's `grpc-encoding`.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The whole body as received: prefix and message.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The body to hand on: the same bytes (and trailers, if the client sent any).
    pub fn into_body(self) -> ReplayBody {
        ReplayBody {
            data: Some(self.raw),
            trailers: self.trailers,
        }
    }
}

/// Reads a unary request body: exactly one message of at most `limit` bytes.
///
/// A frame whose prefix declares more than `limit` is refused before its bytes are read.
pub async fn read_unary_request<B>(body: B, limit: usize) -> Result<UnaryRequest, FrameError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let max_total = limit.saturating_add(PREFIX_LEN);
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total = 0usize;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FrameError::Body(e.into()))?;
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
                continue;
            }
        };
        if frame.is_empty() {
            continue;
        }
        total += frame.len();
        match &first {
            None => first = Some(frame),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&frame);
            }
        }
        let seen = if rest.is_empty() {
            first.as_deref().unwrap_or_default()
        } else {
            &rest[..]
        };
        if declared_len(seen).is_some_and(|len| len > limit) {
            return Err(FrameError::TooLarge { limit });
        }
        if total > max_total {
            return Err(FrameError::TooLarge { limit });
        }
    }
    let raw = if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    };
    let compressed = check_single_frame(&raw)?;
    Ok(UnaryRequest {
        raw,
        compressed,
        trailers,
    })
}

fn declared_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(1..PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix) as usize)
}

fn check_single_frame(raw: &[u8]) -> Result<bool, FrameError> {
    if raw.is_empty() {
        return Err(FrameError::Missing);
    }
    let len = declared_len(raw).ok_or(FrameError::Truncated)?;
    let compressed = match raw[0] {
        0 => false,
        1 => true,
        flag => return Err(FrameError::InvalidFlag(flag)),
    };
    let end = PREFIX_LEN + len;
    if raw.len() < end {
        return Err(FrameError::Truncated);
    }
    if raw.len() > end {
        return Err(FrameError::TooMany);
    }
    Ok(compressed)
}

/// A request body replayed from memory: one data chunk, then the trailers if any.
#[derive(Debug, Default)]
pub struct ReplayBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = self.data.as_ref().map_or(0, |d| d.len() as u64);
        http_body::SizeHint::with_exact(len)
    }
}

/// What a [`CountedBody`] reports: the messages it passes on and, once, that the request
/// stream failed. Implemented for every `FnMut(u64)` (messages only).
pub trait RequestEvents {
    /// `count` more complete messages arrived.
    fn messages(&mut self, count: u64);

    /// The request stream failed: the client reset it or its connection went away, so the
    /// call is the client's `Canceled` whatever the handler answers. Does nothing unless
    /// overridden.
    fn failed(&mut self) {}
}

impl<F: FnMut(u64)> RequestEvents for F {
    fn messages(&mut self, count: u64) {
        self(count)
    }
}

pin_project_lite::pin_project! {
    /// A request body that reports each complete message it passes on (for received-message
    /// counts), without buffering, and a failure of the request stream.
    pub struct CountedBody<B, F> {
        #[pin]
        inner: B,
        counter: MessageCounter,
        on_messages: F,
    }
}

impl<B, F: RequestEvents> CountedBody<B, F> {
    /// Wraps `inner`; `on_messages` is told the number of messages each chunk completed.
    pub fn new(inner: B, on_messages: F) -> Self {
        Self {
            inner,
            counter: MessageCounter::default(),
            on_messages,
        }
    }
}

impl<B, F> fmt::Debug for CountedBody<B, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountedBody")
            .field("messages", &self.counter.total())
            .finish()
    }
}

impl<B, F> Body for CountedBody<B, F>
where
    B: Body<Data = Bytes>,
    F: RequestEvents,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let completed = this.counter.feed(data);
                    if completed > 0 {
                        this.on_messages.messages(completed);
                    }
                }
            }
            Some(Err(_)) => this.on_messages.failed(),
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts complete gRPC messages in a stream of data chunks, without buffering them.
///
/// ```
/// use tonic_blueprint_core::MessageCounter;
///
/// let mut counter = MessageCounter::default();
/// // Two messages ("ab" and an empty one), split across chunks at awkward places.
/// assert_eq!(counter.feed(b"\0\0\0"), 0);
/// assert_eq!(counter.feed(b"\0\x02a"), 0);
/// assert_eq!(counter.feed(b"b\0\0\0\0\0"), 2);
/// assert_eq!(counter.total(), 2);
/// ```
#[derive(Debug, Default, Clone)]
pub struct MessageCounter {
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    remaining: usize,
    total: u64,
}

impl MessageCounter {
    /// Feeds a data chunk; returns how many messages it completed.
    pub fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len());
                self.remaining -= take;
                data.advance(take);
                if self.remaining == 0 {
                    done += 1;
                }
                continue;
            }
            let take = (PREFIX_LEN - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data.advance(take);
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                let len = declared_len(&self.prefix).unwrap_or(0);
                if len == 0 {
                    done += 1;
                } else {
                    self.remaining = len;
                }
            }
        }
        self.total += done;
        done
    }

    /// Messages completed so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A body that yields the given chunks one by one, then optionally an error.
    struct Chunks {
        parts: VecDeque<Bytes>,
        fail: bool,
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks {
            parts: parts.iter().map(|p| Bytes::from_static(p)).collect(),
            fail: false,
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if let Some(part) = self.parts.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(part))));
            }
            if std::mem::take(&mut self.fail) {
                return Poll::Ready(Some(Err("connection reset".into())));
            }
            Poll::Ready(None)
        }
    }

    #[tokio::test]
    async fn reads_one_message_split_across_chunks_and_replays_it() {
        let body = chunks(&[b"\0\0\0", b"\0\x04ab", b"cd"]);
        let request = read_unary_request(body, 16).await.unwrap();
        assert_eq!(request.message(), &b"abcd"[..]);
        assert_eq!(request.raw(), &b"\0\0\0\0\x04abcd"[..]);
        let replay = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(replay, &b"\0\0\0\0\x04abcd"[..]);
    }

    #[tokio::test]
    async fn refuses_a_declared_length_above_the_limit_before_reading_it() {
        // The prefix says 1 MiB; only the prefix is ever sent.
        let mut body = chunks(&[b"\0\0\x10\0\0"]);
        body.fail = true; // reading further would fail: it must not get there
        let err = read_unary_request(body, 1024).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { limit: 1024 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn malformed_bodies_have_clear_errors() {
        let cases: [(&[&'static [u8]], tonic::Code); 6] = [
            (&[], tonic::Code::InvalidArgument),
            (&[b"\0\0"], tonic::Code::InvalidArgument),
            (&[b"\0\0\0\0\x05ab"], tonic::Code::InvalidArgument),
            (&[b"\x07\0\0\0\0"], tonic::Code::InvalidArgument),
            (&[b"\0\0\0\0\x01a\0\0\0\0\0"], tonic::Code::InvalidArgument),
            (
                &[b"\0\0\0\0\x01a", &[0; 64]],
                tonic::Code::ResourceExhausted,
            ),
        ];
        for (parts, code) in cases {
            let err = read_unary_request(chunks(parts), 16).await.unwrap_err();
            assert_eq!(err.to_status().code(), code, "{parts:?}: {err}");
        }
    }

    #[test]
    fn statuses_say_english_and_localize_the_rest() {
        use tonic_types::StatusExt;
        let err = FrameError::TooLarge { limit: 16 };
        assert_eq!(
            err.to_status().message(),
            err.to_status_in(Lang::Es).message()
        );
        assert_eq!(
            err.to_status().message(),
            "request message is larger than the limit (16 bytes)"
        );
        assert!(err.to_status().details().is_empty());
        let localized = err
            .to_status_in(Lang::Es)
            .get_details_localized_message()
            .expect("LocalizedMessage");
        assert_eq!(
            (localized.locale.as_str(), localized.message.as_str()),
            (
                "es",
                "el mensaje de la petición supera el límite (16 bytes)"
            )
        );
    }

    #[tokio::test]
    async fn body_errors_are_reported_not_panicked() {
        let mut body = chunks(&[b"\0\0"]);
        body.fail = true;
        let err = read_unary_request(body, 16).await.unwrap_err();
        assert!(matches!(err, FrameError::Body(_)));
        assert_eq!(err.to_status().code(), tonic::Code::Cancelled);
        assert!(!err.to_status().message().contains("reset"));
    }

    #[test]
    fn counter_counts_messages_across_chunk_boundaries() {
        let mut one_stream = Vec::new();
        for len in [0usize, 1, 300, 70_000] {
            one_stream.push(0u8);
            one_stream.extend_from_slice(&(len as u32).to_be_bytes());
            one_stream.extend(std::iter::repeat_n(9u8, len));
        }
        for chunk_size in [1, 2, 5, 7, 4096, one_stream.len()] {
            let mut counter = MessageCounter::default();
            for chunk in one_stream.chunks(chunk_size) {
                counter.feed(chunk);
            }
            assert_eq!(counter.total(), 4, "chunk size {chunk_size}");
        }
    }
}
