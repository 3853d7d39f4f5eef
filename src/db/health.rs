//! The health check and the pool gauges.

use tonic_blueprint_core::Deadline;

use super::pool::Pool;
use super::{
    Database, DbError, POOL_CONNECTIONS_IDLE, POOL_CONNECTIONS_IN_USE, POOL_CONNECTIONS_MAX, Query,
};

/// A snapshot of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open, in use or idle.
    pub size: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// The configured maximum.
    pub max: u32,
}

impl Database {
    /// Runs `SELECT 1` (operation `health`), bounded by `deadline` when given and otherwise
    /// by the pool's acquire timeout; an error means the database cannot serve statements
    /// now.
    pub async fn health(&self, deadline: Option<&Deadline>) -> Result<(), DbError> {
        self.fetch_one("health", deadline, Query::new("SELECT 1"))
            .await
            .map(drop)
    }

    /// The pool's size, idle and in-use connections now.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = match &self.pool {
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
            Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolStats {
            size,
            idle,
            in_use: size - idle,
            max: self.shared.max_connections,
        }
    }

    /// Sets the pool gauges ([`POOL_CONNECTIONS_IN_USE`], [`POOL_CONNECTIONS_IDLE`],
    /// [`POOL_CONNECTIONS_MAX`]) from [`pool_stats`](Self::pool_stats); call it on each
    /// scrape or from a periodic task.
    pub fn record_pool_metrics(&self) -> PoolStats {
        let stats = self.pool_stats();
        metrics::gauge!(POOL_CONNECTIONS_IN_USE).set(f64::from(stats.in_use));
        metrics::gauge!(POOL_CONNECTIONS_IDLE).set(f64::from(stats.idle));
        metrics::gauge!(POOL_CONNECTIONS_MAX).set(f64::from(stats.max));
        stats
    }
}
