//! loom model of the GCRA compare-and-swap loop: concurrent checks at the same instant
//! admit exactly `burst` calls and leave the TAT where a sequential run would.
#![cfg(loom)]

use buttress_core::Nanos;
use buttress_core::gcra::{Gcra, Quota};
use loom::sync::Arc;
use loom::thread;

#[test]
fn concurrent_checks_admit_exactly_burst() {
    loom::model(|| {
        let g = Arc::new(Gcra::new(Quota::per_second(10, 2).unwrap()));
        let now = Nanos::from_secs(1);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let g = Arc::clone(&g);
                thread::spawn(move || usize::from(g.check(now).is_ok()))
            })
            .collect();
        let main_ok = usize::from(g.check(now).is_ok());
        let admitted: usize = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
            + main_ok;
        assert_eq!(admitted, 2);
        assert_eq!(g.tat(), now + Nanos::from_millis(200));
    });
}

#[test]
fn reservations_and_checks_agree() {
    loom::model(|| {
        let g = Arc::new(Gcra::new(Quota::per_second(10, 1).unwrap()));
        let now = Nanos::from_secs(1);
        let g2 = Arc::clone(&g);
        let t = thread::spawn(move || g2.reserve(now, Nanos::from_secs(1)));
        let checked = g.check(now);
        let reserved = t.join().unwrap().expect("reservation within max_wait");
        // Whoever came second waits (reservation) or is refused (check).
        match checked {
            Ok(()) => {
                assert_eq!(reserved, Nanos::from_millis(100));
                assert_eq!(g.tat(), now + Nanos::from_millis(200));
            }
            Err(ra) => {
                assert_eq!(reserved, Nanos::ZERO);
                assert_eq!(ra, Nanos::from_millis(100));
                assert_eq!(g.tat(), now + Nanos::from_millis(100));
            }
        }
    });
}
