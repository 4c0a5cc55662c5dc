//! The bulkhead's in-flight counter and its guard.
//!
//! [`Permits`] counts calls in flight against a fixed maximum, in one atomic word of
//! its own, and each [`PermitGuard`] it gives out holds a plain `&'static` reference to
//! that word:
//!
//! - acquiring is a compare-and-swap loop from a load: a slot is taken only by
//!   moving the count from a value below the maximum to that value plus one, so
//!   admission is **exact**: a caller is refused only when the count it last saw was
//!   the maximum, i.e. when every slot really was held at that instant (never because
//!   of another caller's tentative attempt), and the count never exceeds the maximum;
//! - releasing is one `fetch_sub` on the same word, whatever ends the call:
//!   completion, error, cancellation, or a panic unwinding through the guard.
//!
//! That is the whole cost: one atomic read-modify-write each way, and no reference
//! count. A guard must be able to outlive its counter (it lives in a `'static`
//! response future), and the usual way to keep shared memory alive for it, an `Arc`
//! clone per permit, would cost a second read-modify-write on each side, the dearest
//! part of the whole path (and, between threads, a second contended write to the same
//! line). So the word is itself the reference count of its storage: one bit says the
//! counter still exists, the rest count the permits out. Its storage is a **cell of a
//! process-wide pool**: a 128-byte cell (its own pair of cache lines, so that threads
//! bumping it share that line with nothing else) taken when a counter is made and put
//! back, for the next counter, by whichever of the counter and its last permit goes
//! last, the way an `Arc` frees its memory. Cells are never handed back to the
//! allocator, so the pool holds as many as there were counters alive at once (plus
//! counters dropped while calls were still in flight): a few hundred bytes for a
//! program's handful of bulkheads, however many it makes and drops over time. The pool
//! is a mutex-guarded list touched only when a counter is made or freed, never on a
//! call.
//!
//! An earlier design made an `Arc`'s strong count itself the counter (one `fetch_add`
//! to acquire, checked afterwards): two callers racing for the last slot could both see
//! the other's tentative increment and both be refused while the slot was free. The
//! one after that kept the count beside the `Arc` and cloned the `Arc` for each permit:
//! exact, but four read-modify-writes per call instead of two.
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
use crate::sync::{AtomicUsize, Ordering, Padded};
#[cfg(loom)]
use loom::sync::atomic::fence;
use std::fmt;
#[cfg(not(loom))]
use std::sync::atomic::fence;

/// The bit of a cell's word that says its counter still exists; the bits below it
/// count the permits out.
const COUNTER: usize = 1 << (usize::BITS - 1);

/// One counter's word, on cache lines of its own.
struct Cell {
    /// `COUNTER` while the counter exists, plus the permits held right now (never above
    /// the counter's `max`). Zero: free, in the pool.
    word: Padded<AtomicUsize>,
}

impl Cell {
    fn new() -> Self {
        Cell {
            word: Padded(AtomicUsize::new(0)),
        }
    }
}

/// A counter of calls in flight, bounded by a maximum.
///
/// Not `Clone` on purpose: share it behind an `Arc`.
///
/// `X` is an extension the counter carries for its user without reading it (the
/// bulkhead keeps its metric handles there).
pub struct Permits<X = ()> {
    max: usize,
    cell: &'static Cell,
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
    /// [`extension`](Self::extension)).
    pub fn with_extension(max: usize, ext: X) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        // The count must stay clear of the `COUNTER` bit; this keeps it far from it.
        if max > isize::MAX as usize / 2 {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", isize::MAX as usize / 2),
            ));
        }
        let cell = pool::take();
        // Relaxed: a cell comes out of the pool zero, and nothing else can reach it
        // until this counter hands out permits (the pool's lock ordered its last use
        // before this store).
        cell.word.store(COUNTER, Ordering::Relaxed);
        Ok(Permits { max, cell, ext })
    }

    /// The extension given with [`with_extension`](Self::with_extension).
    #[inline]
    pub fn extension(&self) -> &X {
        &self.ext
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
        self.cell.word.load(Ordering::Relaxed) & !COUNTER
    }

    /// Permits free right now.
    #[inline]
    pub fn available(&self) -> usize {
        self.max - self.in_flight().min(self.max)
    }

    /// Takes one permit if one is free: a load and one compare-and-swap (retried only
    /// if another caller changed the count in between).
    #[inline]
    pub fn try_acquire(&self) -> Option<PermitGuard> {
        // Relaxed load and CAS: the count is the only state and a permit publishes no
        // other memory, so all the bound needs is this word's single modification
        // order. Each successful CAS moves the count from `cur < max` to `cur + 1`,
        // so the count never exceeds `max`; a refusal happens only on a value read
        // from that order equal to `max`, when `max` permits really were held. (The
        // `COUNTER` bit is set throughout: `self` is that counter.)
        let word = &self.cell.word;
        let limit = COUNTER | self.max;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            if cur >= limit {
                return None;
            }
            match word.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(PermitGuard { cell: self.cell }),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl<X> Drop for Permits<X> {
    fn drop(&mut self) {
        // Release, and Acquire when this frees the cell: as an `Arc` frees its memory,
        // whoever puts the cell back must come after every other use of it, here the
        // permits' last decrements.
        if self.cell.word.fetch_sub(COUNTER, Ordering::Release) == COUNTER {
            give_back(self.cell);
        }
    }
}

/// One permit of a [`Permits`] counter, given back on drop (also during a panic).
pub struct PermitGuard {
    cell: &'static Cell,
}

impl Drop for PermitGuard {
    #[inline]
    fn drop(&mut self) {
        // Release: see `Permits::drop`. The decrement is this permit's only effect on
        // the count (the bound needs nothing more, see `try_acquire`); the cell goes
        // back to the pool only when its counter is gone and this was the last permit.
        if self.cell.word.fetch_sub(1, Ordering::Release) == 1 {
            give_back(self.cell);
        }
    }
}

impl fmt::Debug for PermitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PermitGuard")
    }
}

