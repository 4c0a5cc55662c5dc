//! The Generic Cell Rate Algorithm (GCRA): a rate limiter in one atomic word.
//!
//! A [`Quota`] allows `rate` calls per `period` with bursts of up to `burst` calls. GCRA
//! keeps a single number per limiter, the *theoretical arrival time* (TAT): the instant
//! at which the limiter would be back to empty if every admitted call had arrived exactly
//! on schedule. With the emission interval `T = period / rate` (rounded **up** to whole
//! nanoseconds, so an uneven rate never admits more than asked), a call of `n` cells at
//! `now` is admitted when
//!
//! ```text
//! max(tat, now) + n*T  <=  now + burst*T
//! ```
//!
//! and then the TAT becomes the left-hand side; otherwise it is refused, and
//! `retry_after` is the exact difference, so that checking again after exactly
//! `retry_after` passes and one nanosecond earlier does not. Over any interval of length
//! `e`, at most `burst + e/T <= burst + rate*e/period` calls are admitted.
//!
//! The whole state is one `AtomicU64` of [`Nanos`] (the TAT, in the caller's clock).
//! [`decide`] is the pure decision function and [`Gcra`] runs it in a compare-and-swap
//! loop. Nothing here reads a clock: `now` is always an argument.
//!
//! ```
//! use buttress_core::gcra::{Gcra, Quota};
//! use buttress_core::Nanos;
//! use std::time::Duration;
//!
//! // 10 per second, bursts of 3.
//! let limiter = Gcra::new(Quota::new(10, Duration::from_secs(1), 3).unwrap());
//! let now = Nanos::from_secs(5);
//! for _ in 0..3 {
//!     assert!(limiter.check(now).is_ok());
//! }
//! let retry_after = limiter.check(now).unwrap_err();
//! assert_eq!(retry_after, Nanos::from_millis(100));
//! assert!(limiter.check(now + retry_after - Nanos::new(1)).is_err());
//! assert!(limiter.check(now + retry_after).is_ok());
//! ```

use crate::clock::Nanos;
use crate::config::ConfigError;
use crate::sync::{AtomicU64, Ordering};
use std::fmt;
use std::time::Duration;

/// The largest TAT a live limiter stores; `u64::MAX` is reserved for a retired entry of
/// a keyed store (see [`crate::keyed`]).
pub(crate) const TAT_MAX: u64 = u64::MAX - 1;

/// A rate and a burst: `rate` calls per `period`, up to `burst` at once.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Emission interval `T`, in nanoseconds, at least 1.
    interval: u64,
    /// `burst * T`: how far ahead of `now` the TAT may run. Fits in a `u64` (checked).
    limit: u64,
    burst: u32,
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("interval", &Nanos::new(self.interval))
            .field("burst", &self.burst)
            .finish()
    }
}

