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
