//! TLS and credentials on NATS connections (features `nats` and `events`): shared by the
//! events helper and the cache's invalidation broadcast.
//!
//! async-nats always carries rustls (on ring here): a `tls://` URL requires TLS, and a server
//! that announces `tls_required` gets TLS with a `nats://` URL too; either way the server's
//! certificate is verified against the CA file when one is given, else the system's roots.
//! A `tls://` URL to a server that does not speak TLS fails to connect: never plaintext.

use async_nats::ConnectOptions;
use std::path::Path;

/// The TLS and credential settings of a NATS connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NatsSecurity<'a> {
    /// PEM CA certificates the server's certificate must chain to.
    pub(crate) ca_file: Option<&'a Path>,
    /// A PEM client certificate chain and its key.
    pub(crate) client_cert: Option<(&'a Path, &'a Path)>,
    /// A `.creds` file (user JWT and NKey seed).
    pub(crate) creds_file: Option<&'a Path>,
}

/// Whether any of the comma-separated `urls` is `tls://`.
pub(crate) fn asks_for_tls(urls: &str) -> bool {
    urls.split(',').any(|url| {
        url.trim()
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("tls://"))
    })
}

/// `options` with the files of `security`, each checked readable first so that a wrong path
/// is named at once rather than as a failed handshake; TLS required when a URL is `tls://`.
pub(crate) async fn secure(
    mut options: ConnectOptions,
    urls: &str,
    security: NatsSecurity<'_>,
) -> Result<ConnectOptions, String> {
    let readable = |what: &str, path: &Path| {
        std::fs::metadata(path)
            .map(|_| ())
            .map_err(|e| format!("{what} {}: cannot be read: {e}", path.display()))
    };
    if asks_for_tls(urls) {
        options = options.require_tls(true);
    }
    if let Some(ca) = security.ca_file {
        readable("the NATS CA file", ca)?;
        options = options.add_root_certificates(ca.to_owned());
    }
    if let Some((cert, key)) = security.client_cert {
        readable("the NATS client certificate", cert)?;
        readable("the NATS client key", key)?;
        options = options.add_client_certificate(cert.to_owned(), key.to_owned());
    }
    if let Some(creds) = security.creds_file {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| format!("the NATS credentials file {}: {e}", creds.display()))?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_are_recognised() {
        assert!(asks_for_tls("tls://a:4222"));
        assert!(asks_for_tls("nats://a:4222, TLS://b:4222"));
        assert!(!asks_for_tls("nats://a:4222"));
        assert!(!asks_for_tls(""));
    }
}
