//! Connection, stream and consumer settings (serde, with defaults for every field).

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach NATS, and the defaults of every consumer.
///
/// Every field has a default, so a configuration file names only what it changes:
///
/// ```
/// use tonic_blueprint::events::NatsConfig;
/// let config: NatsConfig = serde_json::from_str(
///     r#"{ "url": "nats://nats:4222", "name": "payments",
///          "consumer": { "concurrency": 4 } }"#,
/// ).unwrap();
/// assert_eq!(config.consumer.concurrency, 4);
/// assert_eq!(config.consumer.max_attempts, 3);
/// assert!(config.jetstream);
/// ```
///
/// `Debug` hides the password of a `nats://user:password@host` URL.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The server URL, or several separated by commas (default `nats://127.0.0.1:4222`).
    /// Credentials go in the URL, `nats://user:password@host:4222` or `nats://token@host:4222`;
    /// they never appear in errors, logs or `Debug`.
    pub url: String,
    /// The connection name the server shows (`connz`), usually the service name.
    pub name: Option<String>,
    /// PEM CA certificates the server's certificate must chain to (`NATS_CA_FILE`); default:
    /// the system's roots. TLS is used with a `tls://` URL (required: a server that does not
    /// speak it fails the connection) and whenever the server announces `tls_required`.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain, for servers that verify clients
    /// (`NATS_CLIENT_CERT_FILE`; with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file` (`NATS_CLIENT_KEY_FILE`).
    pub client_key_file: Option<PathBuf>,
    /// A credentials file: user JWT and NKey seed (`NATS_CREDS_FILE`). Never logged.
    pub creds_file: Option<PathBuf>,
    /// Attempts at the first connection before [`Events::connect`](super::Events::connect)
    /// gives up (at least 1; default 5).
    pub connect_attempts: u32,
    /// The backoff after the first failed attempt, doubled after each (default 200 ms); each
    /// wait is drawn between zero and the backoff (full jitter).
    pub connect_backoff_ms: u64,
    /// The limit of one connection attempt (default 2 s).
    pub connect_timeout_ms: u64,
    /// Reconnection attempts after the connection is lost; `None` (default) retries forever.
    pub max_reconnects: Option<usize>,
    /// Whether to use JetStream: streams, durable consumers, acknowledged publishes
    /// (default true).
    pub jetstream: bool,
    /// How long a JetStream publish waits for the server's acknowledgement (default 5 s).
    pub publish_timeout_ms: u64,
    /// Attempts of a JetStream publish that was not acknowledged, with the same
    /// `Nats-Msg-Id` so the stream drops duplicates (at least 1; default 3).
    pub publish_attempts: u32,
    /// The wait after the first failed JetStream publish, doubled after each
    /// (default 100 ms).
    pub publish_backoff_ms: u64,
    /// The longest a publish made on the request path may take, its retries included: one
    /// whose [`EventContext`](super::EventContext) carries the call's deadline (default
    /// 100 ms, and never past that deadline). Such a publish also fails at once while the
    /// connection is down.
    pub request_publish_timeout_ms: u64,
    /// The streams [`Events::connect`](super::Events::connect) creates or updates.
    pub streams: Vec<StreamConfig>,
    /// The defaults of every consumer.
    pub consumer: ConsumerOptions,
    /// How long [`Events::drain`](super::Events::drain) waits for consumers to finish
    /// the messages they hold (default 10 s).
    pub drain_timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            name: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            creds_file: None,
            connect_attempts: 5,
            connect_backoff_ms: 200,
            connect_timeout_ms: 2_000,
            max_reconnects: None,
            jetstream: true,
            publish_timeout_ms: 5_000,
            publish_attempts: 3,
            publish_backoff_ms: 100,
            request_publish_timeout_ms: 100,
            streams: Vec::new(),
            consumer: ConsumerOptions::default(),
            drain_timeout_ms: 10_000,
        }
    }
}

