//! The Redis store (fred) and the two-tier store (moka in front of Redis).

use crate::broadcast::InvalidationBroadcast;
use crate::store::{CacheStore, MokaStore, StoreError, StoreFuture};
use bytes::Bytes;
use fred::prelude::*;
use fred::types::ExpireOptions;
use std::sync::Arc;
use std::time::Duration;

fn store_error(e: fred::error::Error) -> StoreError {
    StoreError(e.to_string())
}

/// Entries in Redis under `<prefix><hashed key>`, shared by every replica.
#[derive(Clone, Debug)]
pub struct RedisStore {
    client: Client,
    prefix: String,
}

impl RedisStore {
    /// A store on `client` with keys under `prefix` (the blueprint's is `<service>:`).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: u64) -> String {
        format!("{}{key:016x}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }
}

impl CacheStore for RedisStore {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            self.client
                .get::<Option<Bytes>, _>(self.key(key))
                .await
                .map_err(store_error)
        })
    }

    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
            self.client
                .set::<(), _, _>(self.key(key), value, Some(Expiration::PX(ms)), None, false)
                .await
                .map_err(store_error)
        })
    }

    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.client
                .del::<(), _>(self.key(key))
                .await
                .map_err(store_error)
        })
    }

    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        let tags = tags.to_vec();
        Box::pin(async move {
            let member = self.key(key);
            // A tag set lives as long as the longest entry it names. One round trip.
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            let pipeline = self.client.pipeline();
            for tag in tags {
                let set = self.tag_key(&tag);
                let _: () = pipeline
                    .sadd(&set, member.clone())
                    .await
                    .map_err(store_error)?;
                let _: () = pipeline
                    .expire(&set, secs, Some(ExpireOptions::GT))
                    .await
                    .map_err(store_error)?;
                let _: () = pipeline
                    .expire(&set, secs, Some(ExpireOptions::NX))
                    .await
                    .map_err(store_error)?;
            }
            pipeline.all::<()>().await.map_err(store_error)
        })
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let tag = tag.to_owned();
        Box::pin(async move { Ok(self.invalidate_tag_keys(&tag).await?.len()) })
    }

    fn get_many(&self, keys: &[u64]) -> StoreFuture<'_, Vec<Option<Bytes>>> {
        let names: Vec<String> = keys.iter().map(|k| self.key(*k)).collect();
        Box::pin(async move {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<Bytes>> =
                self.client.mget(names.clone()).await.map_err(store_error)?;
            if values.len() != names.len() {
                return Err(StoreError(format!(
                    "MGET of {} keys answered {} values",
                    names.len(),
                    values.len()
                )));
            }
            Ok(values)
        })
    }

    fn set_many(&self, entries: Vec<(u64, Bytes)>, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
            let pipeline = self.client.pipeline();
            for (key, value) in entries {
                let _: () = pipeline
                    .set(self.key(key), value, Some(Expiration::PX(ms)), None, false)
                    .await
                    .map_err(store_error)?;
            }
            pipeline.all::<()>().await.map_err(store_error)
        })
    }
}

impl RedisStore {
    /// Removes every entry tagged `tag` and the tag itself; returns the hashed keys it named.
    pub(crate) async fn invalidate_tag_keys(&self, tag: &str) -> Result<Vec<u64>, StoreError> {
        let set = self.tag_key(tag);
        let members: Vec<String> = self.client.smembers(&set).await.map_err(store_error)?;
        let mut doomed = members.clone();
        doomed.push(set);
        self.client
            .del::<(), _>(doomed)
            .await
            .map_err(store_error)?;
        Ok(members
            .iter()
            .filter_map(|m| m.strip_prefix(&self.prefix))
            .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
            .collect())
    }
}

