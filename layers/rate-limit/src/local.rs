//! The in-process limiter: bounded, shared by every clone of the service.
//!
//! The state is a sharded map (dashmap) from the hashed key to a GCRA timestamp or a strict
//! window's sub-window counts. It is bounded: idle keys (whose quota is fully replenished)
//! are dropped by a sweep at most once a second, and once the map holds `capacity` keys, new
//! keys count against their overflow key (their client IP's, or its prefix's) until the sweep
//! frees room: a flood of made-up keys from one address then only spends that address's quota,
//! and callers from anywhere else keep getting their own. The map can exceed `capacity` by
//! at most [`SWEEP_EVERY`] keys: the number of calls between two size checks.
//!
//! Why not governor's keyed limiter: its map cannot be bounded (no capacity, no way to tell a
//! new key from a known one) and it has no strict window mode. The GCRA here is governor's
//! algorithm (virtual scheduling with a theoretical arrival time per key); the benchmarks
//! compare its cost with governor's keyed check.

use crate::decision::Decision;
use crate::key::CallKey;
use crate::quota::{Mode, Quota, STRICT_SUBWINDOWS};
use dashmap::DashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keys are already SipHash outputs: hashing them again would only cost time. The map's hash
/// is the key scrambled by a per-process random multiplier, so that whoever knows the key
/// secret still cannot aim many keys at one bucket.
#[derive(Clone, Debug)]
struct Prehashed {
    salt: u64,
    multiplier: u64,
}

impl Default for Prehashed {
    fn default() -> Self {
        let seed = std::collections::hash_map::RandomState::new();
        let salt = seed.hash_one(0x5eed_u64);
        let multiplier = seed.hash_one(0xcafe_u64) | 1;
        Self { salt, multiplier }
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher {
            state: 0,
            salt: self.salt,
            multiplier: self.multiplier,
        }
    }
}

#[derive(Debug)]
struct PrehashedHasher {
    state: u64,
    salt: u64,
    multiplier: u64,
}

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        let x = (self.state ^ self.salt).wrapping_mul(self.multiplier);
        x ^ (x >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = self.state.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = n;
    }
}

type Map<V> = DashMap<u64, V, Prehashed>;

/// Calls between two checks of the map's size (and of whether a sweep is due).
pub const SWEEP_EVERY: u64 = 1024;
const SLOTS: usize = STRICT_SUBWINDOWS as usize + 1;

#[derive(Debug)]
struct Window {
    last: u64,
    counts: [u32; SLOTS],
}

#[derive(Debug)]
enum Store {
    Refuse,
    Gcra {
        interval: u64,
        tolerance: u64,
        map: Map<AtomicU64>,
    },
    Strict {
        limit: u32,
        sub: u64,
        map: Map<Mutex<Window>>,
    },
}

/// One quota's in-process state (what the layer keeps per policy entry).
#[derive(Debug)]
pub struct LocalLimiter {
    store: Store,
    clock: quanta::Clock,
    epoch: quanta::Instant,
    capacity: usize,
    calls: AtomicU64,
    full: AtomicBool,
    next_sweep: AtomicU64,
}

