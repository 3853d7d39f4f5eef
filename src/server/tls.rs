//! TLS for the gRPC server (feature `tls`): rustls on ring, the build's one crypto stack.
//!
//! With `TLS_CERT_FILE` and `TLS_KEY_FILE` set, [`Server`](super::Server) speaks only TLS
//! (1.2 and 1.3, ALPN `h2`) on `GRPC_ADDR`. With `TLS_CLIENT_CA_FILE` too, every client must
//! present a certificate that chains to one of those CAs (mutual TLS); a handshake without
//! one, or with one from another CA, fails before any call. The preset's auth layer then
//! takes a caller that sends no token to be the certificate's subject common name (or its
//! first subject alternative name, `AUTH_MTLS_IDENTITY=san`): see [`client_identity`].
//!
//! The files are read again every `TLS_RELOAD_SECONDS` (10 s; only when their content
//! changed) and at once on SIGHUP or [`Running::reload_tls`](super::Running::reload_tls):
//! new connections get the new certificate, open connections keep theirs and are never
//! dropped. A reload that fails (a key that does not match its certificate, a half-written
//! file) is logged and the previous certificate stays in use.
//!
//! Handshakes run concurrently (at most [`MAX_PENDING_HANDSHAKES`] at once), each within
//! [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the accept loop. Handlers
//! and layers find the peer as usual: the connection info is tonic's
//! `TlsConnectInfo<TcpConnectInfo>`, so `request.remote_addr()` and `request.peer_certs()`
//! work, and so does [`peer_addr`](crate::core::connection::peer_addr).
//!
//! ```no_run
//! use tonic_blueprint::config::Loader;
//! use tonic_blueprint::server::tls::server_config;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Loader::from_pairs([
//!     ("TLS_CERT_FILE", "/etc/payments/tls/tls.crt"),
//!     ("TLS_KEY_FILE", "/etc/payments/tls/tls.key"),
//!     ("TLS_CLIENT_CA_FILE", "/etc/payments/tls/clients-ca.crt"),
//! ])
//! .load()?;
//! // What `Server::start` builds from these variables; each error names its variable.
//! let rustls_config = server_config(&config.tls)?;
//! assert_eq!(rustls_config.alpn_protocols, [b"h2".to_vec()]);
//! # Ok(()) }
//! ```

use super::ServeError;
use super::connections::Killable;
use crate::config::TlsSection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic_blueprint_core::{AuthMethod, Identity};

/// The longest a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; past it, new connections wait in the listen backlog.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// The crypto provider of every TLS configuration the kit builds: ring.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(variable: &'static str, path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::Tls {
        variable,
        reason: format!("{}: {reason}", path.display()),
    }
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| tls_error(variable, path, format!("cannot be read: {e}")))
}

