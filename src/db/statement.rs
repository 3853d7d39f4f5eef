//! Running statements: timed, logged, counted, and bounded by the RPC's deadline.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Executor, Postgres, Sqlite};
use tokio::time::Instant;
use tonic_blueprint_core::Deadline;
use tonic_blueprint_core::events::db_query;

use super::pool::Pool;
use super::query::{Query, Row};
use super::{
    Database, DbError, LABEL_OPERATION, QUERIES_TOTAL, QUERY_DURATION_SECONDS, QUERY_ERRORS_TOTAL,
};

/// The deadline the timeout layer stored in a tonic request's extensions, if any.
///
/// ```
/// use std::time::Duration;
/// use tonic_blueprint::core::{Deadline, DeadlineSource};
///
/// let mut request = tonic::Request::new(());
/// assert!(tonic_blueprint::db::request_deadline(&request).is_none());
/// request
///     .extensions_mut()
///     .insert(Deadline::after(Duration::from_secs(1), DeadlineSource::Server));
/// assert!(tonic_blueprint::db::request_deadline(&request).is_some());
/// ```
pub fn request_deadline<T>(request: &tonic::Request<T>) -> Option<Deadline> {
    request.extensions().get::<Deadline>().copied()
}

/// What a statement is asked to return.
#[derive(Clone, Copy)]
enum Fetch {
    Execute,
    All,
    Optional,
}

enum Output {
    Affected(u64),
    Rows(Vec<Row>),
    Optional(Option<Row>),
}

impl Output {
    fn rows(&self) -> u64 {
        match self {
            Output::Affected(n) => *n,
            Output::Rows(rows) => rows.len() as u64,
            Output::Optional(row) => u64::from(row.is_some()),
        }
    }
}

impl Database {
    /// Runs a statement that returns no rows (`INSERT`, `UPDATE`, `DELETE`, DDL) and returns
    /// the number of rows it changed.
    ///
    /// `operation` names the statement in logs and metrics (`insert_item`). With a
    /// `deadline` the statement ends when the RPC's does: DEADLINE_EXCEEDED, and on
    /// PostgreSQL the server stops it too (`SET LOCAL statement_timeout` in a transaction
    /// around it, so statements that refuse a transaction block, such as
    /// `CREATE INDEX CONCURRENTLY`, need `deadline = None`). The same holds for the `fetch_*`
    /// methods.
    pub async fn execute(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        query: Query,
    ) -> Result<u64, DbError> {
        match self.run(operation, deadline, query, Fetch::Execute).await? {
            Output::Affected(n) => Ok(n),
            other => Ok(other.rows()),
        }
    }

    /// Runs a query and returns every row.
    pub async fn fetch_all(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        query: Query,
    ) -> Result<Vec<Row>, DbError> {
        match self.run(operation, deadline, query, Fetch::All).await? {
            Output::Rows(rows) => Ok(rows),
            Output::Optional(row) => Ok(row.into_iter().collect()),
            Output::Affected(_) => Ok(Vec::new()),
        }
    }

    /// Runs a query and returns its first row, if any.
    pub async fn fetch_optional(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        query: Query,
    ) -> Result<Option<Row>, DbError> {
        match self
            .run(operation, deadline, query, Fetch::Optional)
            .await?
        {
            Output::Optional(row) => Ok(row),
            Output::Rows(rows) => Ok(rows.into_iter().next()),
            Output::Affected(_) => Ok(None),
        }
    }

    /// Runs a query and returns its first row; no row is a [`DbError`] of kind
    /// [`NotFound`](super::DbErrorKind::NotFound) (NOT_FOUND for the client), logged as a
    /// successful statement that found nothing.
    pub async fn fetch_one(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        query: Query,
    ) -> Result<Row, DbError> {
        self.fetch_optional(operation, deadline, query)
            .await?
            .ok_or_else(|| DbError::query(operation, sqlx::Error::RowNotFound))
    }

    /// Times, logs and counts any sqlx work, bounded by `deadline`: transactions, backend
    /// specific types, statements built with [`as_postgres`](Self::as_postgres).
    ///
    /// The deadline is enforced on the client side only (the future is dropped, and with it
    /// any transaction, which rolls back); the row count is not known, so it is not logged.
    ///
    /// ```no_run
    /// # async fn f(db: tonic_blueprint::db::Database) -> Result<(), tonic_blueprint::db::DbError> {
    /// let pool = db.as_postgres().expect("PostgreSQL");
    /// db.observe("transfer", None, async {
    ///     let mut tx = pool.begin().await?;
    ///     sqlx::query("UPDATE pay_account SET balance = balance - $1 WHERE id = $2")
    ///         .bind(10_i64).bind(1_i64).execute(&mut *tx).await?;
    ///     sqlx::query("UPDATE pay_account SET balance = balance + $1 WHERE id = $2")
    ///         .bind(10_i64).bind(2_i64).execute(&mut *tx).await?;
    ///     tx.commit().await
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn observe<T, F>(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        work: F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        let started = Instant::now();
        let result = bounded(operation, deadline, work).await;
        self.record(operation, started.elapsed(), None, result.as_ref().err());
        result
    }