/// Puts a cell whose counter and permits are all gone back into the pool. Out of line:
/// a call's release reaches it only when the bulkhead was dropped while it ran.
#[cold]
#[inline(never)]
fn give_back(cell: &'static Cell) {
    fence(Ordering::Acquire);
    pool::put(cell);
}

/// The process-wide pool of free cells.
#[cfg(not(loom))]
mod pool {
    use super::Cell;
    use std::sync::{Mutex, PoisonError};

    /// Locked only when a counter is made or its cell comes back (a bulkhead built or
    /// dropped), never when a permit is taken or released.
    pub(super) static FREE: Mutex<Vec<&'static Cell>> = Mutex::new(Vec::new());

    /// A free cell (its word zero), from the pool or newly allocated.
    pub(super) fn take() -> &'static Cell {
        let reused = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        // A cell is leaked on purpose: it outlives its counter for as long as permits
        // hold it, and then serves the next counter (see the module docs).
        reused.unwrap_or_else(|| Box::leak(Box::new(Cell::new())))
    }

    /// Returns a cell whose word is zero.
    pub(super) fn put(cell: &'static Cell) {
        FREE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(cell);
    }
}

/// Under loom every model execution has its own atomics, so cells are not pooled
/// across executions: each counter gets a new cell, and the cells given back are
/// counted (per OS thread, that is per test) for the models to check.
#[cfg(loom)]
mod pool {
    use super::Cell;

    std::thread_local! {
        static GIVEN_BACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    pub(super) fn take() -> &'static Cell {
        Box::leak(Box::new(Cell::new()))
    }

    pub(super) fn put(_: &'static Cell) {
        GIVEN_BACK.with(|n| n.set(n.get() + 1));
    }

    pub(super) fn given_back() -> usize {
        GIVEN_BACK.with(|n| n.get())
    }
}

/// How many cells this thread has given back to the pool: for the loom models, which
/// check that a counter's cell goes back exactly once, whoever drops last.
#[cfg(loom)]
#[doc(hidden)]
pub fn cells_given_back() -> usize {
    pool::given_back()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// The pool is process-wide: the tests here take turns, so that one can watch a
    /// cell go back and come out again.
    fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn zero_is_a_config_error() {
        let _serial = serial();
        assert_eq!(Permits::new(0).unwrap_err().field(), "max_concurrent");
        assert_eq!(
            Permits::new(usize::MAX).unwrap_err().field(),
            "max_concurrent"
        );
    }

    #[test]
    fn never_more_than_max() {
        let _serial = serial();
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
        let _serial = serial();
        let p = Permits::new(1).unwrap();
        let r = std::panic::catch_unwind(|| {
            let _g = p.try_acquire().unwrap();
            panic!("boom");
        });
        assert!(r.is_err());
        assert_eq!(p.available(), 1);
    }

    fn pooled(cell: &'static Cell) -> bool {
        pool::FREE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|c| std::ptr::eq(*c, cell))
    }

    #[test]
    fn the_cell_goes_back_with_the_counter_when_no_permit_is_out() {
        let _serial = serial();
        let p = Permits::new(2).unwrap();
        let cell = p.cell;
        drop(p.try_acquire());
        assert!(!pooled(cell));
        drop(p);
        assert_eq!(cell.word.load(Ordering::Relaxed), 0);
        assert!(pooled(cell), "back in the pool");
        // And the next counter takes it, fresh.
        let q = Permits::new(1).unwrap();
        assert!(std::ptr::eq(q.cell, cell));
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.available(), 1);
    }

    #[test]
    fn a_permit_can_outlive_its_counter_and_gives_the_cell_back() {
        let _serial = serial();
        let p = Permits::new(2).unwrap();
        let cell = p.cell;
        let a = p.try_acquire().unwrap();
        let b = p.try_acquire().unwrap();
        drop(p);
        assert_eq!(
            cell.word.load(Ordering::Relaxed),
            2,
            "no counter, two permits"
        );
        assert!(!pooled(cell));
        drop(a);
        assert!(!pooled(cell), "a permit still holds it");
        drop(b);
        assert_eq!(cell.word.load(Ordering::Relaxed), 0);
        assert!(pooled(cell), "the last permit gave it back");
    }
}
