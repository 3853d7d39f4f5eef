//! One quota across replicas, counted in Redis.
//!
//! Each check is one atomic Lua script (`EVALSHA`, loaded again on `NOSCRIPT`) that reads the
//! clock with Redis `TIME`, so replicas with skewed clocks still agree. Keys are
//! `<prefix><policy entry>:<hashed caller>` and expire once idle.
//!
//! A check that fails or takes longer than [`RedisBackend::timeout`] (default 50 ms), or
//! that is asked for while the client is disconnected (answered at once), never fails or
//! stalls the RPC: the [`FailurePolicy`] decides (fail open by default, counted in
//! `grpc_server_rate_limit_backend_errors_total`). fred reconnects in the background, so
//! limiting resumes by itself when Redis is back.

use crate::decision::Decision;
use crate::limiter::{Count, Entry, Limiters};
use crate::quota::{Mode, Quota, STRICT_SUBWINDOWS};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::time::Duration;
use tonic_blueprint_core::RpcIdentity;

/// The script: GCRA (mode 0) or strict sub-windows (mode 1). Returns
/// `{allowed (0/1), retry_after_ms, remaining}`.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
if limit <= 0 then return {0, window, 0} end
if mode == 0 then
  local burst = tonumber(ARGV[4])
  local interval = window / limit
  local tolerance = interval * (burst - 1)
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  if tat - tolerance > now then
    return {0, math.ceil(tat - tolerance - now), 0}
  end
  local next_tat = tat + interval
  redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
  return {1, 0, math.floor((now + tolerance + interval - next_tat) / interval)}
end
local k = tonumber(ARGV[5])
local sub = window / k
local cur = math.floor(now / sub)
local fields = redis.call('HGETALL', KEYS[1])
local used = 0
local oldest = cur
for i = 1, #fields, 2 do
  local idx = tonumber(fields[i])
  if idx > cur - (k + 1) then
    used = used + tonumber(fields[i + 1])
    if idx < oldest then oldest = idx end
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if used >= limit then
  return {0, math.max(1, math.ceil((oldest + k + 1) * sub - now)), 0}
end
redis.call('HINCRBY', KEYS[1], cur, 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(window + 2 * sub))
return {1, 0, limit - used - 1}
"#;

/// What happens to a call when Redis cannot answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Admit the call (counted as a backend error). The default: an outage of the limiter is
    /// not an outage of the service.
    #[default]
    FailOpen,
    /// Refuse the call with RESOURCE_EXHAUSTED and a one-second retry.
    FailClosed,
    /// Count the call in this replica's in-process limiter instead.
    FallbackLocal,
}

/// The Redis backend of [`RateLimitLayer::redis`](crate::RateLimitLayer::redis).
#[derive(Debug)]
pub struct RedisBackend {
    client: Client,
    script: Script,
    prefix: String,
    timeout: Duration,
    on_failure: FailurePolicy,
}

impl RedisBackend {
    /// Counts in Redis through `client` (already connected, or connecting: fred queues
    /// commands until then), with keys under `prefix` (for example `"payments:rl:"`).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            script: Script::from_lua(SCRIPT),
            prefix: prefix.into(),
            timeout: Duration::from_millis(50),
            on_failure: FailurePolicy::FailOpen,
        }
    }

    /// The longest a check may take before the failure policy decides (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis fails or is slow (default: fail open).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }

    /// Loads the script now, so the first calls need no `NOSCRIPT` round trip.
    pub async fn preload(&self) -> Result<(), fred::error::Error> {
        self.script.load(&self.client).await
    }

    pub(crate) async fn check(
        &self,
        limiters: &Limiters,
        id: &RpcIdentity,
        entry: &Entry,
        key: u64,
        local: Decision,
    ) -> Decision {
        let check = async {
            // While the client is disconnected, decide at once instead of queueing a check
            // that would only time out (and count a call long gone once Redis is back).
            if self.client.state() != ClientState::Connected {
                return Err(fred::error::Error::new(
                    fred::error::ErrorKind::Canceled,
                    "not connected to Redis",
                ));
            }
            self.check_quota(&entry.name, &entry.quota, key).await
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(Ok(decision)) => decision,
            outcome => {
                let error = match &outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", self.timeout),
                };
                tracing::warn!(
                    grpc.service = id.service(),
                    grpc.method = id.method(),
                    error = %error,
                    policy = ?self.on_failure,
                    "rate limit backend unavailable"
                );
                limiters.counters.increment(id, Count::BackendError);
                match self.on_failure {
                    // Not counted: no remaining figure to tell the client.
                    FailurePolicy::FailOpen => Decision::Allowed {
                        remaining: u32::MAX,
                    },
                    FailurePolicy::FailClosed => Decision::Refused {
                        retry_after: Duration::from_secs(1),
                    },
                    // Counted in process before the round trip.
                    FailurePolicy::FallbackLocal => local,
                }
            }
        }
    }

    /// One check of `quota` for the hashed `key` under the policy entry `name`, without the
    /// timeout and failure policy (what the layer wraps; also what the benchmarks measure).
    pub async fn check_quota(
        &self,
        name: &str,
        quota: &Quota,
        key: u64,
    ) -> Result<Decision, fred::error::Error> {
        let redis_key = format!("{}{}:{:016x}", self.prefix, name, key);
        let (mode, burst) = match quota.mode {
            Mode::Gcra { burst } => (0, burst.max(1)),
            Mode::Strict => (1, 1),
        };
        let window_ms = quota.window.as_millis().max(1) as u64;
        let args: Vec<Value> = vec![
            mode.into(),
            i64::from(quota.limit).into(),
            (window_ms as i64).into(),
            i64::from(burst).into(),
            i64::from(STRICT_SUBWINDOWS).into(),
        ];
        let (allowed, retry_ms, remaining): (i64, i64, i64) = self
            .script
            .evalsha_with_reload(&self.client, vec![redis_key], args)
            .await?;
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            }
        } else {
            Decision::Refused {
                retry_after: Duration::from_millis(retry_ms.max(1) as u64),
            }
        })
    }
}
