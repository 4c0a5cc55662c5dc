//! Time as the core sees it: [`Nanos`] since a clock's origin, and the [`Clock`] trait.
//!
//! The core never reads a clock on its own. Each decision function takes `now: Nanos`
//! as an argument, and the layer above decides where that comes from: a
//! [`MonotonicClock`] in plain programs, tokio's clock in the `buttress` layers (so that
//! `tokio::time::pause()` drives them), or a [`ManualClock`] in tests.
//!
//! All arithmetic on [`Nanos`] saturates: there is no overflow, no panic and no negative
//! duration, whatever the input. `u64` nanoseconds cover 584 years, so saturation only
//! ever happens on nonsense input (a `Duration::MAX` timeout, say), where "forever" is
//! the right answer.
//!
//! ```
//! use buttress_core::{Clock, ManualClock, Nanos};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let seen_by_a_layer = clock.clone();
//! clock.advance(Duration::from_millis(250));
//! assert_eq!(seen_by_a_layer.now(), Nanos::from_millis(250));
//! assert_eq!(Nanos::MAX + Nanos::from_secs(1), Nanos::MAX);
//! assert_eq!(Nanos::ZERO - Nanos::from_secs(1), Nanos::ZERO);
//! ```

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since a clock's origin, or a span of nanoseconds.
///
/// A `u64` newtype so that it fits in an atomic word. Every operator saturates.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(u64);

impl Nanos {
    /// No time at all: a clock's origin.
    pub const ZERO: Nanos = Nanos(0);
    /// The largest representable time, about 584 years; arithmetic saturates here.
    pub const MAX: Nanos = Nanos(u64::MAX);

    /// Nanos from a raw count of nanoseconds.
    #[inline]
    pub const fn new(nanos: u64) -> Self {
        Nanos(nanos)
    }

    /// Nanos from microseconds, saturating.
    #[inline]
    pub const fn from_micros(micros: u64) -> Self {
        Nanos(micros.saturating_mul(1_000))
    }

    /// Nanos from milliseconds, saturating.
    #[inline]
    pub const fn from_millis(millis: u64) -> Self {
        Nanos(millis.saturating_mul(1_000_000))
    }

    /// Nanos from seconds, saturating.
    #[inline]
    pub const fn from_secs(secs: u64) -> Self {
        Nanos(secs.saturating_mul(1_000_000_000))
    }

    /// Nanos from a [`Duration`], saturating at [`Nanos::MAX`].
    #[inline]
    pub const fn from_duration(d: Duration) -> Self {
        let n = d.as_nanos();
        if n > u64::MAX as u128 {
            Nanos::MAX
        } else {
            Nanos(n as u64)
        }
    }

    /// The raw count of nanoseconds.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// This span as a [`Duration`] (always exact: a `Duration` holds any `u64` of nanos).
    #[inline]
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + rhs`, saturating at [`Nanos::MAX`].
    #[inline]
    pub const fn saturating_add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at [`Nanos::ZERO`]: a span is never negative.
    #[inline]
    pub const fn saturating_sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(rhs.0))
    }

    /// `self * rhs`, saturating at [`Nanos::MAX`].
    #[inline]
    pub const fn saturating_mul(self, rhs: u64) -> Nanos {
        Nanos(self.0.saturating_mul(rhs))
    }

    /// `self / rhs`, or [`Nanos::MAX`] when `rhs` is zero (dividing a span into no
    /// parts leaves it unbounded rather than panicking).
    #[inline]
    pub const fn saturating_div(self, rhs: u64) -> Nanos {
        match self.0.checked_div(rhs) {
            Some(n) => Nanos(n),
            None => Nanos::MAX,
        }
    }

    /// The smaller of two times.
    #[inline]
    pub const fn min_of(self, other: Nanos) -> Nanos {
        if self.0 <= other.0 { self } else { other }
    }

    /// The larger of two times.
    #[inline]
    pub const fn max_of(self, other: Nanos) -> Nanos {
        if self.0 >= other.0 { self } else { other }
    }

    /// Whether this is [`Nanos::ZERO`].
    #[inline]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl From<Duration> for Nanos {
    #[inline]
    fn from(d: Duration) -> Self {
        Nanos::from_duration(d)
    }
}

impl From<Nanos> for Duration {
    #[inline]
    fn from(n: Nanos) -> Self {
        n.as_duration()
    }
}

impl From<u64> for Nanos {
    #[inline]
    fn from(n: u64) -> Self {
        Nanos(n)
    }
}

impl From<Nanos> for u64 {
    #[inline]
    fn from(n: Nanos) -> Self {
        n.0
    }
}

impl Add for Nanos {
    type Output = Nanos;
    #[inline]
    fn add(self, rhs: Nanos) -> Nanos {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Nanos {
    #[inline]
    fn add_assign(&mut self, rhs: Nanos) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for Nanos {
    type Output = Nanos;
    #[inline]
    fn sub(self, rhs: Nanos) -> Nanos {
        self.saturating_sub(rhs)
    }
}

impl SubAssign for Nanos {
    #[inline]
    fn sub_assign(&mut self, rhs: Nanos) {
        *self = self.saturating_sub(rhs);
    }
}

impl fmt::Debug for Nanos {
    /// Readable: `Nanos(1.5s)`, `Nanos(250ms)`, `Nanos(17ns)`, `Nanos(MAX)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            return f.write_str("Nanos(MAX)");
        }
        write!(f, "Nanos({:?})", self.as_duration())
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_duration(), f)
    }
}

