//! Retry delays: constant, linear or exponential, **capped before jitter**.
//!
//! A [`Backoff`] turns "this is retry number `n`" into how long to wait first. The
//! delay before retry `n` (the first retry is `n = 1`) is:
//!
//! | kind | delay `d` before jitter |
//! |---|---|
//! | [`constant`](Backoff::constant) | `base` |
//! | [`linear`](Backoff::linear) | `base * n` |
//! | [`exponential`](Backoff::exponential) | `base * multiplier^(n-1)` |
//!
//! and `d` is capped at `cap` **before** jitter is applied, so that clients that have
//! all reached the cap still spread out instead of retrying in lockstep:
//!
//! | jitter | delay |
//! |---|---|
//! | [`Jitter::None`] | `d` |
//! | [`Jitter::Full`] | `U(0, d)` |
//! | [`Jitter::Equal`] | `d/2 + U(0, d/2)` |
//! | [`Jitter::Decorrelated`] | `U(base, min(cap, 3 * prev))`, `prev` the previous delay, and `base` at first (or whenever it is below `base`) |
//!
//! (`U(a, b)` is uniform over `a..=b`.) Decorrelated jitter is the scheme of AWS's
//! "Exponential Backoff And Jitter", with the cap applied to the range before the draw
//! rather than to the draw (`min(cap, U(base, 3 * prev))`): capping the draw puts two
//! draws in three exactly on the cap once `prev` has reached it, and clients would
//! retry in step there. Every input is safe: retry `0` is treated as
//! retry `1`, retry `u32::MAX`, a `Duration::MAX` base or cap and a multiplier below one
//! all give a delay in `0..=cap` without overflow or panic. A NaN, infinite or negative
//! multiplier is refused when the backoff is built.
//!
//! The random source is an argument: the caller keeps a cheap generator (the retry layer
//! keeps a seeded `SmallRng` per call), and tests seed it.
//!
//! ```
//! use buttress_core::backoff::{Backoff, Jitter};
//! use buttress_core::Nanos;
//! use rand::SeedableRng;
//! use std::time::Duration;
//!
//! let backoff = Backoff::exponential(Duration::from_millis(100), 2.0)?
//!     .with_cap(Duration::from_secs(1))
//!     .with_jitter(Jitter::None);
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
//! let delays: Vec<_> = (1..=6)
//!     .map(|n| backoff.delay(n, Nanos::ZERO, &mut rng).as_duration().as_millis())
//!     .collect();
//! assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
//! # Ok::<(), buttress_core::ConfigError>(())
//! ```

use crate::clock::Nanos;
use crate::config::ConfigError;
use rand::{Rng, RngCore};
use std::time::Duration;

/// How the delay grows with the retry number, before the cap and jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    /// The same delay every time: `base`.
    Constant,
    /// `base * n` before retry `n`.
    Linear,
    /// `base * multiplier^(n-1)` before retry `n`.
    Exponential {
        /// The factor per retry: finite and not negative (checked at build).
        multiplier: f64,
    },
}

/// How a capped delay is randomised so that clients do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No randomness: the capped delay itself.
    None,
    /// `U(0, d)`: the widest spread (the default).
    #[default]
    Full,
    /// `d/2 + U(0, d/2)`: at least half the delay, spread over the other half.
    Equal,
    /// `min(cap, U(base, 3 * prev))` where `prev` is the previous delay: each delay
    /// depends on the last one rather than on the retry number.
    Decorrelated,
}

/// A retry delay schedule: growth from `base`, a `cap`, then jitter.
///
/// Plain data (`Copy`), cheap to keep by value in every response future.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    growth: Growth,
    base: Nanos,
    cap: Nanos,
    jitter: Jitter,
}

/// The cap a backoff has unless [`Backoff::with_cap`] sets another.
pub const DEFAULT_CAP: Duration = Duration::from_secs(10);

impl Backoff {
    /// The same delay `base` before every retry (capped at [`DEFAULT_CAP`]), full jitter.
    pub fn constant(base: Duration) -> Self {
        Backoff {
            growth: Growth::Constant,
            base: Nanos::from_duration(base),
            cap: Nanos::from_duration(DEFAULT_CAP),
            jitter: Jitter::Full,
        }
    }

    /// `base * n` before retry `n` (capped at [`DEFAULT_CAP`]), full jitter.
    pub fn linear(base: Duration) -> Self {
        Backoff {
            growth: Growth::Linear,
            ..Self::constant(base)
        }
    }

