//! Where entries live: the [`CacheStore`] trait and its in-process backend, moka.

use bytes::Bytes;
use dashmap::DashMap;
use moka::Expiry;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A boxed future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A backend failure. Never shown to clients: a failing cache only costs a handler call.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cache store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A key-value store for cached responses, keyed by the hashed request.
pub trait CacheStore: Send + Sync + 'static {
    /// The value of `key`, if present and fresh.
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>>;
    /// Stores `value` for `ttl`.
    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()>;
    /// Removes `key`.
    fn delete(&self, key: u64) -> StoreFuture<'_, ()>;
    /// Records that the entry `key` (stored for `ttl`) carries `tags`.
    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()>;
    /// Removes every entry carrying `tag`; returns how many keys it named.
    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize>;

    /// The values of `keys`, in order. The default asks for each key in turn; the Redis store
    /// sends one `MGET`.
    fn get_many(&self, keys: &[u64]) -> StoreFuture<'_, Vec<Option<Bytes>>> {
        let keys = keys.to_vec();
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        })
    }

    /// Stores every `(key, value)` for `ttl`. The default stores each in turn; the Redis
    /// store sends one pipeline.
    fn set_many(&self, entries: Vec<(u64, Bytes)>, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            for (key, value) in entries {
                self.set(key, value, ttl).await?;
            }
            Ok(())
        })
    }
}

/// The in-process store: moka, bounded by the total size of its values.
#[derive(Clone, Debug)]
pub struct MokaStore {
    pub(crate) cache: moka::future::Cache<u64, (Bytes, Duration)>,
    tags: Arc<DashMap<String, HashSet<u64>>>,
}

/// Tags indexed in process before the index is pruned of keys that left the cache.
const MAX_TAGS: usize = 100_000;

/// Each entry lives for the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<u64, (Bytes, Duration)> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &(Bytes, Duration),
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }

    fn expire_after_update(
        &self,
        _key: &u64,
        value: &(Bytes, Duration),
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

impl MokaStore {
    /// A store holding at most `max_bytes` of values (plus a fixed overhead per entry).
    pub fn new(max_bytes: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &u64, value: &(Bytes, Duration)| {
                u32::try_from(value.0.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self {
            cache,
            tags: Arc::default(),
        }
    }
}

impl Default for MokaStore {
    /// 64 MiB.
    fn default() -> Self {
        Self::new(64 * 1024 * 1024)
    }
}

impl CacheStore for MokaStore {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { Ok(self.cache.get(&key).await.map(|(value, _)| value)) })
    }

    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.cache.insert(key, (value, ttl)).await;
            Ok(())
        })
    }

    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.cache.invalidate(&key).await;
            Ok(())
        })
    }

    fn tag(&self, key: u64, tags: &[String], _ttl: Duration) -> StoreFuture<'_, ()> {
        let tags = tags.to_vec();
        Box::pin(async move {
            if self.tags.len() >= MAX_TAGS {
                // Keep the index bounded: forget keys that are no longer cached.
                self.tags.retain(|_, keys| {
                    keys.retain(|k| self.cache.contains_key(k));
                    !keys.is_empty()
                });
            }
            for tag in tags {
                self.tags.entry(tag).or_default().insert(key);
            }
            Ok(())
        })
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let tag = tag.to_owned();
        Box::pin(async move {
            let Some((_, keys)) = self.tags.remove(&tag) else {
                return Ok(0);
            };
            for key in &keys {
                self.cache.invalidate(key).await;
            }
            Ok(keys.len())
        })
    }
}
