//! Property tests: every jitter kind stays in its documented range, under the cap.

use buttress_core::Nanos;
use buttress_core::backoff::{Backoff, Jitter};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::time::Duration;

fn durations() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_nanos),
    ]
}

fn growths() -> impl Strategy<Value = (u8, f64)> {
    (
        0u8..3,
        prop_oneof![
            Just(0.0),
            Just(1.0),
            Just(2.0),
            0.0f64..1.0,
            1.0f64..10.0,
            Just(1e300)
        ],
    )
}

fn attempts() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..70, Just(u32::MAX), any::<u32>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_jitter_stays_in_range(
        (kind, multiplier) in growths(),
        base in durations(),
        cap in durations(),
        n in attempts(),
        prev in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let b = match kind {
            0 => Backoff::constant(base),
            1 => Backoff::linear(base),
            _ => Backoff::exponential(base, multiplier).unwrap(),
        }
        .with_cap(cap);
        let cap = Nanos::from_duration(cap);
        let base = Nanos::from_duration(base);
        let prev = Nanos::new(prev);
        let d = b.capped(n);
        prop_assert!(d <= cap);
        let mut rng = SmallRng::seed_from_u64(seed);

        prop_assert_eq!(b.with_jitter(Jitter::None).delay(n, prev, &mut rng), d);
        let full = b.with_jitter(Jitter::Full).delay(n, prev, &mut rng);
        prop_assert!(full <= d);
        let equal = b.with_jitter(Jitter::Equal).delay(n, prev, &mut rng);
        prop_assert!(equal >= Nanos::new(d.as_u64() / 2) && equal <= d);
        let dec = b.with_jitter(Jitter::Decorrelated).delay(n, prev, &mut rng);
        // `prev` below `base` (zero for a first retry) is read as `base`.
        let hi = prev.max_of(base).saturating_mul(3).min_of(cap);
        prop_assert!(dec >= base.min_of(cap) && dec <= hi, "dec {:?} hi {:?}", dec, hi);
    }

    #[test]
    fn exponential_matches_a_reference(
        base in 0u64..1_000_000_000,
        cap in any::<u64>(),
        multiplier in 1u64..5,
        n in 1u32..80,
    ) {
        let b = Backoff::exponential(Duration::from_nanos(base), multiplier as f64)
            .unwrap()
            .with_cap(Duration::from_nanos(cap));
        // Reference: exact u128 arithmetic, then the cap.
        let mut raw: u128 = base as u128;
        for _ in 1..n {
            raw = (raw * multiplier as u128).min(u64::MAX as u128 + 1);
        }
        let expected = raw.min(cap as u128) as u64;
        prop_assert_eq!(b.capped(n).as_u64(), expected);
        // And it never shrinks with the retry number.
        prop_assert!(b.capped(n + 1) >= b.capped(n));
    }

    #[test]
    fn bad_multipliers_are_refused(m in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), -1e300f64..-1e-300]) {
        prop_assert!(Backoff::exponential(Duration::from_millis(1), m).is_err());
    }
}
