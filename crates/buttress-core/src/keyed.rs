//! A bounded store of per-key GCRA limiters (per client IP, tenant, route...).
//!
//! [`KeyedGcra`] keeps one theoretical arrival time per key, all under one [`Quota`].
//!
//! # Why papaya
//! The map is [papaya](https://docs.rs/papaya)'s lock-free `HashMap`. The hot path of a
//! keyed limiter is a lookup of a key that is already there, from many threads at once;
//! papaya's reads take no lock at all (an epoch guard and a probe), so a hot key costs a
//! hash, a probe and the GCRA compare-and-swap on that key's own word. A sharded
//! `RwLock` map (dashmap) would make every lookup a read-lock acquisition, an atomic
//! write to a lock word shared by every key of the shard, which bounces between cores;
//! a cache crate (moka) brings its own eviction policy, background maintenance and
//! per-read bookkeeping that a limiter does not need, because GCRA already says exactly
//! which entries are worth keeping.
//!
//! # Bounded memory, and which keys go
//! A key whose TAT is at or before `now` carries no information: a fresh key would
//! behave exactly the same (a full burst). Such a key is *idle*, and removing it changes
//! no decision. The store never holds more than `max_keys` keys: inserting a new key
//! into a full store first sweeps every idle key out, using the caller's `now` (so paused
//! tokio time or a manual clock drive eviction too; there is no cleanup task), and, if
//! fewer than a sixteenth of the keys were idle (keys are being sprayed faster than they
//! recover), the keys closest to recovery (smallest TAT) up to that sixteenth, and no
//! more (keys tied at the boundary, used at the same instant, go only as far as
//! needed): the ones that lose the least by being forgotten. The sweep runs once per
//! `max_keys / 16` new keys, so its cost is amortised to a few entries per insert.
//! A key is evicted only from the TAT the sweep judged (a compare-and-swap to a retired
//! mark): a check of that key landing in between wins, and the key stays. Should every
//! key the sweep chose be kept that way, the new key finds no room and its call is
//! refused with a `retry_after` of one interval, rather than stored past the bound or
//! admitted untracked (the `loom_keyed` models explore both orders).
//!
//! A key's TAT is how long it stays limited, so the keys kept are those limited
//! longest. A key that has spent its whole burst is limited `burst - 1` intervals
//! longer than a key used once, so with a burst above one, hot keys stay limited
//! exactly under a flood of keys each used once (the `keyed_flood` test). With a burst
//! of one, a key used once and a hot key that is being refused are limited alike, up
//! to one interval after their last admitted call; a hot key is then forgotten once
//! `max_keys` keys have been admitted after it, and its next call may pass before its
//! interval ends. Give such a limiter room for the distinct keys a flood can bring in
//! one interval.
//!
//! # Hasher
//! Keys are hashed with std's `RandomState` by default: SipHash-1-3 under a random
//! key, which an attacker cannot make collide. Limiter keys (client IPs, tenant ids,
//! API keys) usually come from the network, and colliding keys would turn each lookup
//! of an open-addressing table into a long probe, so the default keeps that
//! resistance. Faster hashers (foldhash, ahash with a fixed seed) are not designed to
//! resist chosen keys; [`KeyedGcra::with_hasher`] takes any `BuildHasher` for keys no
//! client can choose (routes, a fixed set of tenants). In the crate's benchmark,
//! foldhash takes about a third of the lookup's instructions off.
//!
//! Inserts and sweeps of new keys are serialised by a mutex (only there: the lookup of a
//! known key never touches it), which makes the bound exact. An entry is removed only
//! after its word was swapped, by compare-and-swap from the idle value the sweep saw, to
//! a *retired* sentinel; a concurrent check that finds the sentinel looks the key up
//! again, so no admission is ever made on a forgotten entry and none is lost.
//!
//! ```
//! use buttress_core::keyed::KeyedGcra;
//! use buttress_core::gcra::Quota;
//! use buttress_core::Nanos;
//!
//! let limiter = KeyedGcra::new(Quota::per_second(1, 2).unwrap(), 1_000).unwrap();
//! let now = Nanos::from_secs(1);
//! assert!(limiter.check("alice", now).is_ok());
//! assert!(limiter.check("alice", now).is_ok());
//! assert_eq!(limiter.check("alice", now), Err(Nanos::from_secs(1)));
//! assert!(limiter.check("bob", now).is_ok()); // keys are independent
//! assert_eq!(limiter.len(), 2);
//! ```

