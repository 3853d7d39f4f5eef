//! The database helper against a real PostgreSQL (127.0.0.1:5432, trust auth, database
//! `test`). Each test works in a schema of its own, dropped at the end.
#![cfg(feature = "db")]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use tonic_blueprint::core::{Deadline, DeadlineSource};
use tonic_blueprint::db::{Backend, Database, DatabaseConfig, DbError, DbErrorKind, Query};
use tonic_blueprint_testkit::Captured;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations");

/// A schema unique to one test of one run; dropped (with everything in it) on drop.
struct TestSchema {
    name: String,
}

impl TestSchema {
    async fn create() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!(
            "tb_db_{}_{}_{}",
            std::process::id(),
            nanos,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test schema");
        admin.close().await.expect("close the admin connection");
        Self { name }
    }

    /// The test database with this schema first on the search path: unqualified tables
    /// (the fixtures', `_sqlx_migrations`) live in it.
    fn url(&self) -> String {
        format!("{ADMIN_URL}?options[search_path]={}", self.name)
    }

    fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            min_connections: 0,
            max_connections: 4,
            acquire_timeout_ms: 3_000,
            connect_attempts: 2,
            connect_backoff_ms: 50,
            ..DatabaseConfig::new(self.url())
        }
    }

    async fn migrated(&self) -> Database {
        let db = Database::connect(&DatabaseConfig {
            migrations: Some(MIGRATIONS.into()),
            ..self.config()
        })
        .await
        .expect("connect and migrate");
        assert_eq!(db.backend(), Backend::Postgres);
        db
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs outside async code (and maybe while unwinding): a thread of its own with
        // its own runtime; failures are ignored so a failed test still reports its own panic.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

fn insert_item(id: i64, name: &str) -> Query {
    Query::new("INSERT INTO test_item (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
}

/// The status message must say what happened and nothing about the statement.
fn assert_no_leak(status: &tonic::Status, forbidden: &[&str]) {
    let message = status.message().to_lowercase();
    for word in forbidden {
        assert!(
            !message.contains(&word.to_lowercase()),
            "status message {message:?} leaks {word:?}"
        );
    }
    assert!(status.details().is_empty());
}

#[tokio::test]
async fn migrations_apply_once_and_a_second_run_applies_nothing() {
    let schema = TestSchema::create().await;
    let db = Database::connect(&schema.config()).await.unwrap();

    let first = db.migrate(MIGRATIONS).await.unwrap();
    assert_eq!(first.applied, vec![1, 2]);
    assert_eq!(first.total, 2);

    let second = db.migrate(MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.total, 2);

    let tables = db
        .fetch_all(
            "list_tables",
            None,
            Query::new(
                "SELECT table_name::TEXT AS name FROM information_schema.tables \
                 WHERE table_schema = $1 ORDER BY table_name",
            )
            .bind(schema.name.as_str()),
        )
        .await
        .unwrap();
    let names: Vec<String> = tables
        .iter()
        .map(|row| row.try_get("name").unwrap())
        .collect();
    assert_eq!(names, ["_sqlx_migrations", "test_item", "test_order"]);

    // A second pool configured with the same folder applies nothing on connect either.
    let again = schema.migrated().await;
    assert!(again.migrate(MIGRATIONS).await.unwrap().applied.is_empty());
}

#[tokio::test]
async fn unique_violation_is_already_exists_and_leaks_nothing() {
    let schema = TestSchema::create().await;
    let db = schema.migrated().await;
    assert_eq!(
        db.execute("insert_item", None, insert_item(1, "apple"))
            .await
            .unwrap(),
        1
    );

    let err = db
        .execute("insert_item", None, insert_item(2, "apple"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::AlreadyExists);
    assert_eq!(err.database_code().as_deref(), Some("23505"));
    assert_eq!(err.operation(), Some("insert_item"));
    // The log side keeps the driver's text.
    assert!(err.to_string().contains("test_item_name_key"), "{err}");

    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert_eq!(status.message(), "already exists");
    assert_no_leak(
        &status,
        &[
            "test_item",
            "apple",
            "insert",
            "duplicate",
            "constraint",
            "23505",
            &schema.name,
        ],
    );
}

#[tokio::test]
async fn missing_row_is_not_found() {
    let schema = TestSchema::create().await;
    let db = schema.migrated().await;
    let get = || Query::new("SELECT name FROM test_item WHERE id = $1").bind(42_i64);

    assert!(
        db.fetch_optional("get_item", None, get())
            .await
            .unwrap()
            .is_none()
    );
    let err = db.fetch_one("get_item", None, get()).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::NotFound);
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "not found");

    db.execute("insert_item", None, insert_item(42, "pear"))
        .await
        .unwrap();
    let row = db.fetch_one("get_item", None, get()).await.unwrap();
    assert_eq!(row.try_get::<String>("name").unwrap(), "pear");
}

#[tokio::test]
async fn foreign_key_not_null_and_check_violations_are_mapped() {
    let schema = TestSchema::create().await;
    let db = schema.migrated().await;

    let orphan = Query::new("INSERT INTO test_order (id, item_id) VALUES ($1, $2)")
        .bind(1_i64)
        .bind(999_i64);
    let err = db.execute("insert_order", None, orphan).await.unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("23503"));
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_no_leak(&status, &["test_order", "test_item", "foreign", "999"]);

    let nameless = Query::new("INSERT INTO test_item (id, name) VALUES ($1, $2)")
        .bind(1_i64)
        .bind(None::<String>);
    let err = db.execute("insert_item", None, nameless).await.unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("23502"));
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "invalid argument");

    let negative = Query::new("INSERT INTO test_item (id, name, quantity) VALUES ($1, $2, $3)")
        .bind(2_i64)
        .bind("plum")
        .bind(-1_i64);
    let err = db.execute("insert_item", None, negative).await.unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("23514"));
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // A syntax error is the server's fault: INTERNAL, and the SQL stays out of the status.
    let err = db
        .execute("broken", None, Query::new("SELEC nonsense FROM test_item"))
        .await
        .unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), "internal error");
}

