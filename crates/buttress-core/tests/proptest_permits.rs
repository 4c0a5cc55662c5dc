//! The permit counter against a reference model: a plain count and a set of holders;
//! and, on real threads, exact admission (every free slot taken, none beyond).
#![cfg(not(loom))]

use buttress_core::permits::Permits;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Drop the i-th held guard (modulo the number held).
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![Just(Op::Acquire), any::<usize>().prop_map(Op::Release)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn counter_matches_model(max in 1usize..8, ops in prop::collection::vec(op(), 0..100)) {
        let permits = Permits::new(max).unwrap();
        let mut held = Vec::new();
        let mut model_in_flight = 0usize;
        for op in ops {
            match op {
                Op::Acquire => {
                    let got = permits.try_acquire();
                    let model_ok = model_in_flight < max;
                    prop_assert_eq!(got.is_some(), model_ok);
                    if let Some(g) = got {
                        held.push(g);
                        model_in_flight += 1;
                    }
                }
                Op::Release(i) => {
                    if !held.is_empty() {
                        let i = i % held.len();
                        drop(held.swap_remove(i));
                        model_in_flight -= 1;
                    }
                }
            }
            prop_assert_eq!(permits.in_flight(), model_in_flight);
            prop_assert_eq!(permits.available(), max - model_in_flight);
        }
        drop(held);
        prop_assert_eq!(permits.available(), max);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Threads that each try once and hold what they get: exactly `min(threads, free)`
    /// are admitted, whatever the interleaving.
    #[test]
    fn racing_threads_take_exactly_the_free_slots(max in 1usize..6, pre in 0usize..6, threads in 1usize..8) {
        let permits = std::sync::Arc::new(Permits::new(max).unwrap());
        let pre: Vec<_> = (0..pre.min(max)).map(|_| permits.try_acquire().unwrap()).collect();
        let free = max - pre.len();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let p = std::sync::Arc::clone(&permits);
                let b = std::sync::Arc::clone(&barrier);
                std::thread::spawn(move || {
                    b.wait();
                    p.try_acquire()
                })
            })
            .collect();
        let got: Vec<_> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
        prop_assert_eq!(got.len(), threads.min(free));
        prop_assert_eq!(permits.in_flight(), pre.len() + got.len());
        drop(got);
        drop(pre);
        prop_assert_eq!(permits.available(), max);
    }
}
