//! The cache client for handlers (the blueprint's cache package): string keys under a
//! per-service namespace, get/set/delete with a TTL, batches, retries with exponential
//! backoff, statistics and one log event per operation.
//!
//! The response cache layer never retries: on the request path a slow or failing store costs
//! a handler call, not a wait. Explicit operations are different: a handler that writes
//! through the cache wants the write to land, so they retry.

use crate::invalidate::budget;
use crate::store::{CacheStore, StoreError};
use bytes::Bytes;
use siphasher::sip::SipHasher13;
use std::future::Future;
use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic_blueprint_core::{Deadline, events, names};

/// How long one try of an explicit operation may take by default.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

/// The label naming a client's namespace on the shared cache counters.
pub const LABEL_NAMESPACE: &str = "cache_namespace";

/// How explicit operations retry: `attempts` tries in all, waiting `initial`, then
/// `initial * multiplier`, ... (at most `max_delay`) between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second try.
    pub initial: Duration,
    /// Each wait is this many times the one before.
    pub multiplier: u32,
    /// No wait is longer.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 3 tries, waiting 100 ms then 200 ms.
    fn default() -> Self {
        Self {
            attempts: 3,
            initial: Duration::from_millis(100),
            multiplier: 2,
            max_delay: Duration::from_secs(5),
        }
    }
}

impl Retry {
    /// One try, no retry.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed try number `failed` (1-based).
    pub fn delay(&self, failed: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1)
            .saturating_pow(failed.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max_delay)
    }
}

/// What a client has done since it was made (clones share them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys read and found.
    pub hits: u64,
    /// Keys read and not found.
    pub misses: u64,
    /// Keys written.
    pub sets: u64,
    /// Keys deleted.
    pub deletes: u64,
    /// Operations that failed after their last try.
    pub errors: u64,
    /// Tries that failed and were retried.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
}

/// An explicit operation that failed on every try. Its text names the backend's error for
/// logs; convert it to a [`tonic::Status`] (UNAVAILABLE, no detail) for clients.
#[derive(Debug)]
pub struct CacheError {
    /// `get`, `set`, `delete`, `get_batch`, `set_batch` or `invalidate_tag`.
    pub operation: &'static str,
    /// Tries made.
    pub attempts: u32,
    /// The last try's error.
    pub source: StoreError,
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cache {} failed after {} tries: {}",
            self.operation, self.attempts, self.source
        )
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<CacheError> for tonic::Status {
    /// UNAVAILABLE with a fixed message: the backend's error stays in the logs.
    fn from(_: CacheError) -> Self {
        tonic::Status::unavailable(
            tonic_blueprint_core::catalogue::Text::Unavailable
                .text(tonic_blueprint_core::catalogue::Lang::En),
        )
    }
}