impl NatsConfig {
    /// The default configuration with another URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The default configuration for the kit's `[nats]` section: `NATS_URL`, `NATS_CA_FILE`,
    /// `NATS_CLIENT_CERT_FILE`, `NATS_CLIENT_KEY_FILE`, `NATS_CREDS_FILE`.
    ///
    /// ```
    /// use tonic_blueprint::config::Loader;
    /// use tonic_blueprint::events::NatsConfig;
    ///
    /// let kit = Loader::from_pairs([("NATS_URL", "tls://nats:4222"), ("NATS_CA_FILE", "/etc/ca.pem")])
    ///     .load()
    ///     .unwrap();
    /// let config = NatsConfig::from_section(&kit.nats);
    /// assert_eq!(config.url, "tls://nats:4222");
    /// assert_eq!(config.ca_file.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
    /// assert_eq!(config.creds_file, None);
    /// ```
    #[cfg(feature = "config")]
    pub fn from_section(section: &crate::config::NatsSection) -> Self {
        let path = |value: &str| {
            Some(value.trim())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            url: section.url.trim().to_owned(),
            ca_file: path(&section.ca_file),
            client_cert_file: path(&section.client_cert_file),
            client_key_file: path(&section.client_key_file),
            creds_file: path(&section.creds_file),
            ..Self::default()
        }
    }

    /// The TLS and credential files, for the connection.
    pub(crate) fn security(&self) -> Result<crate::nats_tls::NatsSecurity<'_>, String> {
        let client_cert = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => {
                return Err(
                    "client_cert_file and client_key_file go together: set both or neither"
                        .to_owned(),
                );
            }
        };
        Ok(crate::nats_tls::NatsSecurity {
            ca_file: self.ca_file.as_deref(),
            client_cert,
            creds_file: self.creds_file.as_deref(),
        })
    }

    /// The server list for errors and logs: credentials removed.
    pub fn server_display(&self) -> String {
        self.url
            .split(',')
            .map(|u| redact_url(u.trim()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.server_display())
            .field("name", &self.name)
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("creds_file", &self.creds_file)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_backoff_ms", &self.connect_backoff_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_reconnects", &self.max_reconnects)
            .field("jetstream", &self.jetstream)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .field("publish_attempts", &self.publish_attempts)
            .field("publish_backoff_ms", &self.publish_backoff_ms)
            .field(
                "request_publish_timeout_ms",
                &self.request_publish_timeout_ms,
            )
            .field("streams", &self.streams)
            .field("consumer", &self.consumer)
            .field("drain_timeout_ms", &self.drain_timeout_ms)
            .finish()
    }
}

/// A URL without its `user:password@` part (replaced by `***@`).
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The `user:password` parts of a URL list, to scrub them from error texts.
pub(crate) fn url_secrets(urls: &str) -> Vec<String> {
    urls.split(',')
        .filter_map(|url| {
            let rest = url.trim().split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or_default();
            authority
                .rfind('@')
                .map(|at| authority[..at].to_owned())
                .filter(|s| !s.is_empty())
        })
        .collect()
}

/// A JetStream stream to create or update.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Its name (`[A-Za-z0-9_-]`, such as `PAYMENTS`).
    pub name: String,
    /// The subjects it stores, wildcards allowed (such as `payments.>`).
    pub subjects: Vec<String>,
    /// The oldest message kept, in seconds; 0 (default) keeps them until other limits.
    pub max_age_secs: u64,
    /// The window in which a repeated `Nats-Msg-Id` is dropped (default 120 s).
    pub duplicate_window_secs: u64,
    /// File (default) or memory storage.
    pub storage: Storage,
    /// Replicas in a cluster (default 1).
    pub replicas: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            subjects: Vec::new(),
            max_age_secs: 0,
            duplicate_window_secs: 120,
            storage: Storage::File,
            replicas: 1,
        }
    }
}

impl StreamConfig {
    /// A file-backed stream with the default limits.
    pub fn new(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// The most messages one consumer handles at once.
const MAX_CONCURRENCY: usize = 65_536;

/// How a consumer runs its handler: concurrency, retries, dead letters.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerOptions {
    /// Messages handled at once (1 to 65536; default 16).
    pub concurrency: usize,
    /// Attempts of the handler before the message goes to the dead-letter subject
    /// (at least 1; default 3). For JetStream this is the delivery count.
    pub max_attempts: u32,
    /// The backoff before the second attempt, doubled before each next one (default 100 ms).
    /// Each wait is drawn at random between zero and the backoff (full jitter), so
    /// replicas that failed together do not retry together.
    pub backoff_initial_ms: u64,
    /// The longest backoff between attempts (default 10 s).
    pub backoff_max_ms: u64,
    /// How long one delivery may run its handler (at least 1 ms; default 30 s). On expiry
    /// the handler's future is dropped, the attempt counts as failed
    /// ([`counters::TIMED_OUT`](super::counters::TIMED_OUT) and
    /// [`counters::FAILED`](super::counters::FAILED), logged) and is retried after the
    /// backoff like an `Err`: a JetStream message is nak'ed with that delay.
    pub handler_timeout_ms: u64,
    /// JetStream: how long the server waits for an acknowledgement before it redelivers
    /// (default 30 s). While a handler runs the consumer reports progress every half
    /// `ack_wait`, so a handler within `handler_timeout_ms` is never redelivered
    /// meanwhile; `ack_wait` is how soon the messages of a crashed replica come back.
    pub ack_wait_ms: u64,
    /// Where failed messages go; default `<subject>.dlq`.
    pub dead_letter_subject: Option<String>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 3,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
            handler_timeout_ms: 30_000,
            ack_wait_ms: 30_000,
            dead_letter_subject: None,
        }
    }
}

