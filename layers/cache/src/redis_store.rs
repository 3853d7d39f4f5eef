//! The Redis store (fred) and the two-tier store (moka in front of Redis).
//!
//! Keys, all under the store's prefix: `<16 hex>` an entry (a hashed request),
//! `tag:<16 hex>` the set of entries carrying a tag (the tag's hash, never its text),
//! `gen` the invalidation counter and `gens` the generation slots (see
//! [`Generation`](crate::Generation)). Every command has a deadline
//! ([`RedisStore::command_timeout`], default 100 ms) and fails at once while the client is
//! not connected.

use crate::broadcast::InvalidationBroadcast;
use crate::store::{CacheStore, Generation, MokaStore, StoreError, StoreFuture, slot, tag_hash};
use bytes::Bytes;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, ExpireOptions};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The deadline of each Redis command by default ([`RedisStore::command_timeout`]).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);

fn store_error(e: fred::error::Error) -> StoreError {
    StoreError(e.to_string())
}

/// Stores an answer unless a slot it depends on was marked after `since`.
/// KEYS: entry, gens, tag sets... ARGV: since, value, ttl ms, ttl s, slots (entry's, tags'...).
const FILL: &str = r#"
local since = tonumber(ARGV[1])
for i = 5, #ARGV do
  if tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') > since then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('EXPIRE', KEYS[i], ARGV[4], 'GT')
  redis.call('EXPIRE', KEYS[i], ARGV[4], 'NX')
end
return 1
"#;

/// Marks a tag's slot, then removes its entries and itself; returns the entries' keys.
/// KEYS: tag set, gen, gens. ARGV: slot.
const INVALIDATE_TAG: &str = r#"
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], n)
local members = redis.call('SMEMBERS', KEYS[1])
for i = 1, #members, 1000 do
  redis.call('DEL', unpack(members, i, math.min(i + 999, #members)))
end
redis.call('DEL', KEYS[1])
return members
"#;

/// Marks an entry's slot, then removes it. KEYS: entry, gen, gens. ARGV: slot.
const DELETE: &str = r#"
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], n)
return redis.call('DEL', KEYS[1])
"#;

/// The three scripts, hashed once per process.
struct Scripts {
    fill: Script,
    invalidate_tag: Script,
    delete: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        fill: Script::from_lua(FILL),
        invalidate_tag: Script::from_lua(INVALIDATE_TAG),
        delete: Script::from_lua(DELETE),
    })
}

/// Entries in Redis under `<prefix><hashed key>`, shared by every replica.
#[derive(Clone, Debug)]
pub struct RedisStore {
    client: Client,
    options: Options,
    prefix: String,
}

impl RedisStore {
    /// A store on `client` with keys under `prefix` (the blueprint's is `<service>:`).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            options: Self::options(DEFAULT_COMMAND_TIMEOUT),
            prefix: prefix.into(),
        }
    }

    /// The deadline of each command (default [`DEFAULT_COMMAND_TIMEOUT`], 100 ms). Commands
    /// also fail at once, without waiting, while the client is disconnected, and are never
    /// sent again after a reconnection.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.options = Self::options(timeout);
        self
    }

    fn options(timeout: Duration) -> Options {
        Options {
            timeout: Some(timeout),
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        }
    }

    fn timeout(&self) -> Duration {
        self.options.timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT)
    }

    /// The client with this store's command options.
    fn redis(&self) -> fred::clients::WithOptions<Client> {
        self.client.with_options(&self.options)
    }

    fn key(&self, key: u64) -> String {
        format!("{}{key:016x}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{:016x}", self.prefix, tag_hash(tag))
    }

    fn gen_key(&self) -> String {
        format!("{}gen", self.prefix)
    }

    fn gens_key(&self) -> String {
        format!("{}gens", self.prefix)
    }

    /// `EVALSHA`, loading the script on `NOSCRIPT`; the whole bounded by the command timeout.
    async fn eval<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        let redis = self.redis();
        let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
        argv.push(script.sha1().clone().into());
        argv.push((keys.len() as i64).into());
        argv.extend(keys.into_iter().map(Value::from));
        argv.extend(args);
        let evalsha = || CustomCommand::new_static("EVALSHA", ClusterHash::Offset(2), false);
        let run = async {
            match redis.custom::<R, Value>(evalsha(), argv.clone()).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    let lua = script.lua().cloned().unwrap_or_default();
                    let load = CustomCommand::new_static("SCRIPT", ClusterHash::Random, false);
                    redis
                        .custom::<(), Value>(load, vec!["LOAD".into(), lua.into()])
                        .await?;
                    redis.custom::<R, Value>(evalsha(), argv).await
                }
                result => result,
            }
        };
        let limit = self.timeout();
        match tokio::time::timeout(limit, run).await {
            Ok(result) => result.map_err(store_error),
            Err(_) => Err(StoreError(format!("no answer within {limit:?}"))),
        }
    }
}