    /// `base * multiplier^(n-1)` before retry `n` (capped at [`DEFAULT_CAP`]), full
    /// jitter.
    ///
    /// Refuses a NaN, infinite or negative `multiplier`. A multiplier below one is
    /// allowed (the delays shrink towards zero).
    pub fn exponential(base: Duration, multiplier: f64) -> Result<Self, ConfigError> {
        if !multiplier.is_finite() || multiplier < 0.0 {
            return Err(ConfigError::new(
                "multiplier",
                format!("must be a finite number >= 0, got {multiplier}"),
            ));
        }
        Ok(Backoff {
            growth: Growth::Exponential { multiplier },
            ..Self::constant(base)
        })
    }

    /// The same schedule with no delay above `cap` (applied before jitter).
    pub fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = Nanos::from_duration(cap);
        self
    }

    /// The same schedule with another jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The growth of this schedule.
    pub fn growth(&self) -> Growth {
        self.growth
    }

    /// The delay of the first retry before the cap and jitter.
    pub fn base(&self) -> Nanos {
        self.base
    }

    /// The largest delay this schedule ever returns.
    pub fn cap(&self) -> Nanos {
        self.cap
    }

    /// The jitter of this schedule.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry `n` (the first retry is `n = 1`; `0` is read as `1`), capped,
    /// before jitter. Never above [`cap`](Self::cap).
    pub fn capped(&self, n: u32) -> Nanos {
        let n = n.max(1);
        let raw = match self.growth {
            Growth::Constant => self.base,
            Growth::Linear => self.base.saturating_mul(u64::from(n)),
            Growth::Exponential { multiplier } => exponential(self.base, multiplier, n - 1),
        };
        raw.min_of(self.cap)
    }

    /// The delay before retry `n`, jittered, drawing from `rng`.
    ///
    /// `prev` is the previous delay returned for this call ([`Nanos::ZERO`] for the first
    /// retry); only [`Jitter::Decorrelated`] reads it, and reads anything below `base`
    /// as `base`. The result is always in `0..=cap`.
    pub fn delay<R: RngCore + ?Sized>(&self, n: u32, prev: Nanos, rng: &mut R) -> Nanos {
        match self.jitter {
            Jitter::None => self.capped(n),
            Jitter::Full => {
                let d = self.capped(n).as_u64();
                Nanos::new(rng.random_range(0..=d))
            }
            Jitter::Equal => {
                let d = self.capped(n).as_u64();
                let half = d / 2;
                // `d - half` keeps an odd `d` reachable: the maximum is exactly `d`.
                Nanos::new(half + rng.random_range(0..=d - half))
            }
            Jitter::Decorrelated => {
                // A `prev` below `base` (zero for the first retry) is read as `base`, so
                // the first retry is already spread over `base..=3 * base`: taken as
                // zero it would give exactly `base`, and every client that failed
                // together would retry together.
                // The range is capped before the draw (see the module docs), so that
                // clients at the cap still spread out; a cap below `base` is the delay.
                let cap = self.cap.as_u64();
                let lo = self.base.as_u64().min(cap);
                let hi = prev
                    .as_u64()
                    .max(self.base.as_u64())
                    .saturating_mul(3)
                    .min(cap);
                Nanos::new(rng.random_range(lo..=hi))
            }
        }
    }
}