impl ConsumerOptions {
    /// The wait after failed attempt `attempt` (1-based): `initial * 2^(attempt-1)`, capped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tonic_blueprint::events::ConsumerOptions;
    /// let options = ConsumerOptions { backoff_initial_ms: 100, backoff_max_ms: 350, ..Default::default() };
    /// assert_eq!(options.backoff(1), Duration::from_millis(100));
    /// assert_eq!(options.backoff(2), Duration::from_millis(200));
    /// assert_eq!(options.backoff(3), Duration::from_millis(350));
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        exponential(self.backoff_initial_ms, self.backoff_max_ms, attempt)
    }

    /// The wait actually used after failed attempt `attempt`: drawn uniformly between zero
    /// and [`backoff`](Self::backoff) (full jitter).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tonic_blueprint::events::ConsumerOptions;
    /// let options = ConsumerOptions::default();
    /// assert!(options.jittered_backoff(2) <= Duration::from_millis(200));
    /// ```
    pub fn jittered_backoff(&self, attempt: u32) -> Duration {
        full_jitter(self.backoff(attempt))
    }

    /// [`handler_timeout_ms`](Self::handler_timeout_ms) as a duration (at least 1 ms).
    pub fn handler_timeout(&self) -> Duration {
        Duration::from_millis(self.handler_timeout_ms.max(1))
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency.clamp(1, MAX_CONCURRENCY)
    }
}

/// A wait drawn uniformly from `[0, backoff]` ("full jitter"): retries of many clients that
/// failed at the same moment spread over the whole window instead of arriving together.
pub(crate) fn full_jitter(backoff: Duration) -> Duration {
    let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// `initial_ms * 2^(attempt-1)`, at most `max_ms`.
pub(crate) fn exponential(initial_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let factor = 1u64 << attempt.saturating_sub(1).min(32);
    Duration::from_millis(initial_ms.saturating_mul(factor).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("tok@h:1"), "***@h:1");
        assert_eq!(
            url_secrets("nats://u:p@h:1, nats://x:2"),
            vec!["u:p".to_owned()]
        );
        let config = NatsConfig::with_url("nats://user:hunter2@a:1,nats://b:2");
        assert_eq!(config.server_display(), "nats://***@a:1,nats://b:2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_caps() {
        assert_eq!(exponential(100, 10_000, 1), Duration::from_millis(100));
        assert_eq!(exponential(100, 10_000, 3), Duration::from_millis(400));
        assert_eq!(exponential(100, 10_000, 60), Duration::from_millis(10_000));
    }

    #[test]
    fn jittered_waits_stay_within_the_backoff_and_spread() {
        let options = ConsumerOptions {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..ConsumerOptions::default()
        };
        for attempt in 1..=6 {
            let backoff = options.backoff(attempt);
            let waits: Vec<Duration> = (0..1_000)
                .map(|_| options.jittered_backoff(attempt))
                .collect();
            assert!(waits.iter().all(|w| *w <= backoff), "attempt {attempt}");
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(distinct.len() > 100, "attempt {attempt}: {distinct:?}");
            // Spread over the window, not bunched at one end.
            assert!(waits.iter().any(|w| *w < backoff / 4), "attempt {attempt}");
            assert!(
                waits.iter().any(|w| *w > backoff * 3 / 4),
                "attempt {attempt}"
            );
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
        assert!(full_jitter(Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn the_handler_timeout_defaults_to_30_s_and_is_never_zero() {
        let options = ConsumerOptions::default();
        assert_eq!(options.handler_timeout(), Duration::from_secs(30));
        let zero = ConsumerOptions {
            handler_timeout_ms: 0,
            ..ConsumerOptions::default()
        };
        assert_eq!(zero.handler_timeout(), Duration::from_millis(1));
        let parsed: ConsumerOptions =
            serde_json::from_str(r#"{ "handler_timeout_ms": 500 }"#).expect("options");
        assert_eq!(parsed.handler_timeout(), Duration::from_millis(500));
    }
}
