//! Migrations: the SQL files of a folder, applied once.

use std::collections::HashSet;
use std::path::Path;

use sqlx::migrate::{Migrate, MigrateError, Migrator};

use super::pool::Pool;
use super::{Database, DbError};

/// What [`Database::migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// The versions this call applied, in order; empty when the database was up to date.
    pub applied: Vec<i64>,
    /// The migrations the folder holds.
    pub total: usize,
}

impl Database {
    /// Applies the migrations in `dir` that the database has not seen yet.
    ///
    /// Files are named `<version>_<description>.sql` (`0001_create_item.sql`) and applied in
    /// version order, each in its own transaction, and recorded in `_sqlx_migrations`;
    /// running again applies nothing. A migration changed after it was applied is refused
    /// (checksum mismatch) rather than run twice. Replicas starting together are serialised
    /// by PostgreSQL's advisory lock.
    pub async fn migrate(&self, dir: impl AsRef<Path>) -> Result<MigrationReport, DbError> {
        let dir = dir.as_ref();
        let failed = |source: MigrateError| DbError::Migrate {
            dir: dir.display().to_string(),
            source,
        };
        let mut migrator = Migrator::new(dir).await.map_err(failed)?;
        // The lock is taken here, around the listing too, so the report is exact.
        migrator.set_locking(false);
        let total = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count();

        macro_rules! apply {
            ($pool:expr) => {{
                let mut conn = $pool
                    .acquire()
                    .await
                    .map_err(|e| failed(MigrateError::Execute(e)))?;
                conn.lock().await.map_err(failed)?;
                let result = apply(&migrator, &mut *conn).await;
                let unlocked = conn.unlock().await;
                let applied = result.map_err(failed)?;
                unlocked.map_err(failed)?;
                applied
            }};
        }
        let before: HashSet<i64> = match &self.pool {
            Pool::Postgres(pool) => apply!(pool),
            Pool::Sqlite(pool) => apply!(pool),
        };
        let applied: Vec<i64> = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
            .map(|m| m.version)
            .collect();
        tracing::info!(
            db.target = %self.shared.target,
            migrations.dir = %dir.display(),
            migrations.applied = applied.len(),
            migrations.total = total,
            "database migrations applied"
        );
        Ok(MigrationReport { applied, total })
    }
}

/// Lists what was applied before, then applies the rest; returns the versions applied
/// before.
async fn apply<'c, C>(migrator: &Migrator, conn: &'c mut C) -> Result<HashSet<i64>, MigrateError>
where
    C: Migrate,
    &'c mut C: sqlx::Acquire<'c>,
    <<&'c mut C as sqlx::Acquire<'c>>::Connection as std::ops::Deref>::Target: Migrate,
{
    conn.ensure_migrations_table().await?;
    let before = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    migrator.run(conn).await?;
    Ok(before)
}
