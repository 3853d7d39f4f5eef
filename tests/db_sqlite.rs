//! The database helper on SQLite files in a temporary folder, and the parts that need no
//! database: table names and the configuration.
#![cfg(feature = "db")]

use std::path::Path;
use std::time::Duration;

use tonic_blueprint::core::{Deadline, DeadlineSource};
use tonic_blueprint::db::{
    Backend, Database, DatabaseConfig, DbErrorKind, MAX_TABLE_NAME_BYTES, Query, table_name,
};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations");

fn config(path: &Path) -> DatabaseConfig {
    DatabaseConfig {
        min_connections: 1,
        max_connections: 4,
        connect_attempts: 1,
        ..DatabaseConfig::new(format!("sqlite://{}", path.display()))
    }
}

async fn migrated(dir: &tempfile::TempDir) -> Database {
    let db = Database::connect(&DatabaseConfig {
        migrations: Some(MIGRATIONS.into()),
        ..config(&dir.path().join("app.db"))
    })
    .await
    .expect("connect and migrate");
    assert_eq!(db.backend(), Backend::Sqlite);
    db
}

fn insert_item(id: i64, name: &str) -> Query {
    Query::new("INSERT INTO test_item (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
}

#[tokio::test]
async fn migrations_create_the_file_and_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    // Neither the folder nor the file exists yet.
    let path = dir.path().join("nested/deeper/app.db");
    assert!(!path.exists());

    let db = Database::connect(&config(&path)).await.unwrap();
    assert!(path.exists());
    assert_eq!(db.target(), format!("SQLite file {}", path.display()));

    let first = db.migrate(MIGRATIONS).await.unwrap();
    assert_eq!(first.applied, vec![1, 2]);
    assert_eq!(first.total, 2);
    let second = db.migrate(MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");

    let tables: Vec<String> = db
        .fetch_all(
            "list_tables",
            None,
            Query::new(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE $1 ORDER BY name",
            )
            .bind("test_%"),
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("name").unwrap())
        .collect();
    assert_eq!(tables, ["test_item", "test_order"]);
    db.close().await;

    // The file keeps what was applied: a new pool on it applies nothing.
    let reopened = Database::connect(&config(&path)).await.unwrap();
    assert!(
        reopened
            .migrate(MIGRATIONS)
            .await
            .unwrap()
            .applied
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_migrations_folder_is_an_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(&config(&dir.path().join("app.db")))
        .await
        .unwrap();
    let err = db
        .migrate(dir.path().join("no-such-folder"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Internal);
    assert!(err.to_string().contains("no-such-folder"), "{err}");
}

#[tokio::test]
async fn unique_violation_is_already_exists_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir).await;
    db.execute("insert_item", None, insert_item(1, "apple"))
        .await
        .unwrap();

    let err = db
        .execute("insert_item", None, insert_item(2, "apple"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::AlreadyExists);
    assert_eq!(err.database_code().as_deref(), Some("2067"));
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert_eq!(status.message(), "already exists");

    // Same id: the primary key (extended code 1555) is a unique violation too.
    let err = db
        .execute("insert_item", None, insert_item(1, "banana"))
        .await
        .unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("1555"));
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    for leak in ["test_item", "unique", "constraint", "banana", "1555"] {
        assert!(
            !status.message().to_lowercase().contains(leak),
            "{:?} leaks {leak}",
            status.message()
        );
    }
}

#[tokio::test]
async fn foreign_key_and_not_null_violations_are_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir).await;

    let orphan = Query::new("INSERT INTO test_order (id, item_id) VALUES ($1, $2)")
        .bind(1_i64)
        .bind(999_i64);
    let err = db.execute("insert_order", None, orphan).await.unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("787"));
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );

    let nameless = Query::new("INSERT INTO test_item (id, name) VALUES ($1, $2)")
        .bind(1_i64)
        .bind(None::<&str>);
    let err = db.execute("insert_item", None, nameless).await.unwrap_err();
    assert_eq!(err.database_code().as_deref(), Some("1299"));
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::InvalidArgument
    );

    let err = db
        .fetch_one(
            "get_item",
            None,
            Query::new("SELECT name FROM test_item WHERE id = $1").bind(7_i64),
        )
        .await
        .unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn values_round_trip_and_a_type_mismatch_is_internal() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir).await;
    db.execute("insert_item", None, insert_item(5, "melon"))
        .await
        .unwrap();
    let changed = db
        .execute(
            "insert_order",
            None,
            Query::new(
                "INSERT INTO test_order (id, item_id, note) VALUES ($1, $2, $3), ($4, $2, $5)",
            )
            .bind(10_i64)
            .bind(5_i64)
            .bind(None::<String>)
            .bind(11_i64)
            .bind(String::from("gift")),
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);

    let rows = db
        .fetch_all(
            "list_orders",
            None,
            Query::new(
                "SELECT o.id, o.note, i.name FROM test_order o \
                 JOIN test_item i ON i.id = o.item_id ORDER BY o.id",
            ),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].len(), 3);
    assert_eq!(rows[0].try_get::<i64>("id").unwrap(), 10);
    assert_eq!(rows[0].try_get::<Option<String>>("note").unwrap(), None);
    assert_eq!(
        rows[1]
            .try_get::<Option<String>>("note")
            .unwrap()
            .as_deref(),
        Some("gift")
    );
    assert_eq!(rows[1].try_get::<String>("name").unwrap(), "melon");

    let err = rows[0].try_get::<i64>("no_such_column").unwrap_err();
    assert!(err.to_string().contains("no_such_column"), "{err}");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), "internal error");
}

