//! The clock every layer uses by default: tokio's.
//!
//! [`TokioClock`] reads [`tokio::time::Instant`], so `tokio::time::pause()` and
//! `tokio::time::advance()` drive every buttress layer deterministically in tests.
//! Layers read it only when their configuration needs time: at most once per call,
//! except a breaker that tracks slow calls (at a call's start and at its end), a retry
//! about to send a retry with a deadline or a budget, and a call that has to wait.

pub use buttress_core::clock::{Clock, ManualClock, MonotonicClock, Nanos};

/// A [`Clock`] that follows [`tokio::time::Instant`], from the moment it was made.
///
/// Outside a tokio runtime it falls back to the system's monotonic clock, as tokio's
/// `Instant::now()` does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now (tokio's now: paused time if paused).
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant at which this clock reads `at`.
    pub fn instant_at(&self, at: Nanos) -> tokio::time::Instant {
        // `Nanos::MAX` ("forever") becomes a far instant.
        instant_after(self.origin, at.as_duration())
    }
}

/// `from + d`, saturating: a `d` too long to represent gives an instant about thirty
/// years after `from` ("never", for a timer) instead of a panic, as tokio's `sleep`
/// does.
pub(crate) fn instant_after(
    from: tokio::time::Instant,
    d: std::time::Duration,
) -> tokio::time::Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + std::time::Duration::from_secs(86_400 * 365 * 30))
}

/// A [`Clock`] read from the CPU's time-stamp counter through [`quanta`], from the
/// moment it was made (feature `quanta`).
///
/// Reading it costs under 10 nanoseconds where [`TokioClock`] (the system's monotonic
/// clock) costs about 20 to 25 on a typical virtual machine, and a rate limiter reads
/// its clock on every call: this is the clock to give a limiter on a hot path, as
/// governor does by default. It does **not** follow tokio's paused time, so tests that
/// drive a limiter with `tokio::time::pause()` keep the default clock. Where the
/// counter is not usable, quanta falls back to the system's monotonic clock.
///
/// ```
/// use buttress::clock::QuantaClock;
/// use buttress::rate_limit::RateLimitLayer;
///
/// let limiter = RateLimitLayer::builder()
///     .rate(1_000)
///     .burst(100)
///     .clock(QuantaClock::new())
///     .build()
///     .expect("a valid rate limiter");
/// # let _ = limiter;
/// ```
#[cfg(feature = "quanta")]
#[derive(Debug, Clone)]
pub struct QuantaClock {
    clock: quanta::Clock,
    origin: u64,
}

#[cfg(feature = "quanta")]
impl QuantaClock {
    /// A clock whose origin is now. The first one made calibrates the counter
    /// against the system clock (once per process).
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        QuantaClock { clock, origin }
    }
}

#[cfg(all(test, feature = "quanta"))]
impl QuantaClock {
    /// A clock on quanta's mock counter, which the returned handle moves.
    pub(crate) fn mocked() -> (Self, std::sync::Arc<quanta::Mock>) {
        let (clock, mock) = quanta::Clock::mock();
        let origin = clock.raw();
        (QuantaClock { clock, origin }, mock)
    }
}

#[cfg(feature = "quanta")]
impl Default for QuantaClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "quanta")]
impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> Nanos {
        // The raw counter, scaled: no conversion to an `Instant` and back.
        Nanos::new(self.clock.delta_as_nanos(self.origin, self.clock.raw()))
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos::from_duration(self.origin.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn instant_after_saturates_to_a_far_instant() {
        let now = tokio::time::Instant::now();
        assert_eq!(
            instant_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let far = instant_after(now, Duration::MAX);
        assert_eq!(far - now, Duration::from_secs(86_400 * 365 * 30));
    }

    #[cfg(feature = "quanta")]
    #[test]
    fn quanta_clock_starts_at_zero_and_counts_the_counters_nanoseconds() {
        let (clock, mock) = QuantaClock::mocked();
        assert_eq!(clock.now(), Nanos::ZERO);
        mock.increment(1u64);
        assert_eq!(clock.now(), Nanos::new(1));
        mock.increment(Duration::from_micros(1500));
        assert_eq!(clock.now(), Nanos::new(1_500_001));
        mock.increment(Duration::from_secs(3));
        assert_eq!(clock.now(), Nanos::new(3_001_500_001));
        // Clones read the same counter from the same origin.
        assert_eq!(clock.clone().now(), Nanos::new(3_001_500_001));

        // The origin is the counter's value when the clock is made, not the counter's
        // zero: made on a counter already 7 s on, it reads zero, then what follows.
        let (counter, mock) = quanta::Clock::mock();
        mock.increment(Duration::from_secs(7));
        let origin = counter.raw();
        let late = QuantaClock {
            clock: counter,
            origin,
        };
        assert_eq!(late.now(), Nanos::ZERO);
        mock.increment(250u64);
        assert_eq!(late.now(), Nanos::new(250));
        // A counter behind the origin (a TSC read on another core) reads zero, never
        // a wrapped-around far future.
        mock.decrement(Duration::from_secs(1));
        assert_eq!(late.now(), Nanos::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = TokioClock::new();
        assert_eq!(clock.now(), Nanos::ZERO);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Nanos::from_millis(1500));
        assert_eq!(
            clock.instant_at(Nanos::from_secs(2)) - tokio::time::Instant::now(),
            Duration::from_millis(500)
        );
        // Forever does not overflow.
        let _ = clock.instant_at(Nanos::MAX);
    }
}
