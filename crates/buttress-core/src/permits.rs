//! The bulkhead's in-flight counter and its guard.
//!
//! [`Permits`] counts calls in flight against a fixed maximum. Acquiring is one
//! compare-and-swap from a load on the fast path (the count never goes above the
//! maximum, not even for an instant, so a concurrent caller never sees a false "full");
//! releasing is one `fetch_sub`. A [`PermitGuard`] holds one permit and gives it back when
//! it is dropped, whether the call completed, failed, was cancelled or panicked.
//!
//! ```
//! use buttress_core::permits::Permits;
//! use std::sync::Arc;
//!
//! let permits = Arc::new(Permits::new(2).unwrap());
//! let a = Permits::try_acquire_arc(&permits).unwrap();
//! let b = permits.try_acquire().unwrap();
//! assert!(permits.try_acquire().is_none()); // full
//! assert_eq!(permits.in_flight(), 2);
//! drop(a);
//! drop(b);
//! assert_eq!(permits.available(), 2);
//! ```

use crate::config::ConfigError;
use crate::sync::{Arc, AtomicUsize, Ordering};
use std::fmt;
use std::ops::Deref;

/// A counter of calls in flight, bounded by a maximum.
pub struct Permits {
    max: usize,
    /// The number of permits held. Invariant: `0 <= in_flight <= max`.
    in_flight: AtomicUsize,
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
        Ok(Permits {
            max,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The maximum number of permits.
    #[inline]
    pub fn max(&self) -> usize {
        self.max
    }

    /// Permits held right now.
    #[inline]
    pub fn in_flight(&self) -> usize {
        // Relaxed: a snapshot for reporting; it synchronises nothing.
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Permits free right now.
    #[inline]
    pub fn available(&self) -> usize {
        self.max - self.in_flight().min(self.max)
    }

    /// Takes one permit if one is free, bound to this counter's lifetime.
    #[inline]
    pub fn try_acquire(&self) -> Option<PermitGuard<&Self>> {
        // `then`, not `then_some`: a guard built eagerly would release on a failed try.
        self.acquire_raw().then(|| PermitGuard { permits: self })
    }

    /// Takes one permit if one is free, holding a clone of the `Arc` so that the guard
    /// can live in a `'static` future.
    #[inline]
    pub fn try_acquire_arc(this: &Arc<Self>) -> Option<PermitGuard<Arc<Self>>> {
        this.acquire_raw().then(|| PermitGuard {
            permits: Arc::clone(this),
        })
    }

    /// One compare-and-swap from a load: take a permit unless all are held.
    #[inline]
    fn acquire_raw(&self) -> bool {
        // Relaxed everywhere: the counter is the only shared datum, and every update is
        // an atomic read-modify-write on it, so the single modification order of this
        // one word is all the invariant `in_flight <= max` needs. A permit guards no
        // other memory (the call's own data travels with its future).
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives one permit back: one `fetch_sub`.
    #[inline]
    fn release(&self) {
        // Relaxed: see `acquire_raw`. Only guards call this, once each, so the count
        // cannot underflow.
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One permit of a [`Permits`] counter, given back on drop (also during a panic).
///
/// `P` is how the guard reaches the counter: `&Permits` or `Arc<Permits>`.
pub struct PermitGuard<P: Deref<Target = Permits>> {
    permits: P,
}

impl<P: Deref<Target = Permits>> fmt::Debug for PermitGuard<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitGuard")
            .field("max", &self.permits.max)
            .finish()
    }
}

impl<P: Deref<Target = Permits>> Drop for PermitGuard<P> {
    #[inline]
    fn drop(&mut self) {
        self.permits.release();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_config_error() {
        assert_eq!(Permits::new(0).unwrap_err().field(), "max_concurrent");
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
        let p = Arc::new(Permits::new(1).unwrap());
        let p2 = Arc::clone(&p);
        let r = std::panic::catch_unwind(move || {
            let _g = Permits::try_acquire_arc(&p2).unwrap();
            panic!("boom");
        });
        assert!(r.is_err());
        assert_eq!(p.available(), 1);
    }
}
