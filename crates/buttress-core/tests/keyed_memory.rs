//! Memory, not just the key count, stays bounded while a million distinct keys are
//! sprayed at a store of ten thousand: the bytes the process holds after 200,000 keys
//! and after a million are about the same, and both far below what a million entries
//! would take. (A test binary of its own: its allocator counts every allocation of the
//! process, which another test running beside it would disturb.)
#![cfg(not(loom))]

use buttress_core::gcra::Quota;
use buttress_core::keyed::KeyedGcra;
use buttress_core::{Clock, ManualClock, Nanos};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since `region` began.
fn held(region: &Region<'_, System>) -> usize {
    let c = region.change();
    c.bytes_allocated.saturating_sub(c.bytes_deallocated)
}

#[test]
fn a_million_keys_hold_the_memory_of_ten_thousand() {
    const MAX_KEYS: usize = 10_000;
    let store = KeyedGcra::new(Quota::per_second(1, 5).unwrap(), MAX_KEYS).unwrap();
    let clock = ManualClock::starting_at(Nanos::from_secs(1));
    let region = Region::new(GLOBAL);
    let mut after_200k = 0;
    // One new key per microsecond: each stays non-idle for a second, so the store is
    // full and evicting throughout.
    for i in 0..1_000_000u64 {
        clock.advance(Nanos::from_micros(1));
        let _ = store.check(i, clock.now());
        if i == 200_000 {
            after_200k = held(&region);
        }
    }
    let after_1m = held(&region);
    assert!(store.len() <= MAX_KEYS);
    // A million entries of even 16 bytes would be 16 MB; ten thousand, with the map's
    // table and the reclamation it defers, stay in the low megabytes.
    assert!(
        after_1m < 8 << 20,
        "{after_1m} bytes held after a million keys"
    );
    assert!(
        after_1m < 2 * after_200k.max(1 << 20),
        "grew from {after_200k} to {after_1m} bytes"
    );
}
