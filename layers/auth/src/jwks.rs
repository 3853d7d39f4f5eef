//! Keys from a JWKS URL: fetched at start-up, refreshed in the background, and once early
//! when a token names a key the set does not have yet (key rotation).

use crate::jwt::Key;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// How a [`Jwks`] is fetched and kept fresh.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JwksOptions {
    /// How often the set is fetched again in the background (default 5 min).
    pub refresh_interval: Duration,
    /// The least time between two early refreshes caused by unknown `kid`s (default 30 s):
    /// a flood of tokens with made-up `kid`s costs at most one fetch per interval.
    pub min_early_refresh: Duration,
    /// How long one fetch may take (default 2 s). A call waiting on an early refresh waits at
    /// most this long.
    pub fetch_timeout: Duration,
    /// Fetch attempts at start-up and per background refresh (default 3), waiting
    /// `retry_backoff` and then twice as long again between them.
    pub attempts: u32,
    /// The first wait between attempts (default 100 ms).
    pub retry_backoff: Duration,
    /// The largest JWKS document read (default 256 KiB).
    pub max_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(300),
            min_early_refresh: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(2),
            attempts: 3,
            retry_backoff: Duration::from_millis(100),
            max_bytes: 256 * 1024,
        }
    }
}

/// Why a JWKS could not be fetched.
#[derive(Debug)]
pub enum JwksError {
    /// The URL is not an `http` or `https` URL.
    Url(String),
    /// No trusted root certificates were found for `https`.
    Roots(std::io::Error),
    /// Every attempt failed; the last error.
    Fetch(String),
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url) => write!(f, "{url:?} is not an http(s) URL"),
            Self::Roots(e) => write!(f, "no trusted root certificates for https: {e}"),
            Self::Fetch(e) => write!(f, "the JWKS could not be fetched: {e}"),
        }
    }
}

impl std::error::Error for JwksError {}

/// A key set fetched from a JWKS URL, shared by every clone.
///
/// [`fetch`](Self::fetch) loads it (with bounded retries) and starts a background task that
/// fetches it again every [`refresh_interval`](JwksOptions::refresh_interval) for as long as a
/// clone lives. A failed refresh keeps the last good set.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    uri: http::Uri,
    client: HttpsClient,
    options: JwksOptions,
    keys: RwLock<Arc<Vec<Key>>>,
    /// When the last early refresh started; held while it runs (single flight).
    early: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("uri", &self.inner.uri)
            .field("keys", &self.keys().len())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// Fetches the set at `url` with the default [`JwksOptions`].
    pub async fn fetch(url: &str) -> Result<Self, JwksError> {
        Self::fetch_with(url, JwksOptions::default()).await
    }

    /// Fetches the set at `url` (up to `options.attempts` times), then refreshes it in the
    /// background.
    pub async fn fetch_with(url: &str, options: JwksOptions) -> Result<Self, JwksError> {
        let uri: http::Uri = url.parse().map_err(|_| JwksError::Url(url.to_owned()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(JwksError::Url(url.to_owned())),
        };
        let jwks = Self {
            inner: Arc::new(Inner {
                client: client(https)?,
                uri,
                options,
                keys: RwLock::default(),
                early: tokio::sync::Mutex::new(None),
            }),
        };
        jwks.refresh().await?;
        spawn_refresher(Arc::downgrade(&jwks.inner));
        Ok(jwks)
    }

    /// The keys now.
    pub(crate) fn keys(&self) -> Arc<Vec<Key>> {
        match self.inner.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many keys the set holds now.
    pub fn len(&self) -> usize {
        self.keys().len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// Fetches the set again (up to `attempts` times). On failure the last good set stays.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        self.inner.refresh(self.inner.options.attempts).await
    }

    /// An early refresh for a token whose `kid` is unknown: at most one per
    /// `min_early_refresh`, one attempt, concurrent callers wait for the same one. Returns
    /// whether the keys may have changed (worth verifying the token again).
    pub(crate) async fn refresh_for_unknown_kid(&self) -> bool {
        let started = Instant::now();
        let mut last = self.inner.early.lock().await;
        match *last {
            // Another call refreshed while this one waited: its keys are there to try.
            Some(at) if at >= started => true,
            Some(at) if at.elapsed() < self.inner.options.min_early_refresh => false,
            _ => {
                *last = Some(Instant::now());
                match self.inner.refresh(1).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "early JWKS refresh failed; keeping the last key set");
                        false
                    }
                }
            }
        }
    }
}

impl Inner {
    async fn refresh(&self, attempts: u32) -> Result<(), JwksError> {
        let mut backoff = self.options.retry_backoff;
        let mut last_error = String::new();
        for attempt in 1..=attempts.max(1) {
            match self.fetch_once().await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    match self.keys.write() {
                        Ok(mut slot) => *slot = keys,
                        Err(poisoned) => *poisoned.into_inner() = keys,
                    }
                    return Ok(());
                }
                Err(e) => last_error = e,
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(JwksError::Fetch(last_error))
    }

    async fn fetch_once(&self) -> Result<Vec<Key>, String> {
        let request = http::Request::get(self.uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            Limited::new(response.into_body(), self.options.max_bytes)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| e.to_string())
        };
        let body = tokio::time::timeout(self.options.fetch_timeout, fetch)
            .await
            .map_err(|_| format!("no answer within {:?}", self.options.fetch_timeout))??;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            // Keys of kinds or curves jsonwebtoken cannot verify with are skipped, not fatal.
            .filter_map(|jwk| {
                DecodingKey::from_jwk(jwk).ok().map(|key| Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err("the JWKS holds no usable key".to_owned());
        }
        Ok(keys)
    }
}

fn client(https: bool) -> Result<HttpsClient, JwksError> {
    use hyper_rustls::ConfigBuilderExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JwksError::Fetch(e.to_string()))?;
    let config = if https {
        builder.with_native_roots().map_err(JwksError::Roots)?
    } else {
        // Plain http (a sidecar on loopback, tests): no roots needed.
        builder.with_root_certificates(rustls::RootCertStore::empty())
    }
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Refreshes the set every interval while a [`Jwks`] clone lives.
fn spawn_refresher(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.options.refresh_interval) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Err(e) = inner.refresh(inner.options.attempts).await {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last key set");
            }
        }
    });
}
