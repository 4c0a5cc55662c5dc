//! loom models of the retry budget's compare-and-swap loops.
#![cfg(loom)]

use buttress_core::Nanos;
use buttress_core::budget::{REFRESH_EVERY, RetryBudget};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::time::Duration;

fn budget(ratio: f64, floor: u32) -> Arc<RetryBudget> {
    Arc::new(
        RetryBudget::builder()
            .retry_ratio(ratio)
            .min_retries_per_sec(floor)
            .ttl(Duration::from_secs(1))
            .slots(1)
            .build()
            .unwrap(),
    )
}

#[test]
fn concurrent_withdrawals_never_overdraw() {
    loom::model(|| {
        // A reserve of exactly one retry, three threads after it.
        let b = budget(0.0, 1);
        let granted = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (b, granted) = (b.clone(), granted.clone());
                thread::spawn(move || {
                    if b.try_withdraw(Nanos::ZERO).is_some() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        if b.try_withdraw(Nanos::ZERO).is_some() {
            granted.fetch_add(1, Ordering::Relaxed);
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(granted.load(Ordering::Relaxed), 1);
        assert_eq!(b.available(Nanos::ZERO), 0);
    });
}

#[test]
fn a_deposit_racing_a_withdrawal() {
    loom::model(|| {
        // One deposit allows one retry; the withdrawal may or may not see it.
        let b = budget(1.0, 0);
        let d = {
            let b = b.clone();
            thread::spawn(move || b.deposit(Nanos::ZERO))
        };
        let got = b.try_withdraw(Nanos::ZERO).is_some();
        d.join().unwrap();
        assert_eq!(b.deposited(Nanos::ZERO), 1);
        assert_eq!(b.available(Nanos::ZERO), if got { 0 } else { 1 });
        // Never more than one in all.
        let again = b.try_withdraw(Nanos::ZERO).is_some();
        assert!(!(got && again));
    });
}

#[test]
fn deposits_in_two_lanes_racing_a_restart_and_a_withdrawal() {
    loom::model(|| {
        // One retry per request, no floor, one slot of one second: each lane's slot
        // holds epoch 0 and is restarted by the deposits of epoch 1.
        let b = budget(1.0, 0);
        b.deposit_in(0, Nanos::ZERO);
        b.deposit_in(1, Nanos::ZERO);
        let later = Nanos::from_secs(1);
        let d = {
            let b = b.clone();
            thread::spawn(move || b.deposit_in(1, later))
        };
        let c = {
            let b = b.clone();
            thread::spawn(move || b.deposit_cached_in(0, || later))
        };
        b.deposit_in(0, later);
        let got = b.try_withdraw(later).is_some();
        d.join().unwrap();
        c.join().unwrap();
        // Every epoch-1 deposit counts once, whichever lane and order; the epoch-0
        // ones are out of the window. The cached one lands at epoch 0 or 1.
        let n = b.deposited(later);
        assert!((2..=3).contains(&n), "{n}");
        assert_eq!(b.available(later), n - u64::from(got));
    });
}

#[test]
fn a_refund_racing_the_expiry_of_its_slot() {
    loom::model(|| {
        // Reserve of one per second, one slot of one second.
        let b = budget(0.0, 1);
        let w = b.try_withdraw(Nanos::ZERO).expect("the reserve");
        let r = {
            let b = b.clone();
            thread::spawn(move || b.refund(w))
        };
        // A second later the first withdrawal has aged out (or been refunded). While
        // the refund is between its two steps (slot count, then `outstanding`) a
        // withdrawal may be refused: conservative, never an overdraw.
        let later = Nanos::from_secs(1);
        let first = b.try_withdraw(later).is_some();
        r.join().unwrap();
        // Once both are done the books are exact: one retry in all for this second.
        assert_eq!(b.available(later), if first { 0 } else { 1 });
        let second = b.try_withdraw(later).is_some();
        assert!(first ^ second, "exactly one of the two is granted");
        assert_eq!(b.available(later), 0);
    });
}

#[test]
fn withdrawals_across_a_slot_boundary_never_overdraw() {
    loom::model(|| {
        // Two slots of one second, a reserve of two retries over the two-second window;
        // threads whose clock reads straddle the slot boundary.
        let b = Arc::new(
            RetryBudget::builder()
                .retry_ratio(0.0)
                .min_retries_per_sec(1)
                .ttl(Duration::from_secs(2))
                .slots(2)
                .build()
                .unwrap(),
        );
        let granted = Arc::new(AtomicUsize::new(0));
        let spawn_at = |t: Nanos| {
            let (b, granted) = (b.clone(), granted.clone());
            thread::spawn(move || {
                if b.try_withdraw(t).is_some() {
                    granted.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let a = spawn_at(Nanos::ZERO);
        let c = spawn_at(Nanos::from_secs(1));
        if b.try_withdraw(Nanos::from_secs(1)).is_some() {
            granted.fetch_add(1, Ordering::Relaxed);
        }
        a.join().unwrap();
        c.join().unwrap();
        assert!(granted.load(Ordering::Relaxed) <= 2);
        let later = Nanos::from_secs(1);
        assert_eq!(
            b.available(later) as usize,
            2 - granted.load(Ordering::Relaxed)
        );
    });
}

#[test]
fn cached_deposits_racing_a_refresh_and_a_withdrawal() {
    loom::model(|| {
        // Two slots of one second, one retry per request, no floor.
        let b = Arc::new(
            RetryBudget::builder()
                .retry_ratio(1.0)
                .min_retries_per_sec(0)
                .ttl(Duration::from_secs(2))
                .slots(2)
                .build()
                .unwrap(),
        );
        // The cached epoch is 0; the next cached deposit into slot 0 is its 64th and
        // reads the clock (1 s), moving the cached epoch to 1. (The reads before it, at
        // counts 1, 2, 4, ..., show time 0: the cached epoch stays 0.)
        for _ in 0..REFRESH_EVERY - 1 {
            b.deposit_cached(|| Nanos::ZERO);
        }
        let refresher = {
            let b = b.clone();
            thread::spawn(move || b.deposit_cached(|| Nanos::from_secs(1)))
        };
        // A withdrawal at 2 s moves the cached epoch to 2.
        let withdrawer = {
            let b = b.clone();
            thread::spawn(move || b.try_withdraw(Nanos::from_secs(2)).is_some())
        };
        // A deposit at whatever epoch is cached when it lands: 0, 1 or 2.
        b.deposit_cached(|| Nanos::from_secs(2));
        refresher.join().unwrap();
        let granted = withdrawer.join().unwrap();
        // No deposit counted twice or in an epoch after 2 (the latest clock read).
        // (Slot 0 restarted for epoch 2 drops epoch 0's deposits, out of the window.)
        let early = b.deposited(Nanos::from_secs(1)); // epochs 0 and 1
        let late = b.deposited(Nanos::from_secs(3)); // epochs 2 and 3
        assert!(early + late <= u64::from(REFRESH_EVERY) + 1);
        assert_eq!(b.deposited(Nanos::from_secs(4)), 0); // epochs 3 and 4
        // Seen from 2 s only the two racing deposits can count (at epoch 1 or 2): a
        // retry is granted only against one of them, and the books are exact.
        let now = Nanos::from_secs(2);
        assert!(b.deposited(now) <= 2);
        assert!(!granted || b.deposited(now) >= 1);
        assert_eq!(b.available(now), b.deposited(now) - u64::from(granted));
    });
}
