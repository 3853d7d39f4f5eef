//! The Redis store (fred) and the two-tier store (moka in front of Redis).

use crate::store::{CacheStore, MokaStore, StoreError, StoreFuture};
use bytes::Bytes;
use fred::prelude::*;
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
}
