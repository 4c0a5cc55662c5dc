//! The clock every layer uses by default: tokio's.
//!
//! [`TokioClock`] reads [`tokio::time::Instant`], so `tokio::time::pause()` and
//! `tokio::time::advance()` drive every buttress layer deterministically in tests.
//! Layers read it only when their configuration needs time, and at most once per call.

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
        // `checked_add` guards against `Nanos::MAX`: "forever" becomes a far instant.
        self.origin
            .checked_add(at.as_duration())
            .unwrap_or_else(|| self.origin + std::time::Duration::from_secs(86_400 * 365 * 30))
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