    async fn run(
        &self,
        operation: &str,
        deadline: Option<&Deadline>,
        query: Query,
        fetch: Fetch,
    ) -> Result<Output, DbError> {
        let started = Instant::now();
        let result = match &self.pool {
            Pool::Postgres(pool) => {
                // The server stops the statement at the deadline too, so an abandoned
                // statement does not hold its connection and the database's time.
                let server_timeout = deadline.map(Deadline::remaining);
                bounded_with_grace(
                    operation,
                    deadline,
                    SERVER_CANCEL_GRACE,
                    run_postgres(pool, query, fetch, server_timeout),
                )
                .await
            }
            Pool::Sqlite(pool) => {
                bounded(operation, deadline, run_sqlite(pool, query, fetch)).await
            }
        };
        let rows = result.as_ref().ok().map(Output::rows);
        self.record(operation, started.elapsed(), rows, result.as_ref().err());
        result
    }

    /// The `db_query` event and the counters.
    fn record(
        &self,
        operation: &str,
        elapsed: Duration,
        rows: Option<u64>,
        error: Option<&DbError>,
    ) {
        let slow = self.shared.slow_threshold.is_some_and(|t| elapsed > t);
        db_query(
            operation,
            elapsed,
            rows,
            slow,
            error.map(|e| e as &dyn std::fmt::Display),
        );
        let labels = [(LABEL_OPERATION, operation.to_owned())];
        metrics::counter!(QUERIES_TOTAL, &labels[..]).increment(1);
        metrics::histogram!(QUERY_DURATION_SECONDS, &labels[..]).record(elapsed.as_secs_f64());
        if error.is_some() {
            metrics::counter!(QUERY_ERRORS_TOTAL, &labels[..]).increment(1);
        }
    }
}

/// How long past the deadline a PostgreSQL statement is given for the server's own
/// `statement_timeout` to stop it. The server's cancel leaves the connection clean (the error
/// comes back, the transaction rolls back, the connection returns to the pool at once);
/// abandoning the statement mid-flight on the client's timer instead leaves the connection to
/// drain a statement in flight, and with several statements running the pool's next caller
/// was seen waiting out its whole acquire timeout for it.
const SERVER_CANCEL_GRACE: Duration = Duration::from_millis(250);

/// `work` bounded by `deadline`, its sqlx error named after `operation`.
async fn bounded<T>(
    operation: &str,
    deadline: Option<&Deadline>,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, DbError> {
    bounded_with_grace(operation, deadline, Duration::ZERO, work).await
}

/// [`bounded`], the client's timer firing `grace` after the deadline (the server stops the
/// statement at the deadline itself; its error is DEADLINE_EXCEEDED too).
async fn bounded_with_grace<T>(
    operation: &str,
    deadline: Option<&Deadline>,
    grace: Duration,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, DbError> {
    let expired = || DbError::DeadlineExceeded {
        operation: operation.to_owned(),
    };
    let result = match deadline {
        None => work.await,
        Some(d) if d.is_expired() => return Err(expired()),
        Some(d) => {
            let until = d.expires_at().checked_add(grace).unwrap_or(d.expires_at());
            match tokio::time::timeout_at(until, work).await {
                Ok(result) => result,
                Err(_) => return Err(expired()),
            }
        }
    };
    result.map_err(|source| DbError::query(operation, source))
}

async fn run_postgres(
    pool: &PgPool,
    query: Query,
    fetch: Fetch,
    server_timeout: Option<Duration>,
) -> Result<Output, sqlx::Error> {
    let Some(timeout) = server_timeout else {
        return postgres_on(pool, query, fetch).await;
    };
    // Whole milliseconds, rounded up; 0 would mean "no timeout".
    let millis = timeout.as_millis().saturating_add(1).max(1);
    let mut tx = pool
        .begin_with(format!("BEGIN; SET LOCAL statement_timeout = {millis}"))
        .await?;
    let output = postgres_on(&mut *tx, query, fetch).await?;
    tx.commit().await?;
    Ok(output)
}

async fn run_sqlite(pool: &SqlitePool, query: Query, fetch: Fetch) -> Result<Output, sqlx::Error> {
    sqlite_on(pool, query, fetch).await
}

/// Defines `$name`: a [`Query`] run on an executor of backend `$db`, its values bound with
/// `Value::$bind` and its rows wrapped with `$row`.
macro_rules! statement_on {
    ($name:ident, $db:ty, $bind:ident, $row:path) => {
        async fn $name<'c, E>(
            executor: E,
            query: Query,
            fetch: Fetch,
        ) -> Result<Output, sqlx::Error>
        where
            E: Executor<'c, Database = $db>,
        {
            let (sql, values) = query.into_parts();
            let statement = values
                .into_iter()
                .fold(sqlx::query::<$db>(&sql), |q, v| v.$bind(q));
            Ok(match fetch {
                Fetch::Execute => {
                    Output::Affected(statement.execute(executor).await?.rows_affected())
                }
                Fetch::All => Output::Rows(
                    statement
                        .fetch_all(executor)
                        .await?
                        .into_iter()
                        .map($row)
                        .collect(),
                ),
                Fetch::Optional => {
                    Output::Optional(statement.fetch_optional(executor).await?.map($row))
                }
            })
        }
    };
}

statement_on!(postgres_on, Postgres, bind_postgres, Row::postgres);
statement_on!(sqlite_on, Sqlite, bind_sqlite, Row::sqlite);
