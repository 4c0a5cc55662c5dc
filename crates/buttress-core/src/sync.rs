//! The synchronisation primitives the core uses: std's, or loom's under `--cfg loom`.
//!
//! Every module of the core takes its atomics from here, never from `std` directly, so
//! that `RUSTFLAGS="--cfg loom"` swaps all of them at once and the loom models in
//! `tests/loom_*.rs` explore every interleaving of the real code.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};