use crate::clock::Nanos;
use crate::config::ConfigError;
use crate::gcra::{Quota, Refusal, update_live};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};

/// The retired sentinel of an entry's TAT word.
const RETIRED: u64 = u64::MAX;

/// One key's state: its theoretical arrival time.
struct Entry {
    tat: AtomicU64,
}

/// Per-key GCRA limiters sharing one [`Quota`], at most `max_keys` keys at once.
pub struct KeyedGcra<K, S = RandomState> {
    quota: Quota,
    max_keys: usize,
    map: papaya::HashMap<K, Entry, S>,
    /// Keys in the map. Changed only under `insert_lock`, so exact.
    len: AtomicUsize,
    /// Serialises inserts of new keys and sweeps. Never taken for a key already held:
    /// a known key's check is a lock-free map read plus the GCRA compare-and-swap. A
    /// new key is the first call of a client (or of an attacker spraying keys), where
    /// holding the key count exactly at `max_keys` matters more than a few ns, and a
    /// sweep must see a stable count to evict the right number of idle keys.
    insert_lock: Mutex<()>,
}

impl<K, S> fmt::Debug for KeyedGcra<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGcra")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl<K: Hash + Eq> KeyedGcra<K> {
    /// A store of per-key limiters with `quota` each, holding at most `max_keys` keys.
    pub fn new(quota: Quota, max_keys: usize) -> Result<Self, ConfigError> {
        Self::with_hasher(quota, max_keys, RandomState::new())
    }
}