impl LocalLimiter {
    /// A limiter for `quota` holding at most `capacity` keys (see the module docs).
    pub fn new(quota: &Quota, capacity: usize) -> Arc<Self> {
        let window = quota.window.as_nanos().min(u128::from(u64::MAX / 4)) as u64;
        let store = match (quota.limit, quota.mode) {
            (0, _) => Store::Refuse,
            (limit, Mode::Gcra { burst }) => {
                let interval = (window / u64::from(limit)).max(1);
                Store::Gcra {
                    interval,
                    tolerance: interval.saturating_mul(u64::from(burst.max(1) - 1)),
                    map: DashMap::with_hasher(Prehashed::default()),
                }
            }
            (limit, Mode::Strict) => Store::Strict {
                limit,
                sub: (window / u64::from(STRICT_SUBWINDOWS)).max(1),
                map: DashMap::with_hasher(Prehashed::default()),
            },
        };
        let clock = quanta::Clock::new();
        Arc::new(Self {
            store,
            epoch: clock.now(),
            clock,
            capacity: capacity.max(1),
            calls: AtomicU64::new(0),
            full: AtomicBool::new(false),
            next_sweep: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        // quanta reads the TSC where it can: a few nanoseconds, monotonic.
        self.clock.now().duration_since(self.epoch).as_nanos() as u64
    }

    /// Checks and counts one call of an already hashed key, whose overflow key (used once
    /// the map is full and the key is new) is `overflow`.
    pub fn check_hashed(self: &Arc<Self>, key: u64, overflow: u64) -> Decision {
        self.check(CallKey { own: key, overflow })
    }

    /// Checks and counts one call.
    pub(crate) fn check(self: &Arc<Self>, key: CallKey) -> Decision {
        self.check_admitted(self.admitted(key))
    }

    /// Checks and counts one call of a key [`admitted`](Self::admitted) already.
    pub(crate) fn check_admitted(self: &Arc<Self>, key: u64) -> Decision {
        let now = self.now();
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.housekeeping(now);
        }
        match &self.store {
            Store::Refuse => Decision::Refused {
                retry_after: Duration::from_secs(60),
            },
            Store::Gcra {
                interval,
                tolerance,
                map,
            } => {
                if let Some(tat) = map.get(&key) {
                    return gcra(&tat, now, *interval, *tolerance);
                }
                let entry = map.entry(key).or_insert_with(|| AtomicU64::new(now));
                gcra(&entry, now, *interval, *tolerance)
            }
            Store::Strict { limit, sub, map } => {
                let cur = now / sub;
                let fresh = || {
                    Mutex::new(Window {
                        last: cur,
                        counts: [0; SLOTS],
                    })
                };
                if let Some(window) = map.get(&key) {
                    return strict(&window, cur, now, *limit, *sub);
                }
                let entry = map.entry(key).or_insert_with(fresh);
                strict(&entry, cur, now, *limit, *sub)
            }
        }
    }

    /// The key to count against: the caller's own, or its overflow key when the map is full
    /// and the caller is new.
    pub(crate) fn admitted(&self, key: CallKey) -> u64 {
        if !self.full.load(Ordering::Relaxed) {
            return key.own;
        }
        let known = match &self.store {
            Store::Refuse => true,
            Store::Gcra { map, .. } => map.contains_key(&key.own),
            Store::Strict { map, .. } => map.contains_key(&key.own),
        };
        if known { key.own } else { key.overflow }
    }

    fn len(&self) -> usize {
        match &self.store {
            Store::Refuse => 0,
            Store::Gcra { map, .. } => map.len(),
            Store::Strict { map, .. } => map.len(),
        }
    }

    /// Updates the "full" flag, and sweeps idle keys at most once a second (on a blocking
    /// thread when a tokio runtime is there, so no RPC waits on it).
    fn housekeeping(self: &Arc<Self>, now: u64) {
        let len = self.len();
        self.full.store(len >= self.capacity, Ordering::Relaxed);
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due || len == 0 {
            return;
        }
        let next = now + 1_000_000_000;
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || this.sweep());
            }
            Err(_) => this.sweep(),
        }
    }

    /// Drops every idle key and recomputes the "full" flag (also done by itself, at most once
    /// a second, while calls come in).
    pub fn sweep(&self) {
        let now = self.now();
        match &self.store {
            Store::Refuse => {}
            Store::Gcra { map, .. } => {
                map.retain(|_, tat| tat.load(Ordering::Relaxed) > now);
                shrink_if_sparse(map);
            }
            Store::Strict { sub, map, .. } => {
                let cur = now / sub;
                map.retain(|_, w| {
                    w.get_mut()
                        .map(|w| cur.saturating_sub(w.last) < SLOTS as u64)
                        .unwrap_or(false)
                });
                shrink_if_sparse(map);
            }
        }
        self.full
            .store(self.len() >= self.capacity, Ordering::Relaxed);
    }

    /// Keys held now.
    pub fn keys(&self) -> usize {
        self.len()
    }
}

/// Gives memory back only when the map is mostly empty: shrinking a busy map just makes it
/// grow and rehash again under its shard locks.
fn shrink_if_sparse<V>(map: &Map<V>) {
    if map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

fn gcra(tat: &AtomicU64, now: u64, interval: u64, tolerance: u64) -> Decision {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let base = current.max(now);
        if base > now.saturating_add(tolerance) {
            return Decision::Refused {
                retry_after: Duration::from_nanos(base - tolerance - now),
            };
        }
        let next = base.saturating_add(interval);
        match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                let remaining = now
                    .saturating_add(tolerance)
                    .saturating_add(interval)
                    .saturating_sub(next)
                    / interval;
                return Decision::Allowed {
                    remaining: remaining.min(u64::from(u32::MAX)) as u32,
                };
            }
            Err(actual) => current = actual,
        }
    }
}

