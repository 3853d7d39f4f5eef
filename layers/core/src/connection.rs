//! Where a call comes from: the peer address (and, behind TLS, the verified client
//! certificates) tonic stores for each connection in every request's extensions.
//!
//! A plain TCP server stores a `TcpConnectInfo`; behind TLS (tonic's own `tls_config`, or the
//! TLS acceptor of the `tonic-blueprint` server) it stores a `TlsConnectInfo<TcpConnectInfo>`.
//! Layers keyed on the peer (the rate limiter's client IP, the logs' `peer.address`) read it
//! through [`peer_addr`], which understands both (the TLS one with the feature `tls`).
//!
//! ```
//! use tonic::transport::server::{Connected, TcpConnectInfo};
//! use tonic_blueprint_core::connection::peer_addr;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
//! let (server_side, _) = listener.accept().await?;
//!
//! let mut request = http::Request::new(());
//! assert_eq!(peer_addr(request.extensions()), None);
//! request.extensions_mut().insert(server_side.connect_info());
//! assert_eq!(peer_addr(request.extensions()), Some(client.local_addr()?));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use tonic::transport::server::TcpConnectInfo;

#[cfg(feature = "tls")]
use std::sync::Arc;
#[cfg(feature = "tls")]
use tonic::transport::server::TlsConnectInfo;

/// The TCP connection info of the request's connection, plain or under TLS.
fn tcp(extensions: &http::Extensions) -> Option<&TcpConnectInfo> {
    if let Some(info) = extensions.get::<TcpConnectInfo>() {
        return Some(info);
    }
    #[cfg(feature = "tls")]
    if let Some(info) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
        return Some(info.get_ref());
    }
    None
}

/// The address of the peer (the client, or the proxy in front of it) the request came
/// through, on a plain TCP or (feature `tls`) a TLS connection.
pub fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    tcp(extensions).and_then(TcpConnectInfo::remote_addr)
}

/// The server's own address of the request's connection.
pub fn local_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    tcp(extensions).and_then(TcpConnectInfo::local_addr)
}

/// The certificate chain the client presented on a TLS connection, leaf first: verified
/// against the server's client CA when the server requires client certificates (a
/// handshake with a certificate that does not verify never reaches a request).
#[cfg(feature = "tls")]
pub fn peer_certificates(
    extensions: &http::Extensions,
) -> Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .filter(|chain| !chain.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_without_connect_info() {
        let extensions = http::Extensions::new();
        assert_eq!(peer_addr(&extensions), None);
        assert_eq!(local_addr(&extensions), None);
        #[cfg(feature = "tls")]
        assert!(peer_certificates(&extensions).is_none());
    }
}