/// A counter's value as Redis holds it (a missing key is 0).
fn counter(value: Option<Bytes>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

impl CacheStore for RedisStore {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            self.redis()
                .get::<Option<Bytes>, _>(self.key(key))
                .await
                .map_err(store_error)
        })
    }

    fn set(&self, key: u64, value: Bytes, ttl: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
            self.redis()
                .set::<(), _, _>(self.key(key), value, Some(Expiration::PX(ms)), None, false)
                .await
                .map_err(store_error)
        })
    }

    fn delete(&self, key: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let keys = vec![self.key(key), self.gen_key(), self.gens_key()];
            self.eval::<i64>(&scripts().delete, keys, vec![(slot(key) as i64).into()])
                .await
                .map(|_| ())
        })
    }

    fn tag(&self, key: u64, tags: &[String], ttl: Duration) -> StoreFuture<'_, ()> {
        let tags = tags.to_vec();
        Box::pin(async move {
            let member = self.key(key);
            // A tag set lives as long as the longest entry it names. One round trip.
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            let pipeline = self.client.pipeline().with_options(&self.options);
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

    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        Box::pin(async move {
            // One round trip: the entry and the counter, read together.
            let mut values: Vec<Option<Bytes>> = self
                .redis()
                .mget(vec![self.key(key), self.gen_key()])
                .await
                .map_err(store_error)?;
            if values.len() != 2 {
                return Err(StoreError(format!(
                    "MGET of 2 keys answered {} values",
                    values.len()
                )));
            }
            let generation = Generation {
                shared: counter(values.pop().flatten()),
                local: 0,
            };
            Ok((values.pop().flatten(), generation))
        })
    }

    fn generation(&self) -> StoreFuture<'_, Generation> {
        Box::pin(async move {
            let value: Option<Bytes> = self
                .redis()
                .get(self.gen_key())
                .await
                .map_err(store_error)?;
            Ok(Generation {
                shared: counter(value),
                local: 0,
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
        let mut keys = vec![self.key(key), self.gens_key()];
        keys.extend(tags.iter().map(|t| self.tag_key(t)));
        let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut args: Vec<Value> = vec![
            since.shared.to_string().into(),
            value.into(),
            ms.into(),
            secs.into(),
            (slot(key) as i64).into(),
        ];
        args.extend(tags.iter().map(|t| Value::from(slot(tag_hash(t)) as i64)));
        Box::pin(async move {
            let stored: i64 = self.eval(&scripts().fill, keys, args).await?;
            Ok(stored == 1)
        })
    }

    fn get_many(&self, keys: &[u64]) -> StoreFuture<'_, Vec<Option<Bytes>>> {
        let names: Vec<String> = keys.iter().map(|k| self.key(*k)).collect();
        Box::pin(async move {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<Bytes>> = self
                .redis()
                .mget(names.clone())
                .await
                .map_err(store_error)?;
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
            let pipeline = self.client.pipeline().with_options(&self.options);
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
    /// Removes every entry tagged `tag` and the tag itself, in one atomic script that first
    /// marks the tag's generation slot; returns the hashed keys it named.
    pub(crate) async fn invalidate_tag_keys(&self, tag: &str) -> Result<Vec<u64>, StoreError> {
        let keys = vec![self.tag_key(tag), self.gen_key(), self.gens_key()];
        let args = vec![Value::from(slot(tag_hash(tag)) as i64)];
        let members: Vec<String> = self.eval(&scripts().invalidate_tag, keys, args).await?;
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
/// the same keys; a copy read from Redis while such a drop was on its way is not kept.
/// Without a broadcast, other replicas may serve their local copy until `local_ttl` runs
/// out, so keep `local_ttl` short (seconds) where staleness matters.
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
        self.local.remove_keys(keys).await;
    }

    async fn announce(&self, keys: &[u64]) -> Result<(), StoreError> {
        match &self.broadcast {
            Some(broadcast) if !keys.is_empty() => broadcast.announce(keys).await,
            _ => Ok(()),
        }
    }

    /// Keeps a copy read from Redis, unless the key was dropped since `since` (local).
    async fn keep_local(&self, key: u64, value: &Bytes, since: u64) {
        self.local
            .fill_local(key, value.clone(), &[], self.local_ttl, since)
            .await;
    }
}

impl CacheStore for TwoTierStore {
    fn get(&self, key: u64) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { Ok(self.lookup(key).await?.0) })
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

    fn lookup(&self, key: u64) -> StoreFuture<'_, (Option<Bytes>, Generation)> {
        Box::pin(async move {
            let local = self.local.generations.current();
            if let Some(value) = self.local.get(key).await? {
                let generation = Generation { shared: 0, local };
                return Ok((Some(value), generation));
            }
            let (value, generation) = self.remote.lookup(key).await?;
            if let Some(value) = &value {
                self.keep_local(key, value, local).await;
            }
            Ok((
                value,
                Generation {
                    shared: generation.shared,
                    local,
                },
            ))
        })
    }

    fn generation(&self) -> StoreFuture<'_, Generation> {
        Box::pin(async move {
            let local = self.local.generations.current();
            let shared = self.remote.generation().await?.shared;
            Ok(Generation { shared, local })
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
        Box::pin(async move {
            if !self
                .remote
                .fill(key, value.clone(), &tags, ttl, since)
                .await?
            {
                return Ok(false);
            }
            // Stored in Redis; the local copy too, unless a drop reached this replica since.
            let local_ttl = ttl.min(self.local_ttl);
            Ok(self
                .local
                .fill_local(key, value, &tags, local_ttl, since.local)
                .await)
        })
    }

    fn get_many(&self, keys: &[u64]) -> StoreFuture<'_, Vec<Option<Bytes>>> {
        let keys = keys.to_vec();
        Box::pin(async move {
            let since = self.local.generations.current();
            let mut values = self.local.get_many(&keys).await?;
            let missing: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
            if missing.is_empty() {
                return Ok(values);
            }
            let wanted: Vec<u64> = missing.iter().map(|i| keys[*i]).collect();
            let found = self.remote.get_many(&wanted).await?;
            for (i, value) in missing.into_iter().zip(found) {
                if let Some(value) = &value {
                    self.keep_local(keys[i], value, since).await;
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
