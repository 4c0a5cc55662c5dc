//! loom models of every compare-and-swap loop of the breaker: the trip, half-open
//! admission, the half-open decision and probe release, and window recording.
#![cfg(loom)]

use buttress_core::Nanos;
use buttress_core::breaker::{Breaker, BreakerConfig, Outcome, State};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::sync::Arc;
use std::time::Duration;

const T0: Nanos = Nanos::ZERO;

/// A breaker tripping on `min` outcomes of a window of `n`, with a zero open wait
/// (half-open on the next call), and a listener counting transitions.
fn breaker(n: u32, min: u32, permitted: u32) -> (Arc<Breaker>, Arc<AtomicUsize>) {
    let transitions = Arc::new(AtomicUsize::new(0));
    let seen = transitions.clone();
    let config = BreakerConfig::builder()
        .count_window(n)
        .minimum_calls(min)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::ZERO)
        .permitted_calls_in_half_open(permitted)
        .build()
        .unwrap();
    let b = Breaker::new(config).with_listener(Arc::new(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    (Arc::new(b), transitions)
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    loom::model(|| {
        let (b, transitions) = breaker(2, 2, 1);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    let p = b.acquire(|| T0).expect("closed");
                    p.record(Outcome::Failure, || T0);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let m = b.metrics(T0);
        assert_eq!(m.state, State::Open);
        assert_eq!(m.generation, 1);
        assert_eq!(transitions.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn half_open_admits_exactly_the_permitted_probes() {
    loom::model(|| {
        let (b, transitions) = breaker(1, 1, 1);
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        assert_eq!(b.state(), State::Open);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.acquire(|| T0).map(std::mem::forget).is_ok())
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(admitted, 1);
        assert_eq!(b.state(), State::HalfOpen);
        // Closed -> Open, Open -> HalfOpen: the move happened once.
        assert_eq!(transitions.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn probe_outcomes_decide_once() {
    loom::model(|| {
        let (b, transitions) = breaker(1, 1, 2);
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        let b1 = b.clone();
        let t1 = thread::spawn(move || p1.record(Outcome::Success, || T0));
        let t2 = thread::spawn(move || p2.record(Outcome::Success, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        // Both in, both succeeded: closed, by exactly one transition.
        assert_eq!(b1.state(), State::Closed);
        assert_eq!(transitions.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_dropped_probe_frees_its_slot_while_another_reports() {
    loom::model(|| {
        let (b, _) = breaker(1, 1, 2);
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        let t1 = thread::spawn(move || drop(p1));
        let t2 = thread::spawn(move || p2.record(Outcome::Success, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        // One outcome in, one slot free again: still half-open, and a new probe fits.
        assert_eq!(b.state(), State::HalfOpen);
        let p3 = b.acquire(|| T0).expect("the dropped probe's slot");
        p3.record(Outcome::Success, || T0);
        assert_eq!(b.state(), State::Closed);
    });
}

#[test]
fn count_window_totals_follow_the_ring_under_races() {
    loom::model(|| {
        // Window of 2: both writers race to claim a position; each must get its own,
        // or one outcome would be lost.
        let (b, _) = breaker(2, 2, 1);
        let b1 = b.clone();
        let b2 = b.clone();
        let t1 = thread::spawn(move || b1.acquire(|| T0).unwrap().record(Outcome::Success, || T0));
        let t2 = thread::spawn(move || b2.acquire(|| T0).unwrap().record(Outcome::Failure, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        // Both outcomes in the window once both have landed. (Whether the second one
        // tripped the breaker depends on whether it read the first one's total yet:
        // a trip decision may lag by one call, see the `window` module. An open
        // breaker's window is emptied, so read it only while closed.)
        let m = b.metrics(T0);
        if m.state == State::Closed {
            assert_eq!((m.calls, m.failures), (2, 1), "both outcomes counted");
        } else {
            assert_eq!(m.state, State::Open);
        }
    });
}

#[test]
fn count_window_success_and_failure_race_on_one_slot() {
    loom::model(|| {
        let config = BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .failure_rate_threshold(100.0)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        let t1 = thread::spawn(move || p1.record(Outcome::Success, || T0));
        let t2 = thread::spawn(move || p2.record(Outcome::Failure, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        let m = b.metrics(T0);
        // Whatever the order, the failure counter follows the slot: the failure was
        // overwritten by the success, or it tripped the breaker and was cleared with
        // the window. A success that passed the generation check before the trip and
        // writes after it is refused by the re-stamped window.
        assert_eq!(m.failures, 0);
        assert!(m.calls <= 1);
        assert!(matches!(m.state, State::Open | State::Closed));
    });
}

#[test]
fn time_window_rotation_races_with_recording() {
    loom::model(|| {
        // 2 buckets of 10 ns; failures never trip (minimum 10 calls).
        let config = BreakerConfig::builder()
            .time_window(Duration::from_nanos(20), 2)
            .minimum_calls(10)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        // One records in epoch 1, the other in epoch 2 (expiring epoch 0).
        let t1 = thread::spawn(move || p1.record(Outcome::Success, || Nanos::new(10)));
        let t2 = thread::spawn(move || p2.record(Outcome::Failure, || Nanos::new(20)));
        t1.join().unwrap();
        t2.join().unwrap();
        // At t = 20 the window holds epochs 1 and 2: one success, one failure.
        let m = b.metrics(Nanos::new(20));
        assert_eq!((m.calls, m.failures), (2, 1));
        // At t = 30, epochs 2 and 3: the failure alone.
        let m = b.metrics(Nanos::new(30));
        assert_eq!((m.calls, m.failures), (1, 1));
        // At t = 40, epochs 3 and 4: nothing left, and no residue in the totals.
        let m = b.metrics(Nanos::new(40));
        assert_eq!((m.calls, m.failures), (0, 0));
    });
}

/// A breaker whose window is the last `n` calls, tripping on `min` of them at 50 %,
/// with the given open wait and one half-open probe.
fn count_breaker(n: u32, min: u32, wait: Duration) -> Arc<Breaker> {
    let config = BreakerConfig::builder()
        .count_window(n)
        .minimum_calls(min)
        .failure_rate_threshold(50.0)
        .wait_in_open(wait)
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    Arc::new(Breaker::new(config))
}

#[test]
fn a_failure_racing_the_trip_is_not_counted_once_closed_again() {
    loom::model(|| {
        // Either failure trips the breaker; the other one, if it loaded the closed
        // state before that trip, writes to the window after the trip cleared it.
        let b = count_breaker(2, 1, Duration::ZERO);
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        let t1 = thread::spawn(move || p1.record(Outcome::Failure, || T0));
        let t2 = thread::spawn(move || p2.record(Outcome::Failure, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(b.state(), State::Open);
        // Open -> HalfOpen -> Closed: a new closed generation, with an empty window.
        b.acquire(|| T0).unwrap().record(Outcome::Success, || T0);
        assert_eq!(b.state(), State::Closed);
        let m = b.metrics(T0);
        assert_eq!((m.calls, m.failures), (0, 0), "no outcome of generation 0");
        // So the first success after closing does not trip it (1 of 1 failed).
        b.acquire(|| T0).unwrap().record(Outcome::Success, || T0);
        assert_eq!(b.state(), State::Closed);
    });
}

#[test]
fn a_failure_racing_a_reset_is_not_counted_after_it() {
    loom::model(|| {
        // The failure alone does not trip (minimum 2 calls), the reset starts a new
        // closed generation: the failure is counted before it or not at all.
        let b = count_breaker(2, 2, Duration::ZERO);
        let p = b.acquire(|| T0).unwrap();
        let b2 = b.clone();
        let w = thread::spawn(move || p.record(Outcome::Failure, || T0));
        let r = thread::spawn(move || b2.reset(T0));
        w.join().unwrap();
        r.join().unwrap();
        let m = b.metrics(T0);
        assert_eq!((m.state, m.generation), (State::Closed, 1));
        assert_eq!((m.calls, m.failures), (0, 0), "no outcome of generation 0");
    });
}

#[test]
fn a_time_window_failure_racing_a_reset_is_not_counted_after_it() {
    loom::model(|| {
        // 2 buckets of 10 ns; the failure alone does not trip (minimum 10 calls).
        let config = BreakerConfig::builder()
            .time_window(Duration::from_nanos(20), 2)
            .minimum_calls(10)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        let p = b.acquire(|| T0).unwrap();
        let b2 = b.clone();
        let w = thread::spawn(move || p.record(Outcome::Failure, || T0));
        let r = thread::spawn(move || b2.reset(T0));
        w.join().unwrap();
        r.join().unwrap();
        let m = b.metrics(T0);
        assert_eq!((m.state, m.generation), (State::Closed, 1));
        assert_eq!((m.calls, m.failures), (0, 0), "no outcome of generation 0");
    });
}

#[test]
fn a_late_open_deadline_does_not_hide_a_newer_one() {
    loom::model(|| {
        // One thread trips the breaker; another resets it and trips it again. Whatever
        // the order the two transitions publish their deadlines in, the open breaker
        // must know its own: it lets a probe through once its wait is over.
        let wait = Duration::from_secs(10);
        let b = count_breaker(1, 1, wait);
        let p = b.acquire(|| T0).unwrap();
        let b2 = b.clone();
        let a = thread::spawn(move || p.record(Outcome::Failure, || T0));
        let r = thread::spawn(move || {
            b2.reset(T0);
            // Only the other thread's permit (of generation 0) could move the breaker,
            // and it cannot any more: this one is closed.
            let q = b2.acquire(|| T0).expect("closed after the reset");
            q.record(Outcome::Failure, || T0);
        });
        a.join().unwrap();
        r.join().unwrap();
        if b.state() == State::Closed {
            // The second failure missed its trip: the reset took the first one out
            // of the ring before its thread added it to the failure total, and the
            // second read that total one step behind (see the `window` module). Then
            // there is no deadline to check.
            return;
        }
        assert_eq!(b.state(), State::Open);
        let rejected = b.acquire(|| T0).unwrap_err();
        assert_eq!(
            rejected.retry_after(),
            Some(wait),
            "the deadline is published"
        );
        let probe = b
            .acquire(|| Nanos::from_secs(10))
            .expect("half-open after the wait");
        assert!(probe.is_probe());
    });
}

#[test]
fn an_outcome_racing_a_reset_is_counted_whole_or_not_at_all() {
    for time in [false, true] {
        loom::model(move || {
            // A failure of either generation, racing the re-stamp of the window by a
            // reset: if its call is counted, so is its failure. No trip: minimum 2.
            let config = BreakerConfig::builder().minimum_calls(2);
            let config = if time {
                config.time_window(Duration::from_nanos(20), 2)
            } else {
                config.count_window(2)
            };
            let b = Arc::new(Breaker::new(config.build().unwrap()));
            let b2 = b.clone();
            let r = thread::spawn(move || b2.reset(T0));
            let p = b.acquire(|| T0).expect("closed");
            let generation = p.generation();
            p.record(Outcome::Failure, || T0);
            r.join().unwrap();
            let m = b.metrics(T0);
            assert_eq!((m.state, m.generation), (State::Closed, 1));
            assert_eq!(m.calls, m.failures, "time window: {time}");
            if generation == 0 {
                assert_eq!(m.calls, 0, "generation 0 is over");
            }
        });
    }
}

#[test]
fn the_last_half_open_slot_goes_to_one_of_two_callers() {
    loom::model(|| {
        // Two probe slots; the first is taken on entering half-open, and two callers
        // race for the second: the half-open admission's compare-and-swap.
        let (b, transitions) = breaker(1, 1, 2);
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        let first = b.acquire(|| T0).expect("the first probe");
        assert!(first.is_probe());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.acquire(|| T0).map(std::mem::forget).is_ok())
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(admitted, 1, "one slot left, one probe more");
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(transitions.load(Ordering::SeqCst), 2);
        drop(first);
    });
}

#[test]
fn an_overdue_half_open_test_reopens_once() {
    loom::model(|| {
        // One probe, hung (never reports); half-open for at most 1 ms; two callers
        // after that race to re-open: exactly one transition, both refused.
        let transitions = Arc::new(AtomicUsize::new(0));
        let seen = transitions.clone();
        let config = BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .wait_in_open(Duration::from_secs(10))
            .permitted_calls_in_half_open(1)
            .max_wait_in_half_open(Some(Duration::from_millis(1)))
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config).with_listener(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })));
        b.acquire(|| T0).unwrap().record(Outcome::Failure, || T0);
        let at = Nanos::from_secs(10);
        let hung = b.acquire(|| at).expect("the probe");
        let late = at + Nanos::from_millis(2);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.acquire(|| late).map(std::mem::forget).is_ok())
            })
            .collect();
        for h in handles {
            assert!(!h.join().unwrap(), "refused: re-opened, or re-opening");
        }
        assert_eq!(b.state(), State::Open);
        // Closed -> Open, Open -> HalfOpen, HalfOpen -> Open.
        assert_eq!(transitions.load(Ordering::SeqCst), 3);
        drop(hung);
    });
}

#[test]
fn time_window_counts_both_of_two_outcomes_in_one_bucket() {
    loom::model(|| {
        // Two outcomes recorded at once into the same bucket: its counters'
        // compare-and-swap increments race; both count.
        let config = BreakerConfig::builder()
            .time_window(Duration::from_secs(1), 2)
            .minimum_calls(10)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        let p1 = b.acquire(|| T0).unwrap();
        let p2 = b.acquire(|| T0).unwrap();
        let t1 = thread::spawn(move || p1.record(Outcome::Failure, || T0));
        let t2 = thread::spawn(move || p2.record(Outcome::Failure, || T0));
        t1.join().unwrap();
        t2.join().unwrap();
        let m = b.metrics(T0);
        assert_eq!((m.calls, m.failures, m.state), (2, 2, State::Closed));
    });
}
