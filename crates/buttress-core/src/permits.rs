//! The bulkhead's in-flight counter and its guard.
//!
//! [`Permits`] counts calls in flight against a fixed maximum. A permit is a clone of
//! one `Arc<()>` that the counter owns, so the `Arc`'s strong count *is* the in-flight
//! count (plus the counter's own reference):
//!
//! - acquiring is one `fetch_add` (the `Arc` clone) followed by a check of the count;
//!   over the maximum, the clone is dropped again and the call refused;
//! - releasing is one `fetch_sub` (the clone's drop), whatever ends the call:
//!   completion, error, cancellation, or a panic unwinding through the guard;
//! - the guard needs no other reference to the counter, so it lives in a `'static`
//!   response future without a second `Arc` clone per call.
//!
//! Admission can never exceed the maximum: a call is admitted only if the count it reads
//! after its own increment (which includes every admitted holder still holding) is
//! within the maximum. Two callers racing for the last slot may both see the other's
//! tentative increment and both be refused; that transient, conservative refusal is the
//! price of a single atomic operation on each side.
//!
//! ```
//! use buttress_core::permits::Permits;
//!
//! let permits = Permits::new(2).unwrap();
//! let a = permits.try_acquire().unwrap();
//! let b = permits.try_acquire().unwrap();
//! assert!(permits.try_acquire().is_none()); // full
//! assert_eq!(permits.in_flight(), 2);
//! drop(a);
//! drop(b);
//! assert_eq!(permits.available(), 2);
//! ```

use crate::config::ConfigError;
use crate::sync::Arc;
use std::fmt;

/// A counter of calls in flight, bounded by a maximum.
///
/// Not `Clone` on purpose: share it behind an `Arc`.
pub struct Permits {
    max: usize,
    /// Each permit holds a clone; the strong count is `1 + permits held` (plus, for an
    /// instant, refused tentative clones). `max < isize::MAX`, checked at build, so the
    /// count never reaches `Arc`'s overflow abort.
    token: Arc<()>,
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permits")
            .field("max", &self.max)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Permits {
    /// A counter admitting at most `max` holders at once (`max` at least 1).
    pub fn new(max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        if max > isize::MAX as usize / 2 {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", isize::MAX as usize / 2),
            ));
        }
        Ok(Permits {
            max,
            token: Arc::new(()),
        })
    }

    /// The maximum number of permits.
    #[inline]
    pub fn max(&self) -> usize {
        self.max
    }

    /// Permits held right now (a snapshot, which may for an instant include a refused
    /// caller's tentative permit).
    #[inline]
    pub fn in_flight(&self) -> usize {
        Arc::strong_count(&self.token) - 1
    }

    /// Permits free right now.
    #[inline]
    pub fn available(&self) -> usize {
        self.max - self.in_flight().min(self.max)
    }

    /// Takes one permit if one is free: one `fetch_add` and one load.
    #[inline]
    pub fn try_acquire(&self) -> Option<PermitGuard> {
        // The clone is a Relaxed `fetch_add` on the strong count. The load below is
        // sequenced after it on the same word, so by coherence it sees this increment or
        // a later value: every admitted holder still holding is counted in it (a release
        // only ever removes a holder that has left). So the admitted holders, this one
        // included, are at most `count - 1 <= max`. No other memory is published by a
        // permit, so no stronger ordering is needed.
        let permit = PermitGuard {
            _token: Arc::clone(&self.token),
        };
        if Arc::strong_count(&self.token) - 1 <= self.max {
            Some(permit)
        } else {
            // Over: the drop undoes the increment (one `fetch_sub`).
            None
        }
    }
}

/// One permit of a [`Permits`] counter, given back on drop (also during a panic).
pub struct PermitGuard {
    /// Dropping it is the release: one `fetch_sub` on the strong count.
    _token: Arc<()>,
}

impl fmt::Debug for PermitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PermitGuard")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_config_error() {
        assert_eq!(Permits::new(0).unwrap_err().field(), "max_concurrent");
        assert_eq!(
            Permits::new(usize::MAX).unwrap_err().field(),
            "max_concurrent"
        );
    }

    #[test]
    fn never_more_than_max() {
        let p = Permits::new(3).unwrap();
        let g: Vec<_> = (0..5).filter_map(|_| p.try_acquire()).collect();
        assert_eq!(g.len(), 3);
        assert_eq!(p.in_flight(), 3);
        assert_eq!(p.available(), 0);
        drop(g);
        assert_eq!(p.available(), 3);
    }

    #[test]
    fn panics_return_the_permit() {
        let p = Permits::new(1).unwrap();
        let r = std::panic::catch_unwind(|| {
            let _g = p.try_acquire().unwrap();
            panic!("boom");
        });
        assert!(r.is_err());
        assert_eq!(p.available(), 1);
    }
}