/// The cache client; cheap to clone, clones share the store and the statistics.
///
/// ```
/// # async fn demo() -> Result<(), tonic_blueprint_cache::CacheError> {
/// use std::time::Duration;
/// use tonic_blueprint_cache::{CacheClient, MokaStore};
///
/// let cache = CacheClient::new(MokaStore::default(), "payments");
/// cache.set("user:7:balance", "1200", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get("user:7:balance").await?.as_deref(), Some(&b"1200"[..]));
/// let values = cache.get_batch(&["user:7:balance", "user:8:balance"]).await?;
/// assert!(values[1].is_none());
/// assert_eq!(cache.stats().hits, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheClient {
    store: Arc<dyn CacheStore>,
    namespace: Arc<str>,
    retry: Retry,
    attempt_timeout: Duration,
    deadline: Option<Deadline>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for CacheClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheClient")
            .field("namespace", &self.namespace)
            .field("retry", &self.retry)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline", &self.deadline)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CacheClient {
    /// A client on `store` whose keys live under `namespace` (the service's name): two
    /// namespaces on one store never see each other's keys.
    pub fn new(store: impl CacheStore, namespace: impl Into<String>) -> Self {
        Self::from_arc(Arc::new(store), namespace)
    }

    /// As [`CacheClient::new`], for a store already shared.
    pub fn from_arc(store: Arc<dyn CacheStore>, namespace: impl Into<String>) -> Self {
        Self {
            store,
            namespace: namespace.into().into(),
            retry: Retry::default(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            deadline: None,
            stats: Arc::default(),
        }
    }

    /// How failed operations retry (default: 3 tries from 100 ms).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How long one try may take before it counts as failed (default
    /// [`DEFAULT_ATTEMPT_TIMEOUT`], 100 ms).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The same client (same store and statistics), bounded by a call's deadline as well:
    /// no try outlasts nine tenths of what is left of it, and no retry starts that could
    /// not end before it. Pass the `Deadline` of the request extensions (a handler's
    /// `request.extensions().get::<Deadline>().copied()`).
    pub fn with_deadline(&self, deadline: Option<Deadline>) -> Self {
        Self {
            deadline,
            ..self.clone()
        }
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The hashed store key of `key`: it holds none of the key's text.
    pub fn key_hash(&self, key: &str) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(0x7462_6361_6368_6563, 0x6c69_656e_746b_6579);
        hasher.write(self.namespace.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(key.as_bytes());
        hasher.finish()
    }

    /// What it has done so far.
    pub fn stats(&self) -> CacheStats {
        let s = &self.stats;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            sets: s.sets.load(Ordering::Relaxed),
            deletes: s.deletes.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
        }
    }

    /// The value of `key`, if present and fresh.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let hash = self.key_hash(key);
        let value = self.run("get", hash, || self.store.get(hash)).await?;
        self.count_reads(std::slice::from_ref(&value));
        Ok(value)
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let hash = self.key_hash(key);
        let value = value.into();
        self.run("set", hash, || self.store.set(hash, value.clone(), ttl))
            .await?;
        self.add(&self.stats.sets, names::CACHE_SETS, 1);
        Ok(())
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let hash = self.key_hash(key);
        self.run("delete", hash, || self.store.delete(hash)).await?;
        self.add(&self.stats.deletes, names::CACHE_DELETES, 1);
        Ok(())
    }

    /// The values of `keys`, in order, in one round trip on Redis (`MGET`).
    pub async fn get_batch(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let hashes: Vec<u64> = keys.iter().map(|k| self.key_hash(k)).collect();
        let first = hashes.first().copied().unwrap_or_default();
        let values = self
            .run("get_batch", first, || self.store.get_many(&hashes))
            .await?;
        self.count_reads(&values);
        Ok(values)
    }

    /// Stores every `(key, value)` for `ttl`, in one round trip on Redis (a pipeline).
    pub async fn set_batch<K, V>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        ttl: Duration,
    ) -> Result<(), CacheError>
    where
        K: AsRef<str>,
        V: Into<Bytes>,
    {
        let entries: Vec<(u64, Bytes)> = entries
            .into_iter()
            .map(|(k, v)| (self.key_hash(k.as_ref()), v.into()))
            .collect();
        let first = entries.first().map(|e| e.0).unwrap_or_default();
        self.run("set_batch", first, || {
            self.store.set_many(entries.clone(), ttl)
        })
        .await?;
        self.add(&self.stats.sets, names::CACHE_SETS, entries.len() as u64);
        Ok(())
    }

    /// Removes every entry tagged `tag` (by this client's store, including response-cache
    /// entries when the layer shares the store); returns how many it named.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize, CacheError> {
        let removed = self
            .run("invalidate_tag", 0, || self.store.invalidate_tag(tag))
            .await?;
        self.add(&self.stats.deletes, names::CACHE_DELETES, removed as u64);
        Ok(removed)
    }

    fn count_reads(&self, values: &[Option<Bytes>]) {
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        self.add(&self.stats.hits, names::CACHE_HITS, hits);
        self.add(
            &self.stats.misses,
            names::CACHE_MISSES,
            values.len() as u64 - hits,
        );
    }

    fn add(&self, stat: &AtomicU64, counter: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        stat.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(counter, LABEL_NAMESPACE => self.namespace.to_string()).increment(n);
    }

    /// Runs one operation with its tries, waits and log event.
    async fn run<'a, T, F, Fut>(
        &'a self,
        operation: &'static str,
        key_hash: u64,
        mut attempt: F,
    ) -> Result<T, CacheError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + 'a,
    {
        let started = Instant::now();
        let attempts = self.retry.attempts.max(1);
        let mut tried = 0;
        loop {
            tried += 1;
            let limit = budget(self.attempt_timeout, self.deadline.as_ref());
            let error = match tokio::time::timeout(limit, attempt()).await {
                Ok(Ok(value)) => {
                    events::cache_operation(operation, key_hash, None, started.elapsed(), None);
                    return Ok(value);
                }
                Ok(Err(e)) => e,
                Err(_) => StoreError(format!("no answer within {limit:?}")),
            };
            let delay = self.retry.delay(tried);
            let no_time = self
                .deadline
                .is_some_and(|d| d.remaining() <= delay + self.attempt_timeout);
            if tried >= attempts || no_time {
                self.add(&self.stats.errors, names::CACHE_ERRORS, 1);
                events::cache_operation(operation, key_hash, None, started.elapsed(), Some(&error));
                return Err(CacheError {
                    operation,
                    attempts: tried,
                    source: error,
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cache.operation = operation, try_number = tried, error = %error, "cache operation failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_and_is_capped() {
        let retry = Retry::default();
        assert_eq!(retry.delay(1), Duration::from_millis(100));
        assert_eq!(retry.delay(2), Duration::from_millis(200));
        assert_eq!(retry.delay(3), Duration::from_millis(400));
        assert_eq!(retry.delay(40), Duration::from_secs(5));
    }

    #[test]
    fn namespaces_do_not_share_keys() {
        let a = CacheClient::new(crate::MokaStore::default(), "a");
        let b = CacheClient::new(crate::MokaStore::default(), "b");
        assert_ne!(a.key_hash("k"), b.key_hash("k"));
        assert_ne!(a.key_hash("k"), a.key_hash("k2"));
    }
}
