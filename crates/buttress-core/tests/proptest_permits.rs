//! The permit counter against a reference model: a plain count and a set of holders.
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