fn strict(window: &Mutex<Window>, cur: u64, now: u64, limit: u32, sub: u64) -> Decision {
    let Ok(mut w) = window.lock() else {
        // A poisoned lock means a panic mid-update; count the call rather than fail it.
        return Decision::Allowed { remaining: 0 };
    };
    if cur > w.last {
        let stale = (cur - w.last).min(SLOTS as u64);
        let last = w.last;
        for step in 1..=stale {
            w.counts[((last + step) % SLOTS as u64) as usize] = 0;
        }
        w.last = cur;
    }
    let used: u64 = w.counts.iter().map(|&c| u64::from(c)).sum();
    if used >= u64::from(limit) {
        // The earliest sub-window still counted; room comes back when it leaves the span.
        let oldest = (0..SLOTS as u64)
            .map(|age| cur.saturating_sub(SLOTS as u64 - 1 - age))
            .find(|idx| w.counts[(idx % SLOTS as u64) as usize] > 0)
            .unwrap_or(cur);
        let free_at = (oldest + SLOTS as u64) * sub;
        return Decision::Refused {
            retry_after: Duration::from_nanos(free_at.saturating_sub(now).max(1)),
        };
    }
    w.counts[(cur % SLOTS as u64) as usize] += 1;
    Decision::Allowed {
        remaining: (u64::from(limit) - used - 1) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(quota: Quota) -> (Arc<LocalLimiter>, u64) {
        let l = LocalLimiter::new(&quota, 1000);
        (l, 0)
    }

    #[test]
    fn strict_never_admits_more_than_the_limit_in_any_window() {
        // Simulated time: calls every 7 ms for 5 windows of 1 s, limit 50.
        let limit = 50;
        let sub = 100_000_000; // 1 s / 10
        let window = Mutex::new(Window {
            last: 0,
            counts: [0; SLOTS],
        });
        let mut admitted = Vec::new();
        let mut t = 0u64;
        while t < 5_000_000_000 {
            if let Decision::Allowed { .. } = strict(&window, t / sub, t, limit, sub) {
                admitted.push(t);
            }
            t += 7_000_000;
        }
        for (i, &start) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|&&x| x < start + 1_000_000_000)
                .count();
            assert!(
                in_window <= limit as usize,
                "{in_window} calls in the window from {start}"
            );
        }
        // And it is not needlessly stingy: close to the limit per window on average.
        assert!(
            admitted.len() >= 4 * limit as usize,
            "{} admitted",
            admitted.len()
        );
    }

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval() {
        let tat = AtomicU64::new(0);
        let interval = 10;
        let tolerance = interval * 4; // burst 5
        let now = 1000;
        tat.store(now, Ordering::Relaxed);
        let allowed = (0..10)
            .filter(|_| {
                matches!(
                    gcra(&tat, now, interval, tolerance),
                    Decision::Allowed { .. }
                )
            })
            .count();
        assert_eq!(allowed, 5);
        match gcra(&tat, now, interval, tolerance) {
            Decision::Refused { retry_after } => assert_eq!(retry_after, Duration::from_nanos(10)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            gcra(&tat, now + 10, interval, tolerance),
            Decision::Allowed { remaining: 0 }
        ));
    }

    #[test]
    fn a_zero_quota_refuses() {
        let (l, _) = limiter(Quota::refuse_all());
        assert!(matches!(
            l.check(CallKey {
                own: 1,
                overflow: 2
            }),
            Decision::Refused { .. }
        ));
    }

    #[test]
    fn new_keys_count_against_their_overflow_key_once_full_and_sweeps_free_idle_keys() {
        let l = LocalLimiter::new(&Quota::new(2, Duration::from_millis(50)), 10);
        let key = |own, overflow| CallKey { own, overflow };
        for k in 0..10 {
            l.check(key(k, 1_000));
        }
        l.sweep(); // nothing idle yet: the map is full
        assert_eq!(l.keys(), 10);
        // New keys from one address now count against that address's overflow key.
        let allowed = (100..110)
            .filter(|k| matches!(l.check(key(*k, 1_000)), Decision::Allowed { .. }))
            .count();
        assert_eq!(allowed, 2);
        assert_eq!(l.keys(), 11, "only the overflow key was added");
        // A newcomer from another address is not locked out by them.
        assert!(matches!(l.check(key(200, 2_000)), Decision::Allowed { .. }));
        // Known keys keep their own quota.
        assert!(matches!(l.check(key(3, 1_000)), Decision::Allowed { .. }));
        std::thread::sleep(Duration::from_millis(120)); // let every window expire
        l.sweep();
        assert_eq!(l.keys(), 0);
        assert!(matches!(l.check(key(300, 1_000)), Decision::Allowed { .. }));
    }
}
