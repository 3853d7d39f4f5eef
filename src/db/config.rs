//! [`DatabaseConfig`]: where the database is and how the pool behaves.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::DbError;

/// The longest wait between two connect attempts, however many attempts are configured.
pub(crate) const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(10);

/// The database helper's configuration, serde-loadable (every field optional).
///
/// Durations are whole milliseconds (`acquire_timeout_ms = 5000`), the same in a file and in
/// an environment variable.
///
/// ```
/// use tonic_blueprint::db::DatabaseConfig;
///
/// let config: DatabaseConfig = serde_json::from_str(
///     r#"{ "url": "postgres://app:secret@db:5432/shop", "max_connections": 20 }"#,
/// ).unwrap();
/// assert_eq!(config.max_connections, 20);
/// assert_eq!(config.min_connections, 10);
/// // Debug output never shows the password.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:5432/db` or `sqlite://path/to/file.db` (`sqlite::memory:`
    /// for a private in-memory database).
    ///
    /// PostgreSQL TLS is set in the URL (feature `tls`):
    ///
    /// | `sslmode` | connection |
    /// |---|---|
    /// | `disable` | plaintext |
    /// | `prefer` (default) | TLS if the server offers it, **else plaintext** |
    /// | `require` | TLS or no connection; the certificate is not verified unless `sslrootcert` is given (then as `verify-ca`, libpq's rule) |
    /// | `verify-ca` | TLS, the certificate chains to `sslrootcert` (else the system's roots) |
    /// | `verify-full` | `verify-ca`, and the certificate names the host |
    ///
    /// `sslcert` and `sslkey` add a client certificate. Without the feature `tls`,
    /// `require` and stronger are refused by [`Database::connect`](super::Database::connect).
    ///
    /// Default: `sqlite://data/app.db`, an embedded SQLite file under `data/` in the working
    /// directory, created (folder included) on first connect, so a service runs with no
    /// database server.
    pub url: String,
    /// Connections the pool keeps open even when idle. Default 10.
    pub min_connections: u32,
    /// The most connections the pool opens. Default 100.
    pub max_connections: u32,
    /// How long a statement waits for a free connection (and one connect attempt may take)
    /// before failing with UNAVAILABLE, in milliseconds. Default 5000.
    pub acquire_timeout_ms: u64,
    /// Connect attempts before [`Database::connect`](super::Database::connect) gives up.
    /// Default 5.
    pub connect_attempts: u32,
    /// The backoff after the first failed connect attempt, in milliseconds; doubled after each
    /// further failure, at most 10 s; each wait is drawn between zero and it (full jitter).
    /// Default 200.
    pub connect_backoff_ms: u64,
    /// Statements slower than this are logged at warn level with `db.slow = true`, in
    /// milliseconds; 0 turns the warning off. Default 200.
    pub slow_query_threshold_ms: u64,
    /// A folder of `<version>_<description>.sql` migrations applied on connect. Default none.
    pub migrations: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/app.db".to_owned(),
            min_connections: 10,
            max_connections: 100,
            acquire_timeout_ms: 5_000,
            connect_attempts: 5,
            connect_backoff_ms: 200,
            slow_query_threshold_ms: 200,
            migrations: None,
        }
    }
}

impl DatabaseConfig {
    /// The default configuration for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// [`acquire_timeout_ms`](Self::acquire_timeout_ms) as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    /// [`connect_backoff_ms`](Self::connect_backoff_ms) as a duration.
    pub fn connect_backoff(&self) -> Duration {
        Duration::from_millis(self.connect_backoff_ms)
    }

    /// The wait after failed attempt `attempt` (1-based): the backoff doubled per attempt,
    /// at most 10 s.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1));
        self.connect_backoff()
            .saturating_mul(factor)
            .min(MAX_CONNECT_BACKOFF)
    }

    /// The wait actually used after failed attempt `attempt`: drawn uniformly between zero
    /// and [`backoff_after`](Self::backoff_after) (full jitter), so replicas that started
    /// together do not all retry at the same instant.
    pub fn jittered_backoff_after(&self, attempt: u32) -> Duration {
        let backoff = self.backoff_after(attempt);
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// [`slow_query_threshold_ms`](Self::slow_query_threshold_ms) as a duration; `None` when 0.
    pub fn slow_query_threshold(&self) -> Option<Duration> {
        (self.slow_query_threshold_ms > 0)
            .then(|| Duration::from_millis(self.slow_query_threshold_ms))
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks the numbers make sense: at least one connection and one attempt, the minimum
    /// not above the maximum, a non-zero acquire timeout.
    pub fn validate(&self) -> Result<(), DbError> {
        let reason = if self.max_connections == 0 {
            "max_connections must be at least 1"
        } else if self.min_connections > self.max_connections {
            "min_connections must not exceed max_connections"
        } else if self.connect_attempts == 0 {
            "connect_attempts must be at least 1"
        } else if self.acquire_timeout_ms == 0 {
            "acquire_timeout_ms must be at least 1"
        } else {
            return Ok(());
        };
        Err(DbError::InvalidConfig {
            reason: reason.to_owned(),
        })
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("min_connections", &self.min_connections)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_backoff_ms", &self.connect_backoff_ms)
            .field("slow_query_threshold_ms", &self.slow_query_threshold_ms)
            .field("migrations", &self.migrations)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/..` and any `password=` query
/// parameter with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let rest = match url.find("://") {
        Some(i) => {
            let (scheme, after) = url.split_at(i + 3);
            out.push_str(scheme);
            let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let (authority, tail) = after.split_at(authority_end);
            match authority.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = authority.split_at(at);
                    match userinfo.find(':') {
                        Some(colon) => {
                            out.push_str(&userinfo[..colon]);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            tail
        }
        None => url,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&redacted.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/shop",
                "postgres://app:***@db:5432/shop",
            ),
            (
                "postgres://app:p@ss@db/shop?sslmode=require",
                "postgres://app:***@db/shop?sslmode=require",
            ),
            (
                "postgres://db/shop?user=app&password=s3cret&sslmode=disable",
                "postgres://db/shop?user=app&password=***&sslmode=disable",
            ),
            ("postgres://app@db/shop", "postgres://app@db/shop"),
            (
                "sqlite://data/app.db?mode=rwc",
                "sqlite://data/app.db?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = DatabaseConfig::default();
        assert_eq!(config.backoff_after(1), Duration::from_millis(200));
        assert_eq!(config.backoff_after(2), Duration::from_millis(400));
        assert_eq!(config.backoff_after(4), Duration::from_millis(1600));
        assert_eq!(config.backoff_after(40), MAX_CONNECT_BACKOFF);
        for attempt in [1, 3, 40] {
            let waits: Vec<Duration> = (0..500)
                .map(|_| config.jittered_backoff_after(attempt))
                .collect();
            assert!(waits.iter().all(|w| *w <= config.backoff_after(attempt)));
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(distinct.len() > 50, "attempt {attempt}: {distinct:?}");
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        let config = DatabaseConfig {
            min_connections: 5,
            max_connections: 2,
            ..DatabaseConfig::default()
        };
        assert!(config.validate().is_err());
        assert!(DatabaseConfig::default().validate().is_ok());
    }
}
