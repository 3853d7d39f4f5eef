//! Connections the server can cut: when the shutdown grace period runs out, every connection
//! still open is closed (its reads end, its writes fail), so hyper drops the calls on it and
//! the server returns, instead of leaving those connections running in the background.

use super::coalesce::Coalesced;
use pin_project_lite::pin_project;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

pin_project! {
    /// A TCP connection that ends when its token is cancelled, its small writes coalesced
    /// ([`Coalesced`]).
    pub(crate) struct Killable {
        #[pin]
        inner: Coalesced<TcpStream>,
        // Boxed: the connection must be `Unpin` for hyper.
        killed: Pin<Box<WaitForCancellationFutureOwned>>,
        token: CancellationToken,
    }
}

impl Killable {
    pub(crate) fn new(inner: TcpStream, token: &CancellationToken) -> Self {
        Self {
            inner: Coalesced::new(inner),
            killed: Box::pin(token.clone().cancelled_owned()),
            token: token.clone(),
        }
    }
}

impl Connected for Killable {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.get_ref().connect_info()
    }
}

impl AsyncRead for Killable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.token.is_cancelled() {
            // End of stream: hyper closes the connection and drops its calls.
            return Poll::Ready(Ok(()));
        }
        match this.inner.poll_read(cx, buf) {
            // About to wait for the peer: wait for the kill too (registering the waker only
            // here keeps the busy path to one atomic load).
            Poll::Pending if this.killed.as_mut().poll(cx).is_ready() => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl AsyncWrite for Killable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.token.is_cancelled() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        this.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.token.is_cancelled() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        this.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
