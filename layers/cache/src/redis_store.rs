//! The Redis store (fred) and the two-tier store (moka in front of Redis).

use crate::store::{CacheStore, MokaStore, StoreError, StoreFuture};
use bytes::Bytes;
use fred::prelude::*;
use fred::types::ExpireOptions;
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
            // A tag set lives as long as the longest entry it names.
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            for tag in tags {
                let set = self.tag_key(&tag);
                self.client
                    .sadd::<(), _, _>(&set, member.clone())
                    .await
                    .map_err(store_error)?;
                self.client
                    .expire::<(), _>(&set, secs, Some(ExpireOptions::GT))
                    .await
                    .map_err(store_error)?;
                self.client
                    .expire::<(), _>(&set, secs, Some(ExpireOptions::NX))
                    .await
                    .map_err(store_error)?;
            }
            Ok(())
        })
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let set = self.tag_key(tag);
        Box::pin(async move {
            let members: Vec<String> = self.client.smembers(&set).await.map_err(store_error)?;
            if !members.is_empty() {
                self.client
                    .del::<(), _>(members.clone())
                    .await
                    .map_err(store_error)?;
            }
            self.client.del::<(), _>(&set).await.map_err(store_error)?;
            Ok(members.len())
        })
    }
}

/// moka in front of Redis: hits in this process cost no round trip; misses fall through to
/// Redis and fill the local tier. Local entries live at most `local_ttl`, which bounds how
/// long a replica can serve an entry another replica deleted.
#[derive(Clone, Debug)]
pub struct TwoTierStore {
    local: MokaStore,
    remote: RedisStore,
    local_ttl: Duration,
}

impl TwoTierStore {
    /// `local` in front of `remote`; local copies live at most `local_ttl`.
    pub fn new(local: MokaStore, remote: RedisStore, local_ttl: Duration) -> Self {
        Self {
            local,
            remote,
            local_ttl,
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
            self.remote.delete(key).await
        })
    }

    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        let tags = tags.to_vec();
        Box::pin(async move {
            self.local.tag(key, &tags, ttl.min(self.local_ttl)).await?;
            self.remote.tag(key, &tags, ttl).await
        })
    }

    /// Drops this replica's local copies and the shared entries. Other replicas' local copies
    /// live until their (short) local TTL: broadcasting invalidations to them (over NATS) is
    /// the next step.
    fn invalidate_tag(&self, tag: &str) -> StoreFuture<'_, usize> {
        let tag = tag.to_owned();
        Box::pin(async move {
            self.local.invalidate_tag(&tag).await?;
            self.remote.invalidate_tag(&tag).await
        })
    }
}
