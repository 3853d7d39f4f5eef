//! Write coalescing for the server's connections: the responses that become ready in one
//! pass of the runtime go out in one write.
//!
//! Why this exists: h2 does all of a connection's writing on the connection's own task and
//! flushes at the end of every poll of it. Each call's handler runs on a task of its own and,
//! when it finishes, wakes the connection task, which tokio runs next (its LIFO slot). So
//! under load every response is written by a `writev` of its own, and on loopback or a
//! virtual NIC that system call, with the wake-up of the reader it causes, costs the server
//! as much CPU as tonic's whole user-space path for the call (BENCHMARKS.md,
//! "Write coalescing"). grpc-go avoids this with its loopy writer, which flushes only when no
//! frame is left to send.
//!
//! Here a small write is kept in a per-connection buffer, and the first flush of a buffer
//! that holds bytes does not write: it wakes the task and returns `Pending`, so the task
//! goes to the back of the run queue (tokio reschedules a task that woke itself while it ran
//! after the tasks already waiting). The handlers already queued finish and hand their
//! responses to h2 first; the next flush writes them all at once. The wait is one pass of the
//! runtime's queue, not a timer: a lone call on an idle server goes out on the very next
//! poll. Writes of at least [`DIRECT`] bytes with nothing buffered go straight through
//! (large messages are not copied), and the buffer is written out without waiting whenever
//! it would pass [`HIGH_WATER`].
//!
//! tokio's `BufWriter` buffers but writes on every flush, which h2 asks for after every
//! response: the deferred first flush is what no maintained wrapper offers.

use pin_project_lite::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes of at least this many bytes go straight through when nothing is buffered.
pub(crate) const DIRECT: usize = 16 * 1024;
/// Buffered bytes beyond which the buffer is written out before more is taken.
pub(crate) const HIGH_WATER: usize = 64 * 1024;
/// A buffer whose capacity grew past this is freed once written out, so an idle
/// connection holds no more than this.
const KEPT_CAPACITY: usize = 4 * 1024;

pin_project! {
    /// An I/O object whose small writes are coalesced until the next flush after one pass
    /// of the runtime; see the [module docs](self).
    pub(crate) struct Coalesced<T> {
        #[pin]
        inner: T,
        pending: Vec<u8>,
        // How much of `pending` the inner writer took already.
        written: usize,
        // The flush of the bytes now pending was put off once already.
        deferred: bool,
    }
}

impl<T> Coalesced<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            deferred: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite> Coalesced<T> {
    /// Writes out everything buffered.
    fn poll_drain(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        while *this.written < this.pending.len() {
            let n = ready!(
                this.inner
                    .as_mut()
                    .poll_write(cx, &this.pending[*this.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *this.written += n;
        }
        *this.written = 0;
        *this.deferred = false;
        if this.pending.capacity() > KEPT_CAPACITY {
            *this.pending = Vec::new();
        } else {
            this.pending.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: `Ready(true)` when they should be buffered,
    /// `Ready(false)` when they should go straight to the inner writer.
    fn poll_room(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<bool>> {
        if self.pending.len() + len > HIGH_WATER {
            ready!(self.as_mut().poll_drain(cx))?;
        }
        Poll::Ready(Ok(!(self.pending.is_empty() && len >= DIRECT)))
    }
}

impl<T: AsyncRead> AsyncRead for Coalesced<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !ready!(self.as_mut().poll_room(cx, buf.len()))? {
            return self.project().inner.poll_write(cx, buf);
        }
        self.project().pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if !ready!(self.as_mut().poll_room(cx, len))? {
            return self.project().inner.poll_write_vectored(cx, bufs);
        }
        let pending = self.project().pending;
        pending.reserve(len);
        for buf in bufs {
            pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        // Slices are gathered into the buffer, or passed on whole to the inner writer.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            if !self.deferred {
                // One pass of the run queue: the tasks already waiting (handlers about to
                // hand over their responses) run before this one is polled again.
                *self.as_mut().project().deferred = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.as_mut().poll_drain(cx))?;
        }
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_drain(cx))?;
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_writes_wait_for_the_second_flush_and_then_go_out_together() {
        let (client, mut peer) = tokio::io::duplex(1 << 20);
        let mut conn = Coalesced::new(client);
        conn.write_all(b"first ").await.expect("write");
        conn.write_all(b"second").await.expect("write");

        // The first flush puts the write off by one pass and asks to be polled again.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut conn).poll_flush(cx))).await;
        assert!(first.is_pending());
        let mut probe = [0u8; 16];
        let nothing_yet = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut probe);
            Poll::Ready(Pin::new(&mut peer).poll_read(cx, &mut buf))
        })
        .await;
        assert!(
            nothing_yet.is_pending(),
            "bytes left before the second flush"
        );

        conn.flush().await.expect("flush");
        let mut got = [0u8; 12];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"first second");
    }

    #[tokio::test]
    async fn large_writes_pass_through_and_the_buffer_never_passes_its_high_water() {
        let (client, mut peer) = tokio::io::duplex(1 << 20);
        let mut conn = Coalesced::new(client);
        let big = vec![7u8; DIRECT];
        let n = conn.write(&big).await.expect("write");
        assert_eq!(n, DIRECT);
        assert!(conn.pending.is_empty(), "a large write was copied");

        for _ in 0..(HIGH_WATER / 1000 + 5) {
            conn.write_all(&[1u8; 1000]).await.expect("write");
            assert!(conn.pending.len() <= HIGH_WATER);
        }
        conn.shutdown().await.expect("shutdown");
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.expect("read");
        assert_eq!(all.len(), DIRECT + (HIGH_WATER / 1000 + 5) * 1000);
        assert!(all[..DIRECT].iter().all(|b| *b == 7));
        assert!(all[DIRECT..].iter().all(|b| *b == 1));
    }
}