impl Quota {
    /// `rate` calls per `period`, with bursts of up to `burst` calls.
    ///
    /// The emission interval `period / rate` is rounded up to a whole nanosecond, so a
    /// rate that does not divide the period evenly is rounded down, never up. Rates from
    /// one per day (or slower) to one per nanosecond are accepted.
    ///
    /// # Errors
    /// `rate` is zero or faster than one per nanosecond; `period` is zero; `burst` is
    /// zero, or so large that `burst` intervals exceed `u64::MAX` nanoseconds.
    pub fn new(rate: u64, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        if rate == 0 {
            return Err(ConfigError::new("rate", "must be at least 1"));
        }
        let period_ns = period.as_nanos();
        if period_ns == 0 {
            return Err(ConfigError::new("period", "must be longer than zero"));
        }
        if burst == 0 {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        // Ceiling division in u128: a period of up to u64::MAX seconds cannot overflow.
        let interval = period_ns.div_ceil(u128::from(rate));
        if period_ns < u128::from(rate) {
            return Err(ConfigError::new(
                "rate",
                format!("{rate} per {period:?} is faster than one per nanosecond"),
            ));
        }
        let interval = u64::try_from(interval).map_err(|_| {
            ConfigError::new(
                "period",
                "one interval must fit in u64 nanoseconds (584 years)",
            )
        })?;
        let limit = interval.checked_mul(u64::from(burst)).ok_or_else(|| {
            ConfigError::new(
                "burst",
                format!("{burst} intervals of {interval} ns exceed u64 nanoseconds (584 years)"),
            )
        })?;
        Ok(Quota {
            interval,
            limit,
            burst,
        })
    }

    /// `rate` calls per second, bursts of `burst`.
    pub fn per_second(rate: u64, burst: u32) -> Result<Self, ConfigError> {
        Quota::new(rate, Duration::from_secs(1), burst)
    }

    /// The emission interval `T`: the time one cell costs.
    #[inline]
    pub fn interval(&self) -> Nanos {
        Nanos::new(self.interval)
    }

    /// The largest number of calls admitted at once.
    #[inline]
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// Why [`Gcra::check_n`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the limit now: the same request passes after `retry_after`.
    Wait {
        /// Time until the request would be admitted.
        retry_after: Nanos,
    },
    /// The request asks for more cells than the burst: it can never pass, however long
    /// the caller waits.
    InsufficientCapacity {
        /// Cells asked for.
        requested: u32,
        /// The quota's burst.
        burst: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Wait { retry_after } => write!(f, "rate limited, retry after {retry_after}"),
            Refusal::InsufficientCapacity { requested, burst } => {
                write!(f, "{requested} cells can never pass a burst of {burst}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// How long until the request would pass: its wait, or [`Nanos::MAX`] ("never") for
    /// a request over the burst.
    #[inline]
    pub const fn retry_after(self) -> Nanos {
        match self {
            Refusal::Wait { retry_after } => retry_after,
            Refusal::InsufficientCapacity { .. } => Nanos::MAX,
        }
    }
}

/// The pure decision: given the stored `tat`, `now` and `n` cells, the new TAT, or why not.
///
/// `max_wait` turns a check into a reservation: the call is admitted (its cells
/// reserved by advancing the TAT) when it would have to wait at most `max_wait`; the
/// returned wait is how long. With `max_wait` zero this is a plain check whose wait is
/// always zero.
#[inline]
pub fn decide(
    quota: &Quota,
    tat: Nanos,
    now: Nanos,
    n: u32,
    max_wait: Nanos,
) -> Result<(Nanos, Nanos), Refusal> {
    if n > quota.burst {
        return Err(Refusal::InsufficientCapacity {
            requested: n,
            burst: quota.burst,
        });
    }
    let now = now.as_u64();
    // n <= burst, so n * T <= burst * T = limit fits.
    let cost = quota.interval * u64::from(n);
    let new_tat = tat.as_u64().max(now).saturating_add(cost).min(TAT_MAX);
    let allowed_at = new_tat.saturating_sub(quota.limit);
    let wait = allowed_at.saturating_sub(now);
    if wait > max_wait.as_u64() {
        return Err(Refusal::Wait {
            retry_after: Nanos::new(wait),
        });
    }
    Ok((Nanos::new(new_tat), Nanos::new(wait)))
}

/// A GCRA limiter: one [`Quota`] and one atomic TAT.
pub struct Gcra {
    quota: Quota,
    /// The theoretical arrival time, in nanoseconds of the caller's clock; starts at 0
    /// (a fresh limiter admits a full burst). Never above [`TAT_MAX`].
    tat: AtomicU64,
}

impl fmt::Debug for Gcra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcra")
            .field("quota", &self.quota)
            .field("tat", &self.tat())
            .finish()
    }
}

impl Gcra {
    /// A limiter with a full burst available.
    pub fn new(quota: Quota) -> Self {
        Gcra {
            quota,
            tat: AtomicU64::new(0),
        }
    }

    /// The quota.
    #[inline]
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The current theoretical arrival time (a snapshot).
    pub fn tat(&self) -> Nanos {
        // Relaxed: a snapshot; see `update` for why the word needs no ordering.
        Nanos::new(self.tat.load(Ordering::Relaxed))
    }

    /// Admits one call at `now`, or says how long until it would pass.
    #[inline]
    pub fn check(&self, now: Nanos) -> Result<(), Nanos> {
        self.reserve(now, Nanos::ZERO).map(drop)
    }

    /// Admits `n` cells at once at `now`, or refuses; `n` over the burst is refused with
    /// [`Refusal::InsufficientCapacity`] (never admitted, so never worth waiting for).
    /// `n == 0` always passes, and changes nothing (also when reservations have taken
    /// the TAT past the burst: asking for nothing never has to wait).
    #[inline]
    pub fn check_n(&self, now: Nanos, n: u32) -> Result<(), Refusal> {
        if n == 0 {
            return Ok(());
        }
        update(&self.tat, &self.quota, now, n, Nanos::ZERO).map(|_| ())
    }

    /// Reserves one slot for a caller that can wait up to `max_wait`: `Ok(wait)` means
    /// the slot is taken and the caller may go at `now + wait`; `Err(retry_after)` means
    /// it would have to wait longer than `max_wait`, and nothing was reserved.
    #[inline]
    pub fn reserve(&self, now: Nanos, max_wait: Nanos) -> Result<Nanos, Nanos> {
        update(&self.tat, &self.quota, now, 1, max_wait).map_err(Refusal::retry_after)
    }
}

/// The compare-and-swap loop around [`decide`] on one TAT word.
///
/// Returns the wait on success. The keyed store, whose entries can be retired by a
/// sweep, calls [`update_live`] instead.
#[inline]
pub(crate) fn update(
    tat: &AtomicU64,
    quota: &Quota,
    now: Nanos,
    n: u32,
    max_wait: Nanos,
) -> Result<Nanos, Refusal> {
    match update_live(tat, quota, now, n, max_wait) {
        Some(r) => r,
        // A plain limiter is never retired; treat the sentinel as the largest TAT.
        None => Err(Refusal::Wait {
            retry_after: Nanos::MAX,
        }),
    }
}

/// The CAS loop; `None` if the word holds the retired sentinel (`u64::MAX`).
#[inline]
pub(crate) fn update_live(
    tat: &AtomicU64,
    quota: &Quota,
    now: Nanos,
    n: u32,
    max_wait: Nanos,
) -> Option<Result<Nanos, Refusal>> {
    // Relaxed loads and CAS: the TAT is the limiter's only state and publishes no other
    // memory; the CAS makes each decision atomic against the value it was made on, and
    // the single modification order of this word is all the algorithm relies on.
    let mut cur = tat.load(Ordering::Relaxed);
    loop {
        if cur == u64::MAX {
            return None;
        }
        match decide(quota, Nanos::new(cur), now, n, max_wait) {
            Err(e) => return Some(Err(e)),
            Ok((new, wait)) => {
                if new.as_u64() == cur {
                    // n == 0 or nothing changes: no write needed.
                    return Some(Ok(wait));
                }
                match tat.compare_exchange_weak(
                    cur,
                    new.as_u64(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(Ok(wait)),
                    Err(actual) => cur = actual,
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        let s = Duration::from_secs(1);
        assert_eq!(Quota::new(0, s, 1).unwrap_err().field(), "rate");
        assert_eq!(
            Quota::new(1, Duration::ZERO, 1).unwrap_err().field(),
            "period"
        );
        assert_eq!(Quota::new(1, s, 0).unwrap_err().field(), "burst");
        assert_eq!(Quota::new(2_000_000_000, s, 1).unwrap_err().field(), "rate");
        let day = Duration::from_secs(86_400);
        assert_eq!(Quota::new(1, day, u32::MAX).unwrap_err().field(), "burst");
        assert!(Quota::new(1, day, 100_000).is_ok());
        assert_eq!(
            Quota::new(1_000_000_000, s, 1).unwrap().interval(),
            Nanos::new(1)
        );
    }

    #[test]
    fn uneven_rates_round_the_interval_up() {
        let q = Quota::new(3, Duration::from_secs(1), 1).unwrap();
        assert_eq!(q.interval(), Nanos::new(333_333_334));
    }

    #[test]
    fn burst_then_exact_retry_after() {
        let g = Gcra::new(Quota::per_second(4, 2).unwrap());
        let t = Nanos::from_secs(100);
        assert!(g.check(t).is_ok());
        assert!(g.check(t).is_ok());
        let ra = g.check(t).unwrap_err();
        assert_eq!(ra, Nanos::from_millis(250));
        assert_eq!(g.check(t + ra - Nanos::new(1)), Err(Nanos::new(1)));
        assert!(g.check(t + ra).is_ok());
    }

    #[test]
    fn check_n_over_burst_is_distinct() {
        let g = Gcra::new(Quota::per_second(10, 5).unwrap());
        assert_eq!(
            g.check_n(Nanos::ZERO, 6),
            Err(Refusal::InsufficientCapacity {
                requested: 6,
                burst: 5
            })
        );
        assert!(g.check_n(Nanos::ZERO, 5).is_ok());
        assert!(matches!(
            g.check_n(Nanos::ZERO, 1),
            Err(Refusal::Wait { .. })
        ));
        assert!(g.check_n(Nanos::ZERO, 0).is_ok());
    }

    #[test]
    fn reserve_returns_the_wait_and_respects_max_wait() {
        let g = Gcra::new(Quota::per_second(10, 1).unwrap());
        let t = Nanos::from_secs(1);
        assert_eq!(g.reserve(t, Nanos::ZERO), Ok(Nanos::ZERO));
        assert_eq!(
            g.reserve(t, Nanos::from_secs(1)),
            Ok(Nanos::from_millis(100))
        );
        assert_eq!(
            g.reserve(t, Nanos::from_secs(1)),
            Ok(Nanos::from_millis(200))
        );
        let before = g.tat();
        assert_eq!(
            g.reserve(t, Nanos::from_millis(250)),
            Err(Nanos::from_millis(300))
        );
        assert_eq!(g.tat(), before, "a refused reservation reserves nothing");
        // Reservations took the TAT past the burst; asking for nothing still passes.
        assert_eq!(g.check_n(t, 0), Ok(()));
        assert_eq!(g.tat(), before);
    }

    #[test]
    fn extreme_inputs_saturate() {
        let g = Gcra::new(Quota::new(1, Duration::from_secs(86_400), 1).unwrap());
        // At the end of time nothing panics or wraps (the TAT stays below the sentinel).
        assert!(g.check(Nanos::MAX).is_ok());
        let _ = g.check(Nanos::MAX);
        let _ = g.reserve(Nanos::MAX, Nanos::MAX);
        assert!(g.tat().as_u64() <= TAT_MAX);
        let fast = Gcra::new(Quota::new(1_000_000_000, Duration::from_secs(1), u32::MAX).unwrap());
        assert!(fast.check_n(Nanos::ZERO, u32::MAX).is_ok());
        assert!(fast.check(Nanos::ZERO).is_err());
    }
}