/// A source of [`Nanos`]: monotonic, never going backwards, from a fixed origin.
///
/// Implementations must be cheap to call and to clone: a layer keeps one and reads it at
/// most once per call, and only when its configuration needs time.
pub trait Clock: Send + Sync + 'static {
    /// The time now, in nanoseconds since this clock's origin.
    fn now(&self) -> Nanos;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &'static C {
    #[inline]
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// The operating system's monotonic clock ([`std::time::Instant`]), from the moment the
/// clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos::from_duration(self.origin.elapsed())
    }
}

/// A clock that moves only when told to; its clones share one time.
///
/// For tests: hand a clone to the code under test and [`advance`](ManualClock::advance)
/// the original. It always uses std atomics (also under loom), since it is test
/// scaffolding rather than a part of any model.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at [`Nanos::ZERO`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A manual clock starting at `start`.
    pub fn starting_at(start: Nanos) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start.as_u64())),
        }
    }

    /// Moves time forward by `by` (saturating). Every clone sees the new time.
    pub fn advance(&self, by: impl Into<Nanos>) {
        let by = by.into().as_u64();
        // Relaxed: the clock is a single counter; tests order their own steps.
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the time. Setting it backwards is refused (a clock is monotonic): the time
    /// stays where it was and `false` is returned.
    pub fn set(&self, to: Nanos) -> bool {
        self.now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (to.as_u64() >= t).then_some(to.as_u64())
            })
            .is_ok()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos(self.now.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Nanos::MAX + Nanos::new(1), Nanos::MAX);
        assert_eq!(Nanos::new(1) - Nanos::new(2), Nanos::ZERO);
        assert_eq!(Nanos::MAX.saturating_mul(3), Nanos::MAX);
        assert_eq!(Nanos::new(10).saturating_div(0), Nanos::MAX);
        assert_eq!(Nanos::new(10).saturating_div(3), Nanos::new(3));
        assert_eq!(Nanos::from_duration(Duration::MAX), Nanos::MAX);
        assert_eq!(Nanos::from_secs(u64::MAX), Nanos::MAX);
    }

    #[test]
    fn conversions_round_trip() {
        let d = Duration::from_micros(1_234_567);
        assert_eq!(Nanos::from(d).as_duration(), d);
        assert_eq!(Nanos::from_millis(3), Nanos::new(3_000_000));
        assert_eq!(format!("{:?}", Nanos::from_millis(250)), "Nanos(250ms)");
        assert_eq!(format!("{:?}", Nanos::MAX), "Nanos(MAX)");
        assert_eq!(Nanos::from_millis(1500).to_string(), "1.5s");
    }

    #[test]
    fn manual_clock_is_shared_and_monotonic() {
        let c = ManualClock::new();
        let d = c.clone();
        c.advance(Duration::from_secs(2));
        assert_eq!(d.now(), Nanos::from_secs(2));
        assert!(!d.set(Nanos::from_secs(1)));
        assert_eq!(c.now(), Nanos::from_secs(2));
        assert!(d.set(Nanos::from_secs(5)));
        assert_eq!(c.now(), Nanos::from_secs(5));
        c.advance(Nanos::MAX);
        assert_eq!(c.now(), Nanos::MAX);
    }

    /// `now()` is the time since the clock was made, bracketed by the test's own reads
    /// of the system clock: `origin` falls between `t0` and `t1`, so a read made
    /// before `t2` is at most `t2 - t0`, and a read made after `t3` at least `t3 - t1`
    /// (no bound on how fast the machine is). A clock with another origin (the
    /// process's start, say) breaks the first bound, one that stands still or goes
    /// backwards the others.
    #[test]
    fn monotonic_clock_counts_from_its_making_and_never_goes_backwards() {
        let t0 = Instant::now();
        let c = MonotonicClock::new();
        let t1 = Instant::now();
        let first = c.now();
        let t2 = Instant::now();
        assert!(first <= Nanos::from_duration(t2 - t0), "{first:?}");
        let copy = c;
        let mut last = first;
        for _ in 0..1_000 {
            let now = copy.now();
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
        }
        // Make sure the system clock has moved past `t1`, then read after it.
        let mut t3 = Instant::now();
        while t3 <= t1 {
            std::hint::spin_loop();
            t3 = Instant::now();
        }
        let later = c.now();
        // Strictly positive: `t3 > t1`.
        assert!(later >= Nanos::from_duration(t3 - t1), "{later:?}");
        assert!(later >= last, "{later:?} after {last:?}");
    }
}
