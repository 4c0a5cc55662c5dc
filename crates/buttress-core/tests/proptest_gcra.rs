//! GCRA against a reference model: a token bucket in plain u128 arithmetic.
//!
//! A bucket of `burst * T` nanosecond-tokens, refilled one per nanosecond and starting
//! full, where a call of `n` cells costs `n * T`, admits exactly what GCRA admits; when
//! it refuses, the wait is the missing tokens. The two are written independently: the
//! model keeps a level and a timestamp, GCRA a single theoretical arrival time.
#![cfg(not(loom))]

use buttress_core::Nanos;
use buttress_core::gcra::{Gcra, Quota, Refusal};
use buttress_core::keyed::KeyedGcra;
use proptest::prelude::*;
use std::time::Duration;

struct Bucket {
    cap: u128,
    cost: u128,
    level: u128,
    at: u128,
}

impl Bucket {
    fn new(q: &Quota) -> Self {
        let cost = u128::from(q.interval().as_u64());
        let cap = cost * u128::from(q.burst());
        Bucket {
            cap,
            cost,
            level: cap,
            at: 0,
        }
    }

    /// Admit `n` cells at `now`, or the wait; a request over capacity is `None`.
    fn take(&mut self, now: u128, n: u32) -> Option<Result<(), u128>> {
        let need = self.cost * u128::from(n);
        if need > self.cap {
            return None;
        }
        if now > self.at {
            self.level = (self.level + (now - self.at)).min(self.cap);
            self.at = now;
        }
        // Time never runs backwards in these tests (the clock is monotonic).
        if self.level >= need {
            self.level -= need;
            Some(Ok(()))
        } else {
            Some(Err(need - self.level))
        }
    }
}

fn quota() -> impl Strategy<Value = Quota> {
    (
        1u64..=1_000,
        prop_oneof![Just(1u64), Just(60), Just(86_400)],
        1u32..=8,
    )
        .prop_map(|(rate, secs, burst)| Quota::new(rate, Duration::from_secs(secs), burst).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gcra_matches_token_bucket(
        q in quota(),
        steps in prop::collection::vec((0u64..3_000_000_000, 0u32..=10), 1..60),
    ) {
        let g = Gcra::new(q);
        let mut model = Bucket::new(&q);
        // Start at an arbitrary origin far enough from zero that the fresh state is full.
        let mut now = u64::from(q.burst()) * q.interval().as_u64();
        model.at = u128::from(now);
        for (dt, n) in steps {
            // A step of up to four intervals; every third one lands exactly on an
            // interval boundary.
            let t = q.interval().as_u64().max(1);
            now += if dt % 3 == 0 { (dt % 4) * t } else { dt % (4 * t) };
            let got = g.check_n(Nanos::new(now), n);
            match model.take(u128::from(now), n) {
                None => prop_assert_eq!(got, Err(Refusal::InsufficientCapacity { requested: n, burst: q.burst() })),
                Some(Ok(())) => prop_assert_eq!(got, Ok(())),
                Some(Err(wait)) => {
                    prop_assert_eq!(got, Err(Refusal::Wait { retry_after: Nanos::new(wait as u64) }));
                }
            }
        }
    }

    #[test]
    fn retry_after_is_exact(q in quota(), dt in 0u64..1_000_000_000) {
        let g = Gcra::new(q);
        let t0 = Nanos::new(u64::from(q.burst()) * q.interval().as_u64());
        // Use the whole burst, so that every call within the next interval is refused.
        let mut admitted = 0;
        while g.check(t0).is_ok() {
            admitted += 1;
        }
        prop_assert_eq!(admitted, q.burst());
        let now = t0 + Nanos::new(dt % q.interval().as_u64().max(1));
        let ra = g.check(now);
        prop_assert!(ra.is_err(), "the burst is used up: {:?}", ra);
        let ra = ra.unwrap_err();
        prop_assert!(!ra.is_zero());
        prop_assert_eq!(g.check(now + ra - Nanos::new(1)), Err(Nanos::new(1)));
        prop_assert!(g.check(now + ra).is_ok());
    }

    #[test]
    fn never_more_than_burst_plus_rate_times_elapsed(
        rate in 1u64..=1_000,
        burst in 1u32..=16,
        gaps in prop::collection::vec(0u64..50_000_000, 1..200),
    ) {
        // An uneven rate: the interval is rounded up, never down.
        let period = Duration::from_millis(1_000);
        let g = Gcra::new(Quota::new(rate, period, burst).unwrap());
        let start = 10_000_000_000u64;
        let mut now = start;
        let mut admitted = 0u128;
        for gap in gaps {
            now += gap;
            if g.check(Nanos::new(now)).is_ok() {
                admitted += 1;
            }
            let elapsed = u128::from(now - start);
            // admitted <= burst + rate * elapsed / period, in integers.
            prop_assert!(admitted * 1_000_000_000 <= u128::from(burst) * 1_000_000_000 + u128::from(rate) * elapsed);
        }
    }

    #[test]
    fn keyed_keys_are_independent_gcras(
        q in quota(),
        steps in prop::collection::vec((0u8..4, 0u64..2_000_000_000), 1..80),
    ) {
        let keyed = KeyedGcra::new(q, 64).unwrap();
        let singles: Vec<Gcra> = (0..4).map(|_| Gcra::new(q)).collect();
        let mut now = 0u64;
        for (k, dt) in steps {
            now += dt;
            let t = Nanos::new(now);
            // Evicting idle keys, as a full store does, changes no decision: an idle
            // key's limiter is back to a full burst, which is what a new entry starts at.
            keyed.evict_idle(t);
            prop_assert_eq!(keyed.check(k, t), singles[usize::from(k)].check(t));
        }
    }
}
