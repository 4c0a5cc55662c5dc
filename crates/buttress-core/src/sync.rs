//! The synchronisation primitives the core uses: std's, or loom's under `--cfg loom`.
//!
//! Every module of the core takes its atomics from here, never from `std` directly, so
//! that `RUSTFLAGS="--cfg loom"` swaps all of them at once and the loom models in
//! `tests/loom_*.rs` explore every interleaving of the real code.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

/// Keeps a value on cache lines of its own (128 bytes: two 64-byte lines, as adjacent
/// lines are prefetched together), so that counters written on every call do not
/// share a line with the read-mostly state word, and threads on other cores reading
/// one do not miss on writes to the other.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
