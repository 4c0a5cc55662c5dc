//! A value whose drop runs out of line.
//!
//! A response future's drop is compiled into whatever drops it, and the compiler only
//! inlines it while it is small. A variant that holds a timer, a service or a boxed
//! retry state carries their drops too, and on the admit path, where that variant
//! never exists, its drop code still makes every future's drop a call. In a
//! [`ColdDrop`] it is one inlined check and, when there is something to drop, a call
//! to a cold function.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// An `Option<T>` whose `T` is dropped out of line.
pub(crate) struct ColdDrop<T>(ManuallyDrop<Option<T>>);

impl<T> ColdDrop<T> {
    /// Holding `value`.
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        ColdDrop(ManuallyDrop::new(Some(value)))
    }

    /// Holding nothing.
    #[inline]
    pub(crate) const fn none() -> Self {
        ColdDrop(ManuallyDrop::new(None))
    }
}

impl<T> Drop for ColdDrop<T> {
    #[inline]
    fn drop(&mut self) {
        // The `ManuallyDrop` leaves nothing else to drop: the value is taken out here,
        // or there is none.
        if self.0.is_some() {
            drop_cold(&mut self.0);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_cold<T>(value: &mut Option<T>) {
    drop(value.take());
}

impl<T> Deref for ColdDrop<T> {
    type Target = Option<T>;

    #[inline]
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T> DerefMut for ColdDrop<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Option<T> {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for ColdDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drops_what_it_holds_exactly_once() {
        let value = Arc::new(());
        let held = ColdDrop::new(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 2);
        drop(held);
        assert_eq!(Arc::strong_count(&value), 1);

        // Taken out, it is the taker's to drop; then nothing is left here.
        let mut held = ColdDrop::new(Arc::clone(&value));
        let taken = held.take();
        drop(held);
        assert_eq!(Arc::strong_count(&value), 2);
        drop(taken);
        assert_eq!(Arc::strong_count(&value), 1);

        // Replaced, the old value is dropped at once and the new one with the holder.
        let mut held = ColdDrop::<Arc<()>>::none();
        *held = Some(Arc::clone(&value));
        *held = Some(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 2);
        drop(held);
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