#[tokio::test]
async fn a_passed_deadline_never_runs_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir).await;
    let gone = Deadline::after(Duration::ZERO, DeadlineSource::Client);
    let err = db
        .execute("insert_item", Some(&gone), insert_item(1, "late"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::DeadlineExceeded);
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::DeadlineExceeded
    );
    let row = db
        .fetch_optional(
            "get_item",
            None,
            Query::new("SELECT id FROM test_item WHERE id = $1").bind(1_i64),
        )
        .await
        .unwrap();
    assert!(row.is_none());

    let roomy = Deadline::after(Duration::from_secs(5), DeadlineSource::Server);
    db.execute("insert_item", Some(&roomy), insert_item(1, "early"))
        .await
        .unwrap();
    db.health(Some(&roomy)).await.unwrap();
}

#[tokio::test]
async fn an_in_memory_database_is_shared_by_the_pool() {
    let db = Database::connect(&DatabaseConfig {
        min_connections: 1,
        max_connections: 3,
        ..DatabaseConfig::new("sqlite::memory:")
    })
    .await
    .unwrap();
    assert_eq!(db.target(), "SQLite in-memory database");
    assert_eq!(db.migrate(MIGRATIONS).await.unwrap().applied, vec![1, 2]);
    // Several statements at once, on several connections, all see the same tables.
    let (a, b, c) = tokio::join!(
        db.execute("insert_item", None, insert_item(1, "a")),
        db.execute("insert_item", None, insert_item(2, "b")),
        db.fetch_all("list_items", None, Query::new("SELECT id FROM test_item")),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let rows = db
        .fetch_all("list_items", None, Query::new("SELECT id FROM test_item"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
}

#[test]
fn table_names_are_service_short_underscore_entity() {
    assert_eq!(table_name("pay", "payment").unwrap(), "pay_payment");
    assert_eq!(table_name("shop", "cart_item").unwrap(), "shop_cart_item");
    assert_eq!(table_name("s3", "v2_item").unwrap(), "s3_v2_item");

    let refused = [
        ("", "payment", "service short name is empty"),
        ("pay", "", "entity is empty"),
        ("Pay", "payment", "must start with a lowercase"),
        ("pay", "1payment", "must start with a lowercase"),
        ("pay", "_payment", "must start with a lowercase"),
        ("pay", "pay-ment", "only a-z, 0-9 and _"),
        ("pay", "paymént", "only a-z, 0-9 and _"),
        ("pay", "payment; DROP TABLE x", "only a-z, 0-9 and _"),
        ("pay", "payment\"", "only a-z, 0-9 and _"),
    ];
    for (service, entity, reason) in refused {
        let err = table_name(service, entity).unwrap_err();
        assert!(
            err.to_string().contains(reason),
            "{service:?}/{entity:?}: {err}"
        );
    }

    // 63 bytes is the limit, separator included.
    let service = "svc";
    let longest = "e".repeat(MAX_TABLE_NAME_BYTES - service.len() - 1);
    assert_eq!(table_name(service, &longest).unwrap().len(), 63);
    let err = table_name(service, &format!("{longest}e")).unwrap_err();
    assert!(err.to_string().contains("longer than 63 bytes"), "{err}");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Internal);
}

#[test]
fn config_defaults_load_and_redact() {
    let default = DatabaseConfig::default();
    assert_eq!(default.url, "sqlite://data/app.db");
    assert_eq!(default.min_connections, 10);
    assert_eq!(default.max_connections, 100);
    assert_eq!(default.acquire_timeout(), Duration::from_secs(5));
    assert_eq!(default.connect_attempts, 5);
    assert_eq!(default.connect_backoff(), Duration::from_millis(200));
    assert_eq!(
        default.slow_query_threshold(),
        Some(Duration::from_millis(200))
    );
    assert_eq!(default.migrations, None);

    let loaded: DatabaseConfig = serde_json::from_str(
        r#"{"url": "postgres://app:pw-123@db:5432/shop?password=pw-123", "slow_query_threshold_ms": 0, "migrations": "migrations"}"#,
    )
    .unwrap();
    assert_eq!(loaded.min_connections, 10);
    assert_eq!(loaded.slow_query_threshold(), None);
    assert_eq!(loaded.migrations.as_deref(), Some(Path::new("migrations")));
    let shown = format!("{loaded:?}");
    assert!(!shown.contains("pw-123"), "{shown}");
    assert!(shown.contains("postgres://app:***@db:5432/shop"), "{shown}");
}

#[tokio::test]
async fn unusable_configurations_are_refused_before_connecting() {
    let cases = [
        DatabaseConfig::new("mysql://app:pw@db/shop"),
        DatabaseConfig {
            min_connections: 5,
            max_connections: 2,
            ..DatabaseConfig::new("sqlite::memory:")
        },
        DatabaseConfig {
            connect_attempts: 0,
            ..DatabaseConfig::new("sqlite::memory:")
        },
    ];
    for config in cases {
        let err = Database::connect(&config).await.unwrap_err();
        assert_eq!(err.kind(), DbErrorKind::Internal, "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
