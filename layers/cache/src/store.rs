//! Where entries live: the [`CacheStore`] trait and its in-process backend, moka.

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use moka::Expiry;
use moka::notification::RemovalCause;
use siphasher::sip::SipHasher13;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The hash a tag is known by in a store: tags may hold identifiers (`user:7`), and no store
/// key holds one. Every replica hashes alike (fixed keys).
pub fn tag_hash(tag: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0x7462_6361_6368_6574, 0x6167_6861_7368_3031);
    hasher.write(tag.as_bytes());
    hasher.finish()
}

/// Where a store's invalidations stood when a miss began ([`CacheStore::lookup`]): the miss
/// stores its answer only if nothing it is tagged with was invalidated since
/// ([`CacheStore::fill`]), so an answer read before a concurrent invalidation is never kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// The shared store's invalidation count (Redis); 0 without one.
    pub shared: u64,
    /// This process's invalidation count (moka); 0 without one.
    pub local: u64,
}

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

    /// The value of `key` and the store's [`Generation`] at the time of the read: what the
    /// response cache looks up before it runs the handler. The default reads the value and
    /// reports generation 0 (a store without generations cannot tell a stale fill).
    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        Box::pin(async move { Ok((self.get(key).await?, Generation::default())) })
    }

    /// The store's [`Generation`] now (a miss that skipped the lookup reads it instead).
    fn generation(&self) -> StoreFuture<'_, Generation> {
        Box::pin(async { Ok(Generation::default()) })
    }

    /// Stores `value` for `ttl`, tagged with `tags`, unless `key` or one of `tags` was
    /// invalidated after `since`; returns whether it stored it. The default stores and tags
    /// without a check.
    fn fill(
        &self,
        key: u64,
        value: Bytes,
        tags: &[String],
        ttl: Duration,
        since: Generation,
    ) -> StoreFuture<'_, bool> {
        let _ = since;
        let tags = tags.to_vec();
        Box::pin(async move {
            self.set(key, value, ttl).await?;
            self.tag(key, &tags, ttl).await?;
            Ok(true)
        })
    }

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

/// Generation slots: an invalidation marks the slot of each hash it touches with its number.
/// A slot shared by two tags costs at worst an entry not stored, never a stale one.
pub(crate) const SLOTS: u64 = 4096;

/// The slot of a tag hash or an entry key.
pub(crate) fn slot(hash: u64) -> u64 {
    hash % SLOTS
}

/// The in-process generations: a counter and, per slot, the last invalidation that marked it.
#[derive(Debug)]
pub(crate) struct Generations {
    seq: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            seq: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Generations {
    pub(crate) fn current(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Marks the slots of `hashes` with a new number, before anything is removed.
    pub(crate) fn bump(&self, hashes: impl IntoIterator<Item = u64>) {
        let number = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        for hash in hashes {
            self.slots[slot(hash) as usize].fetch_max(number, Ordering::SeqCst);
        }
    }

    /// Whether a slot of `hashes` was marked after `since`.
    pub(crate) fn changed_since(&self, since: u64, hashes: &[u64]) -> bool {
        hashes
            .iter()
            .any(|h| self.slots[slot(*h) as usize].load(Ordering::SeqCst) > since)
    }
}

/// A stored value: its bytes, TTL, tag hashes and a number naming this version of the entry.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    value: Bytes,
    ttl: Duration,
    tags: Arc<[u64]>,
    version: u64,
}

/// Which live entries carry each tag. An entry leaves the index when it leaves the cache
/// (the eviction listener), so the index never needs a scan and holds only live entries.
#[derive(Debug, Default)]
struct TagIndex {
    /// Tag hash → entry key → the entry version it was indexed for.
    tags: DashMap<u64, HashMap<u64, u64>>,
    versions: AtomicU64,
}

impl TagIndex {
    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn add(&self, key: u64, version: u64, tags: &[u64]) {
        for tag in tags {
            self.tags.entry(*tag).or_default().insert(key, version);
        }
    }

