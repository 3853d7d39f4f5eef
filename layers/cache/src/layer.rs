//! The layer: which methods are cached, for how long, keyed by what.

use crate::flight::Flights;
use crate::service::ResponseCache;
use crate::store::{CacheStore, MokaStore};
use http::HeaderName;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;
use tonic_blueprint_core::{
    Identity, MethodCounters, MethodKey, MethodPolicy, MethodRegistry, RpcIdentity, names,
};
use tower_layer::Layer;

/// The blueprint's response TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// How long an invalidation may take by default ([`ResponseCacheLayer::invalidation_timeout`]).
pub const DEFAULT_INVALIDATION_TIMEOUT: Duration = Duration::from_millis(100);
/// Metadata a response varies on by default, besides the verified caller: one caller's
/// response is never another's.
pub const DEFAULT_VARY: [&str; 3] = ["authorization", "x-user-id", "x-tenant-id"];

/// Caches unary responses; see the [crate docs](crate).
#[derive(Clone)]
pub struct ResponseCacheLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) policy: MethodPolicy<Option<Duration>>,
    pub(crate) registry: Option<MethodRegistry>,
    pub(crate) default_ttl: Duration,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) store: Arc<dyn CacheStore>,
    pub(crate) max_entry_bytes: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) lookup_timeout: Duration,
    pub(crate) invalidation_timeout: Duration,
    /// Shared by every clone of the service (and kept when the layer is reconfigured).
    pub(crate) flights: Arc<Flights>,
    pub(crate) counters: Arc<MethodCounters>,
}

/// The layer's counters, in [`Count`] order.
const COUNTERS: [&str; 4] = [
    names::CACHE_HITS,
    names::CACHE_MISSES,
    names::CACHE_SETS,
    names::CACHE_ERRORS,
];

/// Which counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Count {
    Hit = 0,
    Miss = 1,
    Set = 2,
    Error = 3,
}

impl std::fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("policy", &self.shared.policy)
            .field("vary", &self.shared.vary)
            .finish_non_exhaustive()
    }
}

impl Default for ResponseCacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseCacheLayer {
    /// Caches nothing until methods opt in, in an in-process moka store of 64 MiB.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                policy: MethodPolicy::new(None),
                registry: None,
                default_ttl: DEFAULT_TTL,
                vary: DEFAULT_VARY
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect(),
                store: Arc::new(MokaStore::default()),
                max_entry_bytes: 1024 * 1024,
                max_request_bytes: 4 * 1024 * 1024,
                lookup_timeout: Duration::from_millis(50),
                invalidation_timeout: DEFAULT_INVALIDATION_TIMEOUT,
                flights: Arc::default(),
                counters: Arc::new(MethodCounters::new(&COUNTERS, None)),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Building happens before the layer is shared; a clone taken earlier keeps its own.
        Arc::make_mut(&mut self.shared)
    }

    /// Caches one method (`pkg.Service/Method`) or service (`pkg.Service/*`) for `ttl`.
    pub fn cache(mut self, key: MethodKey, ttl: Duration) -> Self {
        self.shared_mut().policy.insert(&key, Some(ttl));
        self
    }

    /// Caches every method the descriptors mark `idempotency_level = NO_SIDE_EFFECTS`, for
    /// the default TTL unless [`cache`](Self::cache) says otherwise.
    pub fn with_registry(mut self, registry: MethodRegistry) -> Self {
        let shared = self.shared_mut();
        shared.counters = Arc::new(MethodCounters::new(&COUNTERS, Some(registry.clone())));
        shared.registry = Some(registry);
        self
    }

    /// The TTL of methods opted in through the descriptors (default [`DEFAULT_TTL`]).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.shared_mut().default_ttl = ttl;
        self
    }

    /// The metadata responses vary on (replaces [`DEFAULT_VARY`]).
    pub fn vary(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.shared_mut().vary = names.into_iter().collect();
        self
    }

    /// Where entries live (default: [`MokaStore`] of 64 MiB).
    pub fn store(mut self, store: impl CacheStore) -> Self {
        self.shared_mut().store = Arc::new(store);
        self
    }

    /// Responses larger than this are served but not stored (default 1 MiB).
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.shared_mut().max_entry_bytes = bytes;
        self
    }

    /// A handle to invalidate this layer's entries (clone it into handlers).
    pub fn invalidator(&self) -> crate::CacheInvalidator {
        crate::CacheInvalidator {
            shared: self.shared.clone(),
            deadline: None,
        }
    }

    /// How long a lookup may take before the call goes to the handler, and a store after it
    /// (default 50 ms; never past the call's deadline).
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.shared_mut().lookup_timeout = timeout;
        self
    }

    /// How long an invalidation through the [`invalidator`](Self::invalidator) may take
    /// before it fails (default [`DEFAULT_INVALIDATION_TIMEOUT`], 100 ms).
    pub fn invalidation_timeout(mut self, timeout: Duration) -> Self {
        self.shared_mut().invalidation_timeout = timeout;
        self
    }
}

impl Shared {
    pub(crate) fn count(&self, id: &RpcIdentity, which: Count) {
        self.counters.increment(id, which as usize);
    }

    /// The TTL for a call, or `None` when its method is not cached.
    pub(crate) fn ttl(&self, id: &RpcIdentity) -> Option<Duration> {
        if tonic_blueprint_core::is_infrastructure(id.service()) {
            // Health must answer live, and reflection is not worth an entry.
            return None;
        }
        self.policy.get(id).or_else(|| {
            self.registry
                .as_ref()
                .and_then(|r| r.get(id))
                .filter(|m| m.no_side_effects)
                .map(|_| self.default_ttl)
        })
    }

    /// The key: a hash of the method, the request message, the verified caller (subject and
    /// tenant) when an auth layer proved one, and the vary metadata (less `authorization`
    /// when there is a caller: a renewed token of the same caller is the same caller). It
    /// holds no payload, id or credential.
    pub(crate) fn key(
        &self,
        id: &RpcIdentity,
        message: &[u8],
        headers: &http::HeaderMap,
        caller: Option<&Identity>,
    ) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(0x7462_6361_6368_6531, 0x6b65_7973_6970_6831);
        hasher.write(id.path().as_bytes());
        hasher.write_u8(0);
        hasher.write_usize(message.len());
        hasher.write(message);
        if let Some(caller) = caller {
            hasher.write_u8(2);
            hasher.write(caller.subject().as_bytes());
            hasher.write_u8(0xff);
            hasher.write(caller.tenant().unwrap_or_default().as_bytes());
            hasher.write_u8(0xff);
        }
        for name in &self.vary {
            if caller.is_some() && name == http::header::AUTHORIZATION {
                continue;
            }
            hasher.write(name.as_str().as_bytes());
            for value in headers.get_all(name) {
                hasher.write_u8(1);
                hasher.write(value.as_bytes());
            }
            hasher.write_u8(0);
        }
        hasher.finish()
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache::from_shared(inner, self.shared.clone())
    }
}
