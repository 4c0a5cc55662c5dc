//! loom models of the keyed store's one compare-and-swap of its own: a sweep retiring
//! an idle key's word, racing a lock-free check of that key (the GCRA loop, which
//! treats a retired word as gone and takes the locked path to a new entry).
//!
//! The concurrent map itself (papaya) is not modelled: its operations run whole, at
//! the points where the model's threads call them. What is explored is every order
//! of the entry word's load, the retire CAS, the check's CAS and the insert lock.
#![cfg(loom)]

use buttress_core::Nanos;
use buttress_core::gcra::Quota;
use buttress_core::keyed::KeyedGcra;
use loom::thread;
use std::sync::Arc;

/// One cell per second, a burst of one, room for four keys; key 1 used at t = 0, so
/// that at t = 2 s it is idle (its cell back) and a sweep may evict it.
fn store() -> Arc<KeyedGcra<u8>> {
    let s = KeyedGcra::new(Quota::per_second(1, 1).unwrap(), 4).unwrap();
    s.check(1, Nanos::ZERO).unwrap();
    Arc::new(s)
}

#[test]
fn a_check_racing_the_eviction_of_its_key_is_admitted_once() {
    loom::model(|| {
        let s = store();
        let now = Nanos::from_secs(2);
        let checker = {
            let s = s.clone();
            thread::spawn(move || s.check(1, now).is_ok())
        };
        let sweeper = {
            let s = s.clone();
            thread::spawn(move || s.evict_idle(now))
        };
        assert!(checker.join().unwrap(), "an idle key's cell is free");
        let evicted = sweeper.join().unwrap();
        assert!(evicted <= 1);
        // Whichever won, the cell the check took counts: in the old entry (the check
        // moved its word first, and the sweep left it), or in a new one (the sweep
        // retired the word first, and the check made a new entry).
        assert!(
            s.check(1, now).is_err(),
            "evicted {evicted}: over the limit"
        );
        assert_eq!(s.len(), 1, "one key, counted once");
    });
}

#[test]
fn a_check_racing_a_new_key_that_would_evict_it() {
    loom::model(|| {
        // Room for one key: key 2's first check must make room, and finds key 1 idle,
        // while key 1 is being checked.
        let s = KeyedGcra::new(Quota::per_second(1, 1).unwrap(), 1).unwrap();
        s.check(1u8, Nanos::ZERO).unwrap();
        let s = Arc::new(s);
        let now = Nanos::from_secs(2);
        let old = {
            let s = s.clone();
            thread::spawn(move || s.check(1, now).is_ok())
        };
        let new = {
            let s = s.clone();
            thread::spawn(move || s.check(2, now).is_ok())
        };
        assert!(old.join().unwrap(), "key 1 was idle: its cell is free");
        let admitted = new.join().unwrap();
        assert!(s.len() <= 1, "never more keys than room: {}", s.len());
        if !admitted {
            // Key 1's check moved its word between the sweep's look and its
            // compare-and-swap: key 1 stays, with the cell it took, and the new key is
            // refused rather than stored past the bound or admitted untracked.
            assert_eq!(s.len(), 1);
            assert!(s.check(1, now).is_err(), "key 1 keeps its spent cell");
        }
    });
}
