//! The bulkhead's in-flight counter and its guard.
//!
//! [`Permits`] counts calls in flight against a fixed maximum, in one `AtomicUsize`
//! shared (behind an `Arc`) by the counter and every permit it has given out:
//!
//! - acquiring is a compare-and-swap loop from a load: a slot is taken only by
//!   moving the count from a value below the maximum to that value plus one, so
//!   admission is **exact**: a caller is refused only when the count it last saw was
//!   the maximum, i.e. when every slot really was held at that instant (never because
//!   of another caller's tentative attempt), and the count never exceeds the maximum;
//! - the permit then holds a clone of the `Arc` (one `fetch_add`), so that it can live
//!   in a `'static` response future;
//! - releasing is one `fetch_sub` on the count (plus the `Arc` clone's drop), whatever
//!   ends the call: completion, error, cancellation, or a panic unwinding through the
//!   guard.
//!
//! An earlier design made the `Arc`'s strong count itself the counter (one `fetch_add`
//! to acquire, checked afterwards): one atomic operation fewer on each side, but two
//! callers racing for the last slot could both see the other's tentative increment and
//! both be refused while the slot was free. Safe Rust has no conditional increment of
//! an `Arc`'s count, so exact admission costs the separate word.
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
use crate::sync::{Arc, AtomicUsize, Ordering};
use std::fmt;

/// A counter of calls in flight, bounded by a maximum.
///
/// Not `Clone` on purpose: share it behind an `Arc`.
///
/// `X` is an extension the counter carries for its user without reading it (the
/// bulkhead keeps its metric handles there): every [`PermitGuard`] reaches it through
/// the `Arc` it already holds, so a response future needs no second reference.
pub struct Permits<X = ()> {
    max: usize,
    /// The count, and the extension.
    slots: Arc<Slots<X>>,
}

struct Slots<X> {
    /// Permits held right now; never above `max`.
    count: AtomicUsize,
    ext: X,
}

impl<X> fmt::Debug for Permits<X> {
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
        Self::with_extension(max, ())
    }
}

impl<X> Permits<X> {
    /// As [`new`](Permits::new), carrying `ext` (read back with
    /// [`extension`](Self::extension) and [`PermitGuard::extension`]).
    pub fn with_extension(max: usize, ext: X) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        // Each permit also holds an `Arc` clone: stay far from `Arc`'s overflow abort.
        if max > isize::MAX as usize / 2 {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", isize::MAX as usize / 2),
            ));
        }
        Ok(Permits {
            max,
            slots: Arc::new(Slots {
                count: AtomicUsize::new(0),
                ext,
            }),
        })
    }

    /// The extension given with [`with_extension`](Self::with_extension).
    #[inline]
    pub fn extension(&self) -> &X {
        &self.slots.ext
    }

    /// The maximum number of permits.
    #[inline]
    pub fn max(&self) -> usize {
        self.max
    }

    /// Permits held right now (a snapshot).
    #[inline]
    pub fn in_flight(&self) -> usize {
        // Relaxed: a snapshot for reporting; it publishes nothing.
        self.slots.count.load(Ordering::Relaxed)
    }

    /// Permits free right now.
    #[inline]
    pub fn available(&self) -> usize {
        self.max - self.in_flight().min(self.max)
    }

    /// Takes one permit if one is free: a load and one compare-and-swap (retried only
    /// if another caller changed the count in between), then the `Arc` clone.
    #[inline]
    pub fn try_acquire(&self) -> Option<PermitGuard<X>> {
        // Relaxed load and CAS: the count is the only state and a permit publishes no
        // other memory, so all the bound needs is this word's single modification
        // order. Each successful CAS moves the count from `cur < max` to `cur + 1`,
        // so the count never exceeds `max`; a refusal happens only on a value read
        // from that order equal to `max`, when `max` permits really were held.
        let count = &self.slots.count;
        let mut cur = count.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return None;
            }
            match count.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        Some(PermitGuard {
            slots: Arc::clone(&self.slots),
        })
    }
}

/// One permit of a [`Permits`] counter, given back on drop (also during a panic).
pub struct PermitGuard<X = ()> {
    slots: Arc<Slots<X>>,
}

impl<X> PermitGuard<X> {
    /// The extension of the counter the permit was taken from.
    #[inline]
    pub fn extension(&self) -> &X {
        &self.slots.ext
    }
}

impl<X> Drop for PermitGuard<X> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: see `try_acquire`; the decrement is this permit's only effect.
        self.slots.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<X> fmt::Debug for PermitGuard<X> {
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
