//! The database helper (sqlx): pool, migrations, statement logging, error mapping.
//!
//! One [`Database`] handle serves PostgreSQL or SQLite, chosen at run time from the URL scheme
//! of [`DatabaseConfig::url`] (`postgres://` / `postgresql://` or `sqlite:`). It is a thin layer
//! over a sqlx pool that adds what every service hand-builds around one:
//!
//! | piece | what it gives |
//! |---|---|
//! | [`Database::connect`] | bounded connect retries with exponential backoff (full jitter), one clear error naming the database (never the password); SQLite files (and their folder) created when missing; the configured migrations applied |
//! | [`Database::migrate`] | the `<version>_<description>.sql` files of a folder applied once ([`sqlx::migrate::Migrator`]); applying again is a no-op |
//! | [`Database::execute`], [`fetch_all`](Database::fetch_all), [`fetch_one`](Database::fetch_one), [`fetch_optional`](Database::fetch_optional) | a portable [`Query`] (`$1`, `$2` placeholders on both backends) timed, logged through [`events::db_query`](crate::core::events::db_query), counted, and bounded by the RPC's [`Deadline`](crate::core::Deadline) |
//! | [`Database::observe`] | the same timing, logging, counting and deadline for any sqlx future (transactions, backend-specific types) |
//! | [`DbError`] | every failure, mapped to a gRPC status by `From<DbError> for tonic::Status` without SQL, table names or driver text in the message |
//! | [`table_name`] | the blueprint's `<service-short>_<entity>` table names, validated |
//! | [`Database::health`], [`Database::record_pool_metrics`] | `SELECT 1` and the pool gauges |
//!
//! # TLS
//!
//! PostgreSQL's `sslmode` in the URL is honoured (feature `tls`, rustls on ring):
//! `sslmode=verify-full&sslrootcert=/etc/ca.pem` encrypts and verifies the server's
//! certificate and host name. `require` and stronger never fall back to plaintext: a server
//! that does not offer TLS fails the connect, and a build without `tls` refuses such a URL at
//! once. sqlx's default, `prefer`, does fall back to plaintext: set `require` or stronger
//! wherever the network is not trusted. See the table in [`DatabaseConfig::url`].
//!
//! # Example
//!
//! With the default configuration the database is an embedded SQLite file, so this runs with
//! no server:
//!
//! ```no_run
//! use tonic_blueprint::db::{Database, DatabaseConfig, Query, table_name};
//!
//! # async fn handler(request: tonic::Request<()>) -> Result<tonic::Response<()>, tonic::Status> {
//! let db = Database::connect(&DatabaseConfig::default()).await?;
//! let items = table_name("shop", "item")?; // "shop_item"
//! db.execute(
//!     "create_item_table",
//!     None,
//!     Query::new(format!("CREATE TABLE IF NOT EXISTS {items} (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE)")),
//! )
//! .await?;
//!
//! // In a handler: the statement ends when the RPC's deadline does (DEADLINE_EXCEEDED), and a
//! // duplicate name becomes ALREADY_EXISTS "already exists".
//! let deadline = tonic_blueprint::db::request_deadline(&request);
//! db.execute(
//!     "insert_item",
//!     deadline.as_ref(),
//!     Query::new(format!("INSERT INTO {items} (id, name) VALUES ($1, $2)")).bind(1_i64).bind("apple"),
//! )
//! .await?;
//! let row = db
//!     .fetch_one("get_item", deadline.as_ref(), Query::new(format!("SELECT name FROM {items} WHERE id = $1")).bind(1_i64))
//!     .await?; // no row: NOT_FOUND
//! let name: String = row.try_get("name")?;
//! # let _ = name;
//! # Ok(tonic::Response::new(()))
//! # }
//! ```
//!
//! # Metrics
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so whichever recorder the
//! application installs gives them a home:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`QUERIES_TOTAL`] | counter | `operation` |
//! | [`QUERY_ERRORS_TOTAL`] | counter | `operation` |
//! | [`QUERY_DURATION_SECONDS`] | histogram | `operation` |
//! | [`POOL_CONNECTIONS_IN_USE`], [`POOL_CONNECTIONS_IDLE`], [`POOL_CONNECTIONS_MAX`] | gauges | |
//!
//! The `operation` label is the name the caller gives each statement (`get_item`): keep it a
//! fixed word, never SQL text or ids.

mod config;
mod error;
mod health;
mod migrate;
mod pool;
mod query;
mod statement;
mod table;
mod tls;

pub use config::DatabaseConfig;
pub use error::{DbError, DbErrorKind};
pub use health::PoolStats;
pub use migrate::MigrationReport;
pub use pool::{Backend, Database};
pub use query::{Decodable, Query, Row, Value};
pub use statement::request_deadline;
pub use table::{InvalidName, MAX_TABLE_NAME_BYTES, table_name};

/// Statements run through the helper (counter, label `operation`).
pub const QUERIES_TOTAL: &str = "grpc_server_db_queries_total";
/// Statements that failed, timed out included (counter, label `operation`).
pub const QUERY_ERRORS_TOTAL: &str = "grpc_server_db_query_errors_total";
/// Statement time, from acquiring a connection to the last row (histogram in seconds, label
/// `operation`).
pub const QUERY_DURATION_SECONDS: &str = "grpc_server_db_query_duration_seconds";
/// Pool connections checked out (gauge).
pub const POOL_CONNECTIONS_IN_USE: &str = "grpc_server_db_pool_connections_in_use";
/// Pool connections open and idle (gauge).
pub const POOL_CONNECTIONS_IDLE: &str = "grpc_server_db_pool_connections_idle";
/// The pool's configured maximum (gauge).
pub const POOL_CONNECTIONS_MAX: &str = "grpc_server_db_pool_connections_max";
/// The label naming the statement.
pub const LABEL_OPERATION: &str = "operation";
