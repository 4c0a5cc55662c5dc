//! loom models of the retry budget's compare-and-swap loops.
#![cfg(loom)]

use buttress_core::Nanos;
use buttress_core::budget::RetryBudget;
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