#[tokio::test]
async fn statement_past_the_deadline_is_deadline_exceeded_and_stopped_on_the_server() {
    let schema = TestSchema::create().await;
    // One connection: if the server kept sleeping after the deadline, the next statement
    // would wait for it.
    let db = Database::connect(&DatabaseConfig {
        min_connections: 1,
        max_connections: 1,
        ..schema.config()
    })
    .await
    .unwrap();

    let deadline = Deadline::after(Duration::from_millis(100), DeadlineSource::Client);
    let started = Instant::now();
    let err = db
        .fetch_all(
            "sleep",
            Some(&deadline),
            Query::new("SELECT pg_sleep(2)::TEXT"),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), DbErrorKind::DeadlineExceeded, "{err}");
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(status.message(), "deadline exceeded");

    // The single connection is free again long before pg_sleep(2) would have finished.
    db.health(None).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );

    // A statement that fits its deadline runs normally (inside the statement_timeout
    // transaction) and its work is committed.
    let roomy = Deadline::after(Duration::from_secs(5), DeadlineSource::Server);
    let rows = db
        .fetch_all(
            "short_sleep",
            Some(&roomy),
            Query::new("SELECT pg_sleep(0.01)::TEXT AS slept"),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // A deadline already passed never reaches the database.
    let gone = Deadline::after(Duration::ZERO, DeadlineSource::Client);
    let err = db
        .execute(
            "create_table",
            Some(&gone),
            Query::new("CREATE TABLE never (id BIGINT)"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    let exists = db
        .fetch_optional(
            "find_table",
            None,
            Query::new(
                "SELECT 1 AS one FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_name = 'never'",
            )
            .bind(schema.name.as_str()),
        )
        .await
        .unwrap();
    assert!(exists.is_none());
}

#[tokio::test]
async fn health_is_ok_and_pool_stats_count_connections() {
    let schema = TestSchema::create().await;
    let db = Database::connect(&DatabaseConfig {
        min_connections: 1,
        max_connections: 3,
        ..schema.config()
    })
    .await
    .unwrap();
    db.health(None).await.unwrap();
    let deadline = Deadline::after(Duration::from_secs(2), DeadlineSource::Server);
    db.health(Some(&deadline)).await.unwrap();

    let stats = db.record_pool_metrics();
    assert_eq!(stats.max, 3);
    assert!(stats.size >= 1 && stats.size <= 3, "{stats:?}");
    assert_eq!(stats.in_use + stats.idle, stats.size, "{stats:?}");
    // A connection held outside the helper shows as in use.
    let held = db.as_postgres().unwrap().acquire().await.unwrap();
    let stats = db.record_pool_metrics();
    assert!(stats.in_use >= 1, "{stats:?}");
    drop(held);
    assert!(db.target().contains("127.0.0.1:5432"), "{}", db.target());

    db.close().await;
    let err = db.health(None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn closed_port_fails_after_bounded_retries_naming_host_and_port_not_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = DatabaseConfig {
        connect_attempts: 3,
        connect_backoff_ms: 20,
        acquire_timeout_ms: 1_000,
        ..DatabaseConfig::new(format!(
            "postgres://app:hunter2-secret@127.0.0.1:{port}/shop"
        ))
    };
    assert!(!format!("{config:?}").contains("hunter2"));

    let started = Instant::now();
    let err = Database::connect(&config).await.unwrap_err();
    let took = started.elapsed();
    // Three attempts with up to 20 ms then up to 40 ms between them (full jitter); refused
    // connections fail at once.
    assert!(took < Duration::from_secs(3), "{took:?}");

    let text = err.to_string();
    assert!(
        matches!(err, DbError::Connect { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("shop"), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"));

    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_no_leak(
        &status,
        &["127.0.0.1", &port.to_string(), "shop", "hunter2"],
    );
}

#[tokio::test]
async fn observe_bounds_and_counts_raw_sqlx_work() {
    let schema = TestSchema::create().await;
    let db = schema.migrated().await;
    let pool = db.as_postgres().unwrap().clone();
    assert!(db.as_sqlite().is_none());

    db.observe("add_two", None, async {
        let mut tx = pool.begin().await?;
        for (id, name) in [(1_i64, "fig"), (2, "kiwi")] {
            sqlx::query("INSERT INTO test_item (id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
    .await
    .unwrap();
    let rows = db
        .fetch_all("list_items", None, Query::new("SELECT id FROM test_item"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);

    let deadline = Deadline::after(Duration::from_millis(50), DeadlineSource::Server);
    let err = db
        .observe("raw_sleep", Some(&deadline), async {
            sqlx::query("SELECT pg_sleep(1)").execute(&pool).await
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(err.operation(), Some("raw_sleep"));
}

/// Every event of this test binary, from a global subscriber installed once: a scoped one
/// (`set_default`) races with other tests' threads over tracing's per-callsite interest cache.
fn captured_logs() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
        captured
    })
}

#[tokio::test]
async fn slow_and_failed_statements_are_logged_with_their_operation_not_their_sql() {
    let schema = TestSchema::create().await;
    // A threshold far above what `SELECT 1` takes on loopback even on a loaded machine, and a
    // nap past it: which side of the threshold each statement lands on does not depend on
    // the machine's load.
    let db = Database::connect(&DatabaseConfig {
        slow_query_threshold_ms: 250,
        ..schema.config()
    })
    .await
    .unwrap();

    let captured = captured_logs();

    db.fetch_all("nap", None, Query::new("SELECT pg_sleep(0.3)::TEXT"))
        .await
        .unwrap();
    db.fetch_all("quick", None, Query::new("SELECT 1 AS one"))
        .await
        .unwrap();
    let _ = db
        .execute(
            "missing_table",
            None,
            Query::new("DELETE FROM no_such_table"),
        )
        .await
        .unwrap_err();

    let logs = captured.text();
    let logs: String = logs
        .lines()
        .filter(|l| {
            ["\"nap\"", "\"quick\"", "\"missing_table\""]
                .iter()
                .any(|op| l.contains(op))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line = |operation: &str| {
        logs.lines()
            .find(|l| l.contains("database query") && l.contains(operation))
            .unwrap_or_else(|| panic!("no event for {operation} in:\n{logs}"))
            .to_owned()
    };
    let nap = line("\"nap\"");
    assert!(nap.contains("WARN"), "{nap}");
    assert!(nap.contains("db.slow=true"), "{nap}");
    assert!(nap.contains("db.rows=1"), "{nap}");
    let quick = line("\"quick\"");
    assert!(
        quick.contains("DEBUG") && quick.contains("db.slow=false"),
        "{quick}"
    );
    let failed = line("\"missing_table\"");
    assert!(failed.contains("ERROR"), "{failed}");
    assert!(failed.contains("no_such_table"), "{failed}");
    assert!(!logs.contains("pg_sleep"), "SQL text was logged:\n{logs}");
}