/// Every PEM certificate in `pem` (the file of `variable`), at least one.
pub(crate) fn certificates(
    variable: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(variable, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(variable, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The first PEM private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(
    variable: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, ServeError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        tls_error(
            variable,
            path,
            format!("holds no usable PEM private key: {e}"),
        )
    })
}

/// The CA certificates of `pem` as trust anchors.
pub(crate) fn roots(
    variable: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<RootCertStore, ServeError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(variable, path, pem)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(variable, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The contents of the server's TLS files.
#[derive(Hash)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    fn read(section: &TlsSection) -> Result<Self, ServeError> {
        let client_ca = Some(section.client_ca_file.trim())
            .filter(|f| !f.is_empty())
            .map(|f| read("TLS_CLIENT_CA_FILE", Path::new(f)))
            .transpose()?;
        Ok(Self {
            cert: read("TLS_CERT_FILE", Path::new(section.cert_file.trim()))?,
            key: read("TLS_KEY_FILE", Path::new(section.key_file.trim()))?,
            client_ca,
        })
    }

    fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    fn server_config(&self, section: &TlsSection) -> Result<ServerConfig, ServeError> {
        let cert_path = Path::new(section.cert_file.trim());
        let key_path = Path::new(section.key_file.trim());
        let chain = certificates("TLS_CERT_FILE", cert_path, &self.cert)?;
        let key = private_key("TLS_KEY_FILE", key_path, &self.key)?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS_CERT_FILE", cert_path, e))?;
        let builder = match &self.client_ca {
            Some(pem) => {
                let ca_path = Path::new(section.client_ca_file.trim());
                let roots = roots("TLS_CLIENT_CA_FILE", ca_path, pem)?;
                // Client certificates required: a client without one fails the handshake.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| tls_error("TLS_CLIENT_CA_FILE", ca_path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            tls_error(
                "TLS_KEY_FILE",
                key_path,
                format!(
                    "does not go with TLS_CERT_FILE {}: {e}",
                    cert_path.display()
                ),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The rustls server configuration of `section` (`TLS_CERT_FILE`, `TLS_KEY_FILE`, optional
/// `TLS_CLIENT_CA_FILE`): TLS 1.2 and 1.3 on ring, ALPN `h2`, client certificates required
/// and verified when a client CA is set. Each error names its variable and file.
pub fn server_config(section: &TlsSection) -> Result<ServerConfig, ServeError> {
    Files::read(section)?.server_config(section)
}

/// The server's TLS configuration, swapped whole on reload: a handshake takes the one current
/// when it starts, so open connections keep theirs.
pub(crate) struct Reloadable {
    section: TlsSection,
    current: RwLock<Arc<ServerConfig>>,
    fingerprint: Mutex<u64>,
}

impl std::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("cert_file", &self.section.cert_file)
            .field("client_ca_file", &self.section.client_ca_file)
            .finish_non_exhaustive()
    }
}

impl Reloadable {
    pub(crate) fn load(section: &TlsSection) -> Result<Self, ServeError> {
        let files = Files::read(section)?;
        let config = files.server_config(section)?;
        Ok(Self {
            section: section.clone(),
            current: RwLock::new(Arc::new(config)),
            fingerprint: Mutex::new(files.fingerprint()),
        })
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and, when `always` or when their content changed, makes them the
    /// configuration of new handshakes. A failure keeps the current configuration.
    pub(crate) fn reload(&self, always: bool) -> Result<bool, ServeError> {
        let files = Files::read(&self.section)?;
        let fingerprint = files.fingerprint();
        {
            let mut last = self
                .fingerprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !always && *last == fingerprint {
                return Ok(false);
            }
            // Remembered even if it fails: the next change (the key written after the
            // certificate) is tried again, the same broken files are not.
            *last = fingerprint;
        }
        let config = files.server_config(&self.section)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(true)
    }

    fn reload_logged(&self, always: bool, why: &str) {
        match self.reload(always) {
            Ok(true) => tracing::info!(
                tls.cert_file = %self.section.cert_file,
                reason = why,
                "TLS certificate reloaded; new connections use it"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(
                error = %e,
                reason = why,
                "TLS certificate reload failed; the previous certificate stays in use"
            ),
        }
    }
}

/// Reloads on SIGHUP, and every `every` when the files changed, until `stop`.
pub(crate) fn spawn_reloader(
    tls: Arc<Reloadable>,
    every: Option<Duration>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // Listening before `start` returns: a SIGHUP from then on reloads (never kills).
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are reloaded on change only");
            None
        }
    };
    tokio::spawn(async move {
        let mut tick = every.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            #[cfg(unix)]
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup_received = std::future::pending::<Option<()>>();
            let ticked = async {
                match tick.as_mut() {
                    Some(interval) => interval.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(()) = hangup_received => tls.reload_logged(true, "SIGHUP"),
                _ = ticked => tls.reload_logged(false, "files changed"),
            }
        }
    })
}

/// The listener's connections after their TLS handshake, each closable through `kill`. Ends
/// (and closes the listener) when tonic drops the stream at shutdown.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Arc<Reloadable>,
    kill: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<Killable>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, tls, kill, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

type Accepted = mpsc::Sender<Result<TlsStream<Killable>, std::io::Error>>;

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<Reloadable>,
    kill: CancellationToken,
    tx: Accepted,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a connection failed");
                // Out of file descriptors and the like: do not spin.
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = tls.current();
        let kill = kill.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            handshake(Killable::new(stream, &kill), peer, config, &kill, &tx).await;
        });
    }
}

async fn handshake(
    stream: Killable,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    kill: &CancellationToken,
    tx: &Accepted,
) {
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let result = tokio::select! {
        _ = kill.cancelled() => return,
        _ = tx.closed() => return,
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept) => result,
    };
    match result {
        Ok(Ok(stream)) => {
            let _ = tx.send(Ok(stream)).await;
        }
        // A probe that connects and leaves says nothing: not worth a line at info.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(peer.address = %peer, error = %e, "TLS handshake ended by the client");
        }
        Ok(Err(e)) => {
            tracing::info!(peer.address = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            tracing::info!(peer.address = %peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
        }
    }
}

/// Which part of a verified client certificate names the caller (`AUTH_MTLS_IDENTITY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MtlsIdentity {
    /// The subject's common name (`cn`).
    CommonName,
    /// The first subject alternative name: a URI (such as a SPIFFE id), else a DNS name,
    /// else an email address (`san`).
    SubjectAltName,
}

impl MtlsIdentity {
    /// `cn` or `san`; `None` for `off` and anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "cn" => Some(Self::CommonName),
            "san" => Some(Self::SubjectAltName),
            _ => None,
        }
    }
}

/// The caller named by the verified client certificate of the request's connection
/// ([`AuthMethod::MutualTls`]), or `None` on a connection without one or a certificate
/// without that name. The preset's auth layer asks it (through
/// [`AuthLayer::peer_identity`](crate::auth::AuthLayer::peer_identity)) for calls that carry
/// no token, when `TLS_CLIENT_CA_FILE` is set.
pub fn client_identity(extensions: &http::Extensions, from: MtlsIdentity) -> Option<Identity> {
    let chain = crate::core::connection::peer_certificates(extensions)?;
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let name = match from {
        MtlsIdentity::CommonName => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        MtlsIdentity::SubjectAltName => {
            use x509_parser::extensions::GeneralName;
            let san = cert.subject_alternative_name().ok().flatten()?;
            let names = &san.value.general_names;
            let uri = names.iter().find_map(|n| match n {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            });
            let dns = names.iter().find_map(|n| match n {
                GeneralName::DNSName(dns) => Some(*dns),
                _ => None,
            });
            let email = names.iter().find_map(|n| match n {
                GeneralName::RFC822Name(email) => Some(*email),
                _ => None,
            });
            uri.or(dns).or(email).map(str::to_owned)
        }
    }?;
    let name = name.trim();
    (!name.is_empty()).then(|| Identity::new(name, AuthMethod::MutualTls))
}
