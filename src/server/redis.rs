//! Redis at start-up (feature `redis`): connected with bounded retries, then shared by the
//! cache (two-tier: moka in front of Redis) and the rate limiter (one quota across replicas).

use super::ServeError;
use super::preset::PresetStack;
use super::redis_tls::RedisTls;
use crate::cache::{MokaStore, RedisStore, TwoTierStore};
use crate::config::BlueprintConfig;
use crate::rate_limit::redis::RedisBackend;
use fred::prelude::*;
use fred::types::config::UnresponsiveConfig;
use std::time::Duration;

/// Local copies of shared cache entries live at most this long on a replica: the bound on
/// how stale a replica can be without a NATS broadcast.
pub const LOCAL_TIER_TTL: Duration = Duration::from_secs(5);

/// Commands waiting to be written to Redis, at most: past it, a command fails at once
/// (backpressure) instead of queueing behind a Redis that stopped answering.
const MAX_QUEUED_COMMANDS: usize = 4096;

/// A connection with commands unanswered this long is closed and opened again; commands fail
/// at once while it is down.
const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(2);

/// The cache lookup's and the rate-limit check's own bound (tighter than a command's).
const CHECK_TIMEOUT: Duration = Duration::from_millis(50);

/// Connects to `url`, trying `attempts` times with exponential backoff from 200 ms.
///
/// The client never lets a sick Redis stall a call: every command has a deadline
/// ([`DEFAULT_COMMAND_TIMEOUT`](crate::cache::DEFAULT_COMMAND_TIMEOUT), 100 ms, until
/// `REDIS_COMMAND_TIMEOUT_MS` sets another), at most 4,096 commands wait to be
/// written, and a connection that stops answering is dropped and dialled again (2 s dial and
/// handshake limits) while the kit's commands fail at once.
pub async fn connect_redis(url: &str, attempts: u32) -> Result<Client, ServeError> {
    connect(url, &RedisTls::default(), attempts).await
}

/// [`connect_redis`] with the kit's `[redis]` section: `REDIS_URL`, and for `rediss://` the
/// server verified against `REDIS_CA_FILE` (else the system's roots) and the client
/// certificate of `REDIS_CLIENT_CERT_FILE` and `REDIS_CLIENT_KEY_FILE`.
pub async fn connect_redis_config(
    section: &crate::config::RedisSection,
    attempts: u32,
) -> Result<Client, ServeError> {
    let url = section.get().unwrap_or_default();
    connect(url, &RedisTls::of(section), attempts).await
}

async fn connect(url: &str, tls: &RedisTls, attempts: u32) -> Result<Client, ServeError> {
    let target = redact(url);
    let config = Config::from_url(url).map_err(|e| ServeError::Dependency {
        name: "Redis",
        target: target.clone(),
        attempts: 0,
        error: e.to_string(),
    })?;
    let config = tls.apply(url, config)?;
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        let client = Builder::from_config(config.clone())
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_buffer_len = MAX_QUEUED_COMMANDS;
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(UNRESPONSIVE_AFTER),
                    interval: UNRESPONSIVE_AFTER / 4,
                };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = crate::cache::DEFAULT_COMMAND_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|e| ServeError::Dependency {
                name: "Redis",
                target: target.clone(),
                attempts: attempt,
                error: e.to_string(),
            })?;
        match client.init().await {
            Ok(_) => return Ok(client),
            Err(e) => {
                last = e.to_string();
                tracing::warn!(redis = %target, attempt, error = %e, "Redis is not reachable yet");
                let _ = client.quit().await;
                if attempt < attempts {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    Err(ServeError::Dependency {
        name: "Redis",
        target,
        attempts: attempts.max(1),
        error: last,
    })
}

/// The stack with its cache and rate limiter on Redis.
pub(super) async fn on_redis(
    mut stack: PresetStack,
    config: &BlueprintConfig,
    client: Client,
) -> Result<PresetStack, ServeError> {
    let service = &config.service.name;
    let command_timeout = config.redis.command_timeout();
    client.update_perf_config(PerformanceConfig {
        default_command_timeout: command_timeout,
        ..client.perf_config()
    });
    let check_timeout = CHECK_TIMEOUT.min(command_timeout);
    if let Some(cache) = stack.cache.take() {
        let store = TwoTierStore::new(
            MokaStore::new(config.cache.max_bytes),
            RedisStore::new(client.clone(), format!("{service}:cache:"))
                .command_timeout(command_timeout),
            LOCAL_TIER_TTL,
        );
        stack.cache = Some(
            cache
                .store(broadcast(store, config).await?)
                .lookup_timeout(check_timeout)
                .invalidation_timeout(command_timeout),
        );
    }
    stack.rate_limit = stack.rate_limit.map(|limit| {
        limit.redis(
            RedisBackend::new(client, format!("{service}:ratelimit:")).timeout(check_timeout),
        )
    });
    Ok(stack)
}

/// The subject replicas announce their cache invalidations on: `<service>.cache.invalidated`.
pub fn invalidation_subject(service: &str) -> String {
    format!("{service}.cache.invalidated")
}

/// With `NATS_URL` set, the two-tier cache's invalidations reach every replica over NATS
/// ([`invalidation_subject`]): a replica drops its local copy at once instead of keeping it
/// for up to [`LOCAL_TIER_TTL`].
#[cfg(feature = "nats")]
async fn broadcast(
    store: TwoTierStore,
    config: &BlueprintConfig,
) -> Result<TwoTierStore, ServeError> {
    let Some(url) = config.nats.get() else {
        return Ok(store);
    };
    let failed = |error: String| ServeError::Dependency {
        name: "NATS",
        target: "NATS_URL".to_owned(),
        attempts: 1,
        error,
    };
    let section = &config.nats;
    fn path(value: &str) -> Option<&std::path::Path> {
        Some(std::path::Path::new(value.trim())).filter(|p| !p.as_os_str().is_empty())
    }
    let security = crate::nats_tls::NatsSecurity {
        ca_file: path(&section.ca_file),
        client_cert: path(&section.client_cert_file).zip(path(&section.client_key_file)),
        creds_file: path(&section.creds_file),
    };
    let options = crate::nats_tls::secure(async_nats::ConnectOptions::new(), url, security)
        .await
        .map_err(failed)?;
    let client = tokio::time::timeout(Duration::from_secs(10), options.connect(url))
        .await
        .map_err(|_| failed("no connection within 10 s".to_owned()))?
        .map_err(|e| failed(e.to_string()))?;
    store
        .broadcast_over_nats(client, invalidation_subject(&config.service.name))
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Without the `nats` feature the local tier lives out [`LOCAL_TIER_TTL`].
#[cfg(not(feature = "nats"))]
async fn broadcast(
    store: TwoTierStore,
    _config: &BlueprintConfig,
) -> Result<TwoTierStore, ServeError> {
    Ok(store)
}

/// `redis://user:secret@host:6379/0` as `host:6379`: never log a password.
fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    host.split('/').next().unwrap_or(host).to_owned()
}