/// `base * multiplier^exp`, saturating at [`Nanos::MAX`]; exact for whole multipliers.
fn exponential(base: Nanos, multiplier: f64, exp: u32) -> Nanos {
    if multiplier.fract() == 0.0 && multiplier <= u32::MAX as f64 {
        // A whole multiplier (2, 3, ...): integer arithmetic, exact and saturating.
        let factor = (multiplier as u64).saturating_pow(exp);
        return base.saturating_mul(factor);
    }
    // `powi` takes an i32; any exponent above i32::MAX gives the same 0 or infinity.
    let exp = i32::try_from(exp).unwrap_or(i32::MAX);
    let d = base.as_u64() as f64 * multiplier.powi(exp);
    if d.is_nan() {
        // 0 * infinity: a zero base stays zero.
        Nanos::ZERO
    } else {
        // `as` saturates: infinity and anything above u64::MAX become u64::MAX.
        Nanos::new(d as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn growth_before_jitter() {
        let c = Backoff::constant(Duration::from_millis(50));
        let l = Backoff::linear(Duration::from_millis(50));
        let e = Backoff::exponential(Duration::from_millis(50), 3.0).unwrap();
        assert_eq!(c.capped(4), ms(50));
        assert_eq!(l.capped(4), ms(200));
        assert_eq!(e.capped(1), ms(50));
        assert_eq!(e.capped(3), ms(450));
        assert_eq!(e.capped(0), ms(50), "retry 0 is read as retry 1");
        let half = Backoff::exponential(Duration::from_millis(800), 0.5).unwrap();
        assert_eq!(half.capped(3), ms(200));
        let frac = Backoff::exponential(Duration::from_millis(100), 1.5).unwrap();
        assert_eq!(frac.capped(3), ms(225));
    }

    #[test]
    fn refuses_bad_multipliers() {
        for m in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5] {
            let err = Backoff::exponential(Duration::from_millis(1), m).unwrap_err();
            assert_eq!(err.field(), "multiplier");
        }
        assert!(Backoff::exponential(Duration::from_millis(1), 0.0).is_ok());
    }

    #[test]
    fn extreme_inputs_stay_under_the_cap() {
        let mut rng = SmallRng::seed_from_u64(1);
        for growth in [
            Backoff::constant(Duration::MAX),
            Backoff::linear(Duration::MAX),
            Backoff::exponential(Duration::MAX, 1e300).unwrap(),
            Backoff::exponential(Duration::ZERO, 1e300).unwrap(),
            Backoff::exponential(Duration::MAX, 0.0).unwrap(),
            Backoff::exponential(Duration::from_nanos(3), 7.0).unwrap(),
        ] {
            for cap in [Duration::ZERO, Duration::from_secs(1), Duration::MAX] {
                for jitter in [
                    Jitter::None,
                    Jitter::Full,
                    Jitter::Equal,
                    Jitter::Decorrelated,
                ] {
                    let b = growth.with_cap(cap).with_jitter(jitter);
                    for n in [0, 1, 2, 63, 64, 1_000, u32::MAX] {
                        for prev in [Nanos::ZERO, Nanos::MAX] {
                            let d = b.delay(n, prev, &mut rng);
                            assert!(d <= Nanos::from_duration(cap), "{b:?} n={n} d={d:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let b = Backoff::constant(Duration::from_nanos(101)).with_jitter(Jitter::Equal);
        let mut rng = SmallRng::seed_from_u64(9);
        let mut seen_max = false;
        for _ in 0..10_000 {
            let d = b.delay(1, Nanos::ZERO, &mut rng).as_u64();
            assert!((50..=101).contains(&d));
            seen_max |= d == 101;
        }
        assert!(seen_max, "the top of the range is reachable");
    }

    #[test]
    fn decorrelated_spreads_the_first_retry() {
        // Clients that failed together must not retry together: the first delay is
        // drawn from `base..=3 * base`, not pinned to `base`.
        let b = Backoff::constant(Duration::from_millis(100))
            .with_cap(Duration::from_secs(10))
            .with_jitter(Jitter::Decorrelated);
        let mut rng = SmallRng::seed_from_u64(11);
        let firsts: Vec<Nanos> = (0..1_000)
            .map(|_| b.delay(1, Nanos::ZERO, &mut rng))
            .collect();
        assert!(firsts.iter().all(|d| *d >= ms(100) && *d <= ms(300)));
        let distinct: std::collections::HashSet<_> = firsts.iter().collect();
        assert!(
            distinct.len() > 900,
            "{} distinct first delays",
            distinct.len()
        );
        assert!(
            firsts.iter().any(|d| *d > ms(250)),
            "the top of the range is reached"
        );
    }

    #[test]
    fn decorrelated_does_not_bunch_at_the_cap() {
        let b = Backoff::constant(Duration::from_millis(10))
            .with_cap(Duration::from_secs(1))
            .with_jitter(Jitter::Decorrelated);
        let mut rng = SmallRng::seed_from_u64(5);
        let at_cap = (0..10_000)
            .filter(|_| b.delay(9, ms(1000), &mut rng) == ms(1000))
            .count();
        // Uniform over 10 ms..=1 s in whole nanoseconds: the cap itself is one value
        // of about 10^9 (capping the draw instead would put two in three there).
        assert!(at_cap < 10, "{at_cap} of 10000 draws on the cap");
    }

    #[test]
    fn decorrelated_grows_from_prev() {
        let b = Backoff::constant(Duration::from_millis(10))
            .with_cap(Duration::from_secs(1))
            .with_jitter(Jitter::Decorrelated);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut prev = Nanos::ZERO;
        for n in 1..50 {
            let d = b.delay(n, prev, &mut rng);
            let hi = prev.max_of(ms(10)).saturating_mul(3).min_of(ms(1000));
            assert!(d >= ms(10) && d <= hi, "n={n} prev={prev:?} d={d:?}");
            prev = d;
        }
    }
}
