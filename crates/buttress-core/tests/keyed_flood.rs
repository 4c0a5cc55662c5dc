//! A million distinct keys against a store of ten thousand: the key count stays
//! bounded and the hot keys are limited exactly as if nothing had been evicted.
#![cfg(not(loom))]

use buttress_core::gcra::{Gcra, Quota};
use buttress_core::keyed::KeyedGcra;
use buttress_core::{Clock, ManualClock, Nanos};

#[test]
fn a_million_keys_stay_bounded_and_hot_keys_stay_limited() {
    const MAX_KEYS: usize = 10_000;
    const HOT: u64 = 10;
    let quota = Quota::per_second(1, 5).unwrap();
    let store = KeyedGcra::new(quota, MAX_KEYS).unwrap();
    // References: one plain limiter per hot key, never evicted.
    let reference: Vec<Gcra> = (0..HOT).map(|_| Gcra::new(quota)).collect();
    let clock = ManualClock::starting_at(Nanos::from_secs(1));
    let mut hot_admitted = vec![0u32; HOT as usize];
    let mut peak = 0;

    // One new key per microsecond for one simulated second (each sprayed key stays
    // non-idle for a full second, so eviction must pick among live keys), with every
    // hot key hit every 100 us: far over its limit of 1 per second.
    for i in 0..1_000_000u64 {
        clock.advance(Nanos::from_micros(1));
        let now = clock.now();
        let _ = store.check(HOT + i, now);
        if i % 100 == 0 {
            for h in 0..HOT {
                let got = store.check(h, now);
                assert_eq!(
                    got,
                    reference[h as usize].check(now),
                    "hot key {h} at {now}"
                );
                hot_admitted[h as usize] += u32::from(got.is_ok());
            }
        }
        if i % 1024 == 0 {
            peak = peak.max(store.len());
        }
    }
    peak = peak.max(store.len());
    assert!(peak <= MAX_KEYS, "held {peak} keys");
    assert!(peak > MAX_KEYS / 2, "the store was actually filled");
    // The burst at the start, then one a second: the sixth slot opens one second after
    // the first hit, just after the last hit of the loop (at 999,901 us).
    for (h, n) in hot_admitted.iter().enumerate() {
        assert_eq!(*n, 5, "hot key {h}");
    }
    clock.advance(Nanos::from_micros(100));
    for h in 0..HOT {
        assert!(
            store.check(h, clock.now()).is_ok(),
            "hot key {h} after one second"
        );
        assert!(store.check(h, clock.now()).is_err());
    }
}

/// Keys that recover one at a time do not make every new key rescan the store: one
/// sweep frees every idle key and at least a sixteenth of the room.
#[test]
fn a_full_store_frees_a_sixteenth_at_a_time() {
    const MAX_KEYS: usize = 1_600;
    // One call a second per key, burst 1: a key stays non-idle for one second after it
    // is used.
    let quota = Quota::per_second(1, 1).unwrap();
    let store = KeyedGcra::new(quota, MAX_KEYS).unwrap();
    // Fill the store with keys used 1 ms apart: they recover one per millisecond.
    let mut now = Nanos::from_secs(10);
    for k in 0..MAX_KEYS as u64 {
        assert!(store.check(k, now).is_ok());
        now += Nanos::from_millis(1);
    }
    assert_eq!(store.len(), MAX_KEYS);
    // 1.05 s after the first key: the keys used at or before `now - 1 s` are idle.
    // Insert one new key into the full store.
    let now = Nanos::from_secs(10) + Nanos::from_millis(1_050);
    assert!(store.check(1_000_000, now).is_ok());
    // 51 keys were idle (used at 10.000 .. 10.050 s): fewer than a sixteenth (100), so
    // the sweep also took the keys closest to recovery, up to a hundred.
    let held = store.len();
    assert!(held <= MAX_KEYS - MAX_KEYS / 16 + 1, "held {held}");
    // The next 99 new keys need no sweep and are all admitted; the store stays bounded.
    for k in 0..99u64 {
        assert!(store.check(2_000_000 + k, now).is_ok());
    }
    assert!(store.len() <= MAX_KEYS);
}
