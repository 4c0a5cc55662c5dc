//! loom model of the permit counter: concurrent acquires never admit more than the
//! maximum, never refuse while a slot is free, and every permit comes back.
#![cfg(loom)]

use buttress_core::permits::Permits;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// `threads` callers (plus a permit held by the main thread if `pre_held`) race for
/// `max` slots; `admitted` tracks the real holders.
fn race(max: usize, threads: usize, pre_held: bool) {
    loom::model(move || {
        let permits = Arc::new(Permits::new(max).unwrap());
        let holders = Arc::new(AtomicUsize::new(0));
        let held = if pre_held {
            holders.fetch_add(1, Ordering::SeqCst);
            permits.try_acquire()
        } else {
            None
        };
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let p = Arc::clone(&permits);
                let holders = Arc::clone(&holders);
                thread::spawn(move || {
                    if let Some(g) = p.try_acquire() {
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= max, "{now} holders with max {max}");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        drop(g);
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        drop(held);
        assert_eq!(permits.available(), max, "every permit came back");
        assert_eq!(permits.in_flight(), 0);
        // Alone, a caller always gets a slot.
        assert!(permits.try_acquire().is_some());
    });
}

#[test]
fn one_slot_two_threads() {
    race(1, 2, false);
}

#[test]
fn two_slots_one_held_two_threads() {
    race(2, 2, true);
}

/// `threads` callers race for `max` slots and keep what they get until all have tried:
/// exactly `min(threads, max)` are admitted. A counter whose racing callers can both be
/// refused for the last slot (or both admitted) fails here.
fn exact(max: usize, threads: usize) {
    loom::model(move || {
        let permits = Arc::new(Permits::new(max).unwrap());
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let p = Arc::clone(&permits);
                thread::spawn(move || p.try_acquire())
            })
            .collect();
        let held: Vec<_> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(
            held.len(),
            threads.min(max),
            "admitted exactly the free slots"
        );
        assert_eq!(permits.in_flight(), held.len());
        drop(held);
        assert_eq!(permits.available(), max);
    });
}

#[test]
fn last_slot_goes_to_exactly_one_of_two() {
    exact(1, 2);
}

#[test]
fn two_slots_three_threads_admit_two() {
    exact(2, 3);
}

/// The counter and its permits dropped on different threads, in every order: the
/// counter's cell goes back to the pool exactly once, by whichever of them is last, and
/// a permit that outlives its counter still releases cleanly.
fn cell_goes_back_once(permits_out: usize) {
    loom::model(move || {
        let before = buttress_core::permits::cells_given_back();
        let permits = Permits::new(2).unwrap();
        let handles: Vec<_> = (0..permits_out)
            .map(|_| {
                let g = permits.try_acquire().expect("a free slot");
                thread::spawn(move || drop(g))
            })
            .collect();
        drop(permits);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            buttress_core::permits::cells_given_back() - before,
            1,
            "given back exactly once"
        );
    });
}

#[test]
fn counter_and_one_permit_race_to_give_the_cell_back() {
    cell_goes_back_once(1);
}

#[test]
fn counter_and_two_permits_race_to_give_the_cell_back() {
    cell_goes_back_once(2);
}