impl<K: Hash + Eq, S: BuildHasher> KeyedGcra<K, S> {
    /// As [`new`](KeyedGcra::new), hashing keys with `hasher` (a faster hasher suits keys
    /// an attacker cannot choose).
    pub fn with_hasher(quota: Quota, max_keys: usize, hasher: S) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        Ok(KeyedGcra {
            quota,
            max_keys,
            map: papaya::HashMap::with_hasher(hasher),
            len: AtomicUsize::new(0),
            insert_lock: Mutex::new(()),
        })
    }

    /// The quota every key gets.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The largest number of keys held at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Keys held right now.
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot for reporting.
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits one call for `key` at `now`, or says how long until it would pass.
    #[inline]
    pub fn check(&self, key: K, now: Nanos) -> Result<(), Nanos> {
        self.reserve(key, now, Nanos::ZERO).map(drop)
    }

    /// Admits `n` cells for `key` at once, as [`Gcra::check_n`](crate::gcra::Gcra::check_n).
    /// `n == 0` passes without touching the store: it neither makes a key nor makes
    /// room for one.
    #[inline]
    pub fn check_n(&self, key: K, now: Nanos, n: u32) -> Result<(), Refusal> {
        if n == 0 {
            return Ok(());
        }
        self.run(key, now, n, Nanos::ZERO).map(|_| ())
    }

    /// Reserves one slot for `key`, as [`Gcra::reserve`](crate::gcra::Gcra::reserve).
    #[inline]
    pub fn reserve(&self, key: K, now: Nanos, max_wait: Nanos) -> Result<Nanos, Nanos> {
        self.run(key, now, 1, max_wait)
            .map_err(Refusal::retry_after)
    }

    /// Removes every idle key (TAT at or before `now`); returns how many went.
    ///
    /// The store does this by itself whenever it is full; call it to trim memory sooner.
    pub fn evict_idle(&self, now: Nanos) -> usize {
        let _lock = self.lock();
        self.sweep(|tat| tat <= now.as_u64())
    }

    #[inline]
    fn run(&self, key: K, now: Nanos, n: u32, max_wait: Nanos) -> Result<Nanos, Refusal> {
        if n > self.quota.burst() {
            // Refused before touching the map: such a request never creates a key.
            return Err(Refusal::InsufficientCapacity {
                requested: n,
                burst: self.quota.burst(),
            });
        }
        let map = self.map.pin();
        // The common path: a known key, no lock.
        if let Some(entry) = map.get(&key) {
            if let Some(r) = update_live(&entry.tat, &self.quota, now, n, max_wait) {
                return r;
            }
            // Retired by a sweep in progress: fall through to the locked path, which
            // waits for the sweep to finish.
        }
        drop(map);
        self.insert_and_run(key, now, n, max_wait)
    }

    #[cold]
    fn insert_and_run(
        &self,
        key: K,
        now: Nanos,
        n: u32,
        max_wait: Nanos,
    ) -> Result<Nanos, Refusal> {
        let _lock = self.lock();
        let map = self.map.pin();
        if let Some(entry) = map.get(&key) {
            // Inserted by another thread meanwhile; sweeps only run under the lock, so
            // the entry cannot be retired now.
            if let Some(r) = update_live(&entry.tat, &self.quota, now, n, max_wait) {
                return r;
            }
        }
        if self.len.load(Ordering::Relaxed) >= self.max_keys {
            self.make_room(now);
        }
        // Decide on a fresh word first: a refused request (possible with n > 0 only
        // through max_wait, never for a fresh key) inserts nothing.
        let fresh = AtomicU64::new(0);
        let r = update_live(&fresh, &self.quota, now, n, max_wait)
            .expect("a fresh word is never retired");
        if r.is_ok() && self.len.load(Ordering::Relaxed) < self.max_keys {
            let tat = fresh.load(Ordering::Relaxed);
            if tat > now.as_u64() {
                // Only a key that is not idle at once is worth storing.
                map.insert(
                    key,
                    Entry {
                        tat: AtomicU64::new(tat),
                    },
                );
                // Relaxed: `len` is only written under `insert_lock`, whose mutex orders
                // these writes; readers outside it want a snapshot.
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        } else if r.is_ok() {
            // Still full: every key was updated concurrently during the sweep. Refuse
            // rather than exceed the bound or admit an untracked call.
            return Err(Refusal::Wait {
                retry_after: self.quota.interval(),
            });
        }
        r
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data (the map is concurrent); a panic under it leaves
        // nothing inconsistent, so a poisoned lock is simply taken.
        self.insert_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Frees room: every idle key, else the sixteenth closest to recovery.
    /// Called with `insert_lock` held.
    fn make_room(&self, now: Nanos) {
        let now = now.as_u64();
        let map = self.map.pin();
        // Relaxed: a snapshot; the eviction below re-checks each word by CAS.
        let mut tats: Vec<u64> = map
            .values()
            .map(|e| e.tat.load(Ordering::Relaxed))
            .collect();
        drop(map);
        if tats.is_empty() {
            return;
        }
        let needed = (self.max_keys / 16).clamp(1, tats.len());
        let (_, &mut kth, _) = tats.select_nth_unstable(needed - 1);
        // Every idle key, and at least a sixteenth of the store (the keys closest to
        // recovery), so that the next `max_keys / 16` new keys find room without a
        // sweep: evicting only the keys that happen to be idle would rescan the whole
        // map for every new key once keys go idle one at a time.
        let removed = self.sweep(|tat| tat <= now || tat < kth);
        if removed < needed && kth > now {
            // Of the keys tied at `kth` (used at one instant: a coarse or paused
            // clock), only as many as the sixteenth needs, not all of them.
            let left = std::cell::Cell::new(needed - removed);
            self.sweep(|tat| {
                let take = tat == kth && left.get() > 0;
                left.set(left.get() - usize::from(take));
                take
            });
        }
    }

    /// Retires and removes every entry whose TAT satisfies `evict`; returns how many.
    /// Called with `insert_lock` held.
    fn sweep(&self, evict: impl Fn(u64) -> bool) -> usize {
        let map = self.map.pin();
        let mut removed = 0;
        map.retain(|_, e| {
            // Relaxed: the CAS below is what decides, on this word alone.
            let tat = e.tat.load(Ordering::Relaxed);
            if tat == RETIRED || !evict(tat) {
                return true;
            }
            // Retire only from the value judged: a check that moved the TAT in between
            // wins and the key stays. Relaxed: the word publishes no other memory.
            let retired = e
                .tat
                .compare_exchange(tat, RETIRED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
            removed += usize::from(retired);
            !retired
        });
        // Relaxed: written under `insert_lock` only.
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn max_keys_zero_is_a_config_error() {
        let q = Quota::per_second(1, 1).unwrap();
        assert_eq!(KeyedGcra::<u64>::new(q, 0).unwrap_err().field(), "max_keys");
    }

    #[test]
    fn idle_keys_are_swept_when_full() {
        let q = Quota::per_second(10, 1).unwrap();
        let s = KeyedGcra::new(q, 4).unwrap();
        for k in 0..4u64 {
            assert!(s.check(k, Nanos::ZERO).is_ok());
        }
        assert_eq!(s.len(), 4);
        // 100 ms later every key is idle; a fifth key sweeps them out.
        assert!(s.check(99, Nanos::from_millis(100)).is_ok());
        assert_eq!(s.len(), 1);
        assert_eq!(s.evict_idle(Nanos::from_millis(200)), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn over_limit_keys_survive_a_flood() {
        let q = Quota::per_second(1, 2).unwrap();
        let s = KeyedGcra::new(q, 32).unwrap();
        let now = Nanos::from_secs(10);
        assert!(s.check(u64::MAX, now).is_ok());
        assert!(s.check(u64::MAX, now).is_ok());
        for k in 0..10_000u64 {
            let _ = s.check(k, now);
            assert!(s.len() <= 32);
        }
        assert_eq!(s.check(u64::MAX, now), Err(Nanos::from_secs(1)));
    }

    #[test]
    fn keys_used_at_one_instant_are_not_all_forgotten_at_once() {
        // Burst 1, every key used at the same instant (paused time): their TATs tie.
        // A new key in the full store frees a sixteenth of it, not every tied key.
        let q = Quota::per_second(1, 1).unwrap();
        let s = KeyedGcra::new(q, 32).unwrap();
        let now = Nanos::from_secs(10);
        for k in 0..32u64 {
            assert!(s.check(k, now).is_ok());
        }
        assert!(s.check(1_000, now).is_ok());
        assert_eq!(s.len(), 32 - 2 + 1);
        // The 31 keys held are all still limited: none is idle.
        assert_eq!(s.evict_idle(now), 0);
        assert_eq!(s.len(), 31);
    }

    #[test]
    fn check_n_over_burst_stores_nothing() {
        let s = KeyedGcra::new(Quota::per_second(1, 2).unwrap(), 8).unwrap();
        assert!(matches!(
            s.check_n(1u8, Nanos::ZERO, 3),
            Err(Refusal::InsufficientCapacity { .. })
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn asking_for_nothing_neither_makes_a_key_nor_room_for_one() {
        let s = KeyedGcra::new(Quota::per_second(1, 1).unwrap(), 2).unwrap();
        let t = Nanos::from_secs(1);
        s.check(1u8, t).unwrap();
        s.check(2u8, t).unwrap();
        assert_eq!(s.len(), 2, "full");
        assert_eq!(s.check_n(3u8, t, 0), Ok(()));
        assert_eq!(s.len(), 2, "no key made, none evicted");
        // Both keys still limited: their cell is spent.
        assert!(s.check(1u8, t).is_err());
        assert!(s.check(2u8, t).is_err());
    }
}