/// moka in front of Redis: hits in this process cost no round trip; misses fall through to
/// Redis and fill the local tier. Local entries live at most `local_ttl`.
///
/// Invalidations (a deleted key, a tag) remove the shared entry and this replica's local
/// copy. With a broadcast ([`TwoTierStore::with_broadcast`], or `broadcast_over_nats` with
/// the `nats` feature) they also reach every other replica, which drops its local copies of
/// the same keys. Without one, other replicas may serve their local copy until `local_ttl`
/// runs out; a replica that read the entry from Redis just before it was deleted may also keep
/// it that long, so keep `local_ttl` short (seconds) where staleness matters.
#[derive(Clone)]
pub struct TwoTierStore {
    pub(crate) local: MokaStore,
    remote: RedisStore,
    local_ttl: Duration,
    broadcast: Option<Arc<dyn InvalidationBroadcast>>,
}

impl std::fmt::Debug for TwoTierStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoTierStore")
            .field("remote", &self.remote)
            .field("local_ttl", &self.local_ttl)
            .field("broadcast", &self.broadcast.is_some())
            .finish_non_exhaustive()
    }
}

impl TwoTierStore {
    /// `local` in front of `remote`; local copies live at most `local_ttl`.
    pub fn new(local: MokaStore, remote: RedisStore, local_ttl: Duration) -> Self {
        Self {
            local,
            remote,
            local_ttl,
            broadcast: None,
        }
    }

    /// Announces every invalidation through `broadcast`, so other replicas drop their local
    /// copies; they apply what they receive with [`TwoTierStore::drop_local`].
    pub fn with_broadcast(mut self, broadcast: impl InvalidationBroadcast) -> Self {
        self.broadcast = Some(Arc::new(broadcast));
        self
    }

    /// Drops this replica's local copies of `keys` (what another replica announced).
    pub async fn drop_local(&self, keys: &[u64]) {
        for key in keys {
            self.local.cache.invalidate(key).await;
        }
    }

    async fn announce(&self, keys: &[u64]) -> Result<(), StoreError> {
        match &self.broadcast {
            Some(broadcast) if !keys.is_empty() => broadcast.announce(keys).await,
            _ => Ok(()),
        }
    }
}

impl CacheStore for TwoTierStore {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            if let Some(value) = self.local.get(key).await? {
                return Ok(Some(value));
            }
            let value = self.remote.get(key).await?;
            if let Some(value) = &value {
                self.local.set(key, value.clone(), self.local_ttl).await?;
            }
            Ok(value)
        })
    }

    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.local
                .set(key, value.clone(), ttl.min(self.local_ttl))
                .await?;
            self.remote.set(key, value, ttl).await
        })
    }

    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.local.delete(key).await?;
            self.remote.delete(key).await?;
            self.announce(&[key]).await
        })
    }

    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        let tags = tags.to_vec();
        Box::pin(async move {
            self.local.tag(key, &tags, ttl.min(self.local_ttl)).await?;
            self.remote.tag(key, &tags, ttl).await
        })
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let tag = tag.to_owned();
        Box::pin(async move {
            self.local.invalidate_tag(&tag).await?;
            let keys = self.remote.invalidate_tag_keys(&tag).await?;
            self.drop_local(&keys).await;
            self.announce(&keys).await?;
            Ok(keys.len())
        })
    }

    fn get_many(&self, keys: &[u64]) -> StoreFuture<'_, Vec<Option<Bytes>>> {
        let keys = keys.to_vec();
        Box::pin(async move {
            let mut values = self.local.get_many(&keys).await?;
            let missing: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
            if missing.is_empty() {
                return Ok(values);
            }
            let wanted: Vec<u64> = missing.iter().map(|i| keys[*i]).collect();
            let found = self.remote.get_many(&wanted).await?;
            for (i, value) in missing.into_iter().zip(found) {
                if let Some(value) = &value {
                    self.local
                        .set(keys[i], value.clone(), self.local_ttl)
                        .await?;
                }
                values[i] = value;
            }
            Ok(values)
        })
    }

    fn set_many(&self, entries: Vec<(u64, Bytes)>, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            for (key, value) in &entries {
                self.local
                    .set(*key, value.clone(), ttl.min(self.local_ttl))
                    .await?;
            }
            self.remote.set_many(entries, ttl).await
        })
    }
}