    /// Forgets `key` under its tags, if the index still names this version of it.
    fn forget(&self, key: u64, stored: &Stored) {
        for tag in stored.tags.iter() {
            if let Entry::Occupied(mut entry) = self.tags.entry(*tag) {
                if entry.get().get(&key) == Some(&stored.version) {
                    entry.get_mut().remove(&key);
                }
                if entry.get().is_empty() {
                    entry.remove();
                }
            }
        }
    }

    /// Removes a tag; returns the keys it named.
    fn take(&self, tag: u64) -> Vec<u64> {
        self.tags
            .remove(&tag)
            .map(|(_, keys)| keys.into_keys().collect())
            .unwrap_or_default()
    }
}

/// The in-process store: moka, bounded by the total size of its values.
///
/// Tags are indexed by hash, and an entry leaves the index when it leaves the cache (expired,
/// evicted, replaced or removed), so the index holds only live entries and storing never
/// scans it.
#[derive(Clone, Debug)]
pub struct MokaStore {
    pub(crate) cache: moka::future::Cache<u64, Stored>,
    index: Arc<TagIndex>,
    pub(crate) generations: Arc<Generations>,
}

/// Each entry lives for the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<u64, Stored> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Stored,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &u64,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl MokaStore {
    /// A store holding at most `max_bytes` of values (plus a fixed overhead per entry).
    pub fn new(max_bytes: u64) -> Self {
        let index = Arc::new(TagIndex::default());
        let listener = index.clone();
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &u64, stored: &Stored| {
                u32::try_from(stored.value.len() + 64 + 8 * stored.tags.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |key: Arc<u64>, stored: Stored, _cause: RemovalCause| {
                listener.forget(*key, &stored);
            })
            .build();
        Self {
            cache,
            index,
            generations: Arc::default(),
        }
    }

    /// Tags indexed now (live entries carry them).
    pub fn tag_count(&self) -> usize {
        self.index.tags.len()
    }

    /// Inserts `value` with `tags` (hashed), indexed before it becomes visible.
    async fn insert(&self, key: u64, value: Bytes, ttl: Duration, tags: Arc<[u64]>) {
        let version = self.index.next_version();
        self.index.add(key, version, &tags);
        self.cache
            .insert(
                key,
                Stored {
                    value,
                    ttl,
                    tags,
                    version,
                },
            )
            .await;
    }

    /// [`CacheStore::fill`] on this store's own generation number (`since`).
    pub(crate) async fn fill_local(
        &self,
        key: u64,
        value: Bytes,
        tags: &[String],
        ttl: Duration,
        since: u64,
    ) -> bool {
        let mut hashes: Vec<u64> = Vec::with_capacity(tags.len() + 1);
        hashes.push(key);
        hashes.extend(tags.iter().map(|t| tag_hash(t)));
        if self.generations.changed_since(since, &hashes) {
            return false;
        }
        self.insert(key, value, ttl, hashes[1..].into()).await;
        // An invalidation marks its slots before it removes anything: one that this check
        // does not see has yet to remove, and finds the entry in the index.
        if self.generations.changed_since(since, &hashes) {
            self.cache.invalidate(&key).await;
            return false;
        }
        true
    }

    /// Removes `keys` from this store (what another replica invalidated, or a delete).
    pub(crate) async fn remove_keys(&self, keys: &[u64]) {
        self.generations.bump(keys.iter().copied());
        for key in keys {
            self.cache.invalidate(key).await;
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
        Box::pin(async move { Ok(self.cache.get(&key).await.map(|stored| stored.value)) })
    }

    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.insert(key, value, ttl, Arc::new([])).await;
            Ok(())
        })
    }

    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.remove_keys(&[key]).await;
            Ok(())
        })
    }

    fn tag(&self, key: u64, tags: &[String], _ttl: Duration) -> StoreFuture<'_, ()> {
        let added: Vec<u64> = tags.iter().map(|t| tag_hash(t)).collect();
        Box::pin(async move {
            // The entry is stored again with the tags added (it keeps its TTL), so it leaves
            // the index with them.
            let Some(stored) = self.cache.get(&key).await else {
                return Ok(());
            };
            let mut tags = stored.tags.to_vec();
            tags.extend(added.into_iter().filter(|t| !stored.tags.contains(t)));
            self.insert(key, stored.value, stored.ttl, tags.into())
                .await;
            Ok(())
        })
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let hash = tag_hash(tag);
        Box::pin(async move {
            self.generations.bump([hash]);
            let keys = self.index.take(hash);
            for key in &keys {
                self.cache.invalidate(key).await;
            }
            Ok(keys.len())
        })
    }

    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        Box::pin(async move {
            let since = self.generations.current();
            let value = self.cache.get(&key).await.map(|stored| stored.value);
            Ok((
                value,
                Generation {
                    shared: 0,
                    local: since,
                },
            ))
        })
    }

    fn generation(&self) -> StoreFuture<'_, Generation> {
        Box::pin(async move {
            Ok(Generation {
                shared: 0,
                local: self.generations.current(),
            })
        })
    }

    fn fill(
        &self,
        key: u64,
        value: Bytes,
        tags: &[String],
        ttl: Duration,
        since: Generation,
    ) -> StoreFuture<'_, bool> {
        let tags = tags.to_vec();
        Box::pin(async move { Ok(self.fill_local(key, value, &tags, ttl, since.local).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_tag_index_follows_the_entries_out_of_the_cache() {
        let store = MokaStore::new(1 << 20);
        let tags = vec!["a".to_owned(), "b".to_owned()];
        assert!(
            store
                .fill_local(
                    1,
                    Bytes::from_static(b"v"),
                    &tags,
                    Duration::from_secs(60),
                    0
                )
                .await
        );
        assert!(
            store
                .fill_local(
                    2,
                    Bytes::from_static(b"v"),
                    &tags[..1],
                    Duration::from_secs(60),
                    0
                )
                .await
        );
        assert_eq!(store.tag_count(), 2);
        // Replaced with other tags: the old ones no longer name it.
        assert!(
            store
                .fill_local(1, Bytes::from_static(b"w"), &[], Duration::from_secs(60), 0)
                .await
        );
        store.cache.run_pending_tasks().await;
        assert_eq!(store.tag_count(), 1, "only `a` (entry 2) is left");
        store.delete(2).await.expect("delete");
        store.cache.run_pending_tasks().await;
        assert_eq!(store.tag_count(), 0);
    }

    #[tokio::test]
    async fn a_fill_that_began_before_an_invalidation_is_refused() {
        let store = MokaStore::new(1 << 20);
        let tags = vec!["user:7".to_owned()];
        let since = store.generations.current();
        store.invalidate_tag("user:7").await.expect("invalidate");
        assert!(
            !store
                .fill_local(
                    1,
                    Bytes::from_static(b"old"),
                    &tags,
                    Duration::from_secs(60),
                    since
                )
                .await
        );
        assert!(store.get(1).await.expect("get").is_none());
        // Another tag's invalidation does not stop it.
        let since = store.generations.current();
        store.invalidate_tag("user:8").await.expect("invalidate");
        assert!(
            store
                .fill_local(
                    1,
                    Bytes::from_static(b"new"),
                    &tags,
                    Duration::from_secs(60),
                    since
                )
                .await
        );
        // Nor does one of the key itself, afterwards.
        let since = store.generations.current();
        store.delete(1).await.expect("delete");
        assert!(
            !store
                .fill_local(
                    1,
                    Bytes::from_static(b"x"),
                    &tags,
                    Duration::from_secs(60),
                    since
                )
                .await
        );
    }
}
