//! [`Database`]: the pool, chosen from the URL scheme, and the bounded connect retries.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::{DatabaseConfig, DbError};

/// The database behind a [`Database`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// SQLite (`sqlite:`).
    Sqlite,
}

#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A pool of connections to PostgreSQL or SQLite, cheap to clone (clones share the pool).
///
/// See the [module docs](super) for what it adds to a sqlx pool.
#[derive(Clone)]
pub struct Database {
    pub(crate) pool: Pool,
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// `PostgreSQL at host:port/db` or `SQLite file path`: never the password.
    pub(crate) target: String,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) max_connections: u32,
}

/// Parsed connect options, before any connection.
enum Target {
    Postgres(PgConnectOptions),
    Sqlite {
        options: SqliteConnectOptions,
        in_memory: bool,
    },
}

impl Database {
    /// Connects, retrying with exponential backoff (full jitter), then applies
    /// [`DatabaseConfig::migrations`] when set.
    ///
    /// Each attempt opens one connection (bounded by
    /// [`acquire_timeout_ms`](DatabaseConfig::acquire_timeout_ms)); after
    /// [`connect_attempts`](DatabaseConfig::connect_attempts) failures the error is
    /// [`DbError::Connect`], naming host, port and database (or the SQLite file) and never
    /// the password. A missing SQLite file is created, and so is its folder. File databases
    /// use SQLite's write-ahead log, so readers do not wait for writers.
    ///
    /// sqlx's own per-statement logging is turned off: the helper logs each statement it
    /// runs as a [`db_query`](crate::core::events::db_query) event instead.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        config.validate()?;
        let target = Target::parse(&config.url)?;
        let description = target.describe();
        let attempts = config.connect_attempts;
        let mut attempt = 1;
        let pool = loop {
            match target.connect(config).await {
                Ok(pool) => break pool,
                Err(source) if attempt >= attempts => {
                    return Err(DbError::Connect {
                        target: description,
                        attempts,
                        source,
                    });
                }
                Err(error) => {
                    let wait = config.jittered_backoff_after(attempt);
                    tracing::warn!(
                        db.target = %description,
                        attempt,
                        attempts,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        %error,
                        "database connect failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        };
        tracing::info!(db.target = %description, attempt, "database connected");
        let db = Database {
            pool,
            shared: Arc::new(Shared {
                target: description,
                slow_threshold: config.slow_query_threshold(),
                max_connections: config.max_connections,
            }),
        };
        if let Some(dir) = &config.migrations {
            db.migrate(dir).await?;
        }
        Ok(db)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// `PostgreSQL at host:port/database` or `SQLite file path`: what the logs call this
    /// database (never the password).
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// The PostgreSQL pool, for what the helper does not cover (transactions, `COPY`,
    /// `LISTEN`); wrap such work in [`observe`](Self::observe) to keep it logged and counted.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// Closes every connection, waiting for those checked out to come back; statements after
    /// this fail with UNAVAILABLE.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.pool_stats();
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("target", &self.shared.target)
            .field("size", &stats.size)
            .field("idle", &stats.idle)
            .finish()
    }
}

impl Target {
    fn parse(url: &str) -> Result<Self, DbError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let invalid = |e: sqlx::Error| DbError::InvalidConfig {
            // sqlx's parse errors name the part that is wrong, not the URL.
            reason: format!("invalid {scheme} database URL: {e}"),
        };
        match scheme.as_str() {
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(invalid)?;
                let options = super::tls::checked(options, url)?;
                Ok(Target::Postgres(options.disable_statement_logging()))
            }
            "sqlite" => {
                let mut options = SqliteConnectOptions::from_str(url).map_err(invalid)?;
                // sqlx names `sqlite::memory:` databases `file:sqlx-in-memory-N`.
                let name = options.get_filename().to_string_lossy();
                let in_memory = name == ":memory:"
                    || name.starts_with("file:sqlx-in-memory-")
                    || url.contains("mode=memory");
                // Respect an explicit `mode=ro|rw|rwc|memory`; otherwise create the file.
                if !url.contains("mode=") {
                    options = options.create_if_missing(true);
                }
                if !in_memory {
                    options = options.journal_mode(SqliteJournalMode::Wal);
                }
                Ok(Target::Sqlite {
                    options: options.disable_statement_logging(),
                    in_memory,
                })
            }
            _ => Err(DbError::InvalidConfig {
                reason: format!(
                    "unsupported database URL scheme {scheme:?}: use postgres:// or sqlite:"
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Postgres(o) => {
                let database = o.get_database().unwrap_or(o.get_username());
                match o.get_socket() {
                    Some(socket) => format!(
                        "PostgreSQL at {} (port {}) database {database}",
                        socket.display(),
                        o.get_port()
                    ),
                    None => format!(
                        "PostgreSQL at {}:{} database {database}",
                        o.get_host(),
                        o.get_port()
                    ),
                }
            }
            Target::Sqlite {
                in_memory: true, ..
            } => "SQLite in-memory database".to_owned(),
            Target::Sqlite { options, .. } => {
                format!("SQLite file {}", options.get_filename().display())
            }
        }
    }

    /// One attempt: a single connection proves the database answers (and gives the real
    /// error when it does not, where a pool would only report a timeout), then the pool.
    async fn connect(&self, config: &DatabaseConfig) -> Result<Pool, sqlx::Error> {
        let timeout = config.acquire_timeout();
        match self {
            Target::Postgres(options) => {
                probe(timeout, options).await?;
                let pool = PgPoolOptions::new()
                    .min_connections(config.min_connections)
                    .max_connections(config.max_connections)
                    .acquire_timeout(timeout)
                    .connect_with(options.clone())
                    .await?;
                Ok(Pool::Postgres(pool))
            }
            Target::Sqlite { options, in_memory } => {
                if !in_memory {
                    create_parent_dir(options)?;
                }
                probe(timeout, options).await?;
                let pool = SqlitePoolOptions::new()
                    .min_connections(config.min_connections)
                    .max_connections(config.max_connections)
                    .acquire_timeout(timeout)
                    .connect_with(options.clone())
                    .await?;
                Ok(Pool::Sqlite(pool))
            }
        }
    }
}

async fn probe<O>(timeout: Duration, options: &O) -> Result<(), sqlx::Error>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(connection) => {
            // A failed goodbye does not make the database unreachable.
            let _ = connection?.close().await;
            Ok(())
        }
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect timed out after {} ms", timeout.as_millis()),
        ))),
    }
}

fn create_parent_dir(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    match options.get_filename().parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)
        }
        _ => Ok(()),
    }
}
