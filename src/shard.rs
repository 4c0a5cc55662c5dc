//! Reference-counted handles to one shared state, spread over threads.
//!
//! A response future that must reach a layer's shared state when the call ends (a
//! breaker's permit, a retry's budget) holds a counted reference to it: one atomic
//! increment when the call starts, one decrement when it ends. If every future counted
//! on the state's own `Arc`, threads calling at once would pass that one cache line
//! back and forth twice per call; on two cores that more than doubled a closed
//! breaker's cost. So a future takes its reference through one of [`SHARDS`] handles
//! instead, each an `Arc` of its own on its own cache lines, chosen by thread: each
//! service keeps the handle of the thread that first calls it (services are mostly
//! called from one thread: a clone per connection or per request), so threads on
//! different handles share no written line. A service that moves to another thread
//! keeps its handle: still correct, only no longer alone on its line. A handle is made
//! the first time a thread asks for it (most states are reached from one or two
//! threads, and a retry layer makes a state per service it wraps); services and their
//! clones share them.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// How many handles one shared state's references are spread over.
pub(crate) const SHARDS: usize = 16;

/// A shared state and its handles.
pub(crate) struct Shards<T> {
    inner: Arc<T>,
    shards: [OnceLock<ShardRef<T>>; SHARDS],
}

/// One handle: the shared state, behind a reference count of its own.
pub(crate) struct ShardRef<T>(Arc<Shard<T>>);

/// Aligned to 128 bytes (two cache lines, the unit adjacent-line prefetchers pull),
/// so that each handle's reference count, at the start of its allocation, is on
/// lines of its own.
#[repr(align(128))]
struct Shard<T> {
    inner: Arc<T>,
    /// Which of the [`SHARDS`] handles this is: a lane of its own for other state that
    /// threads should not share (the retry budget's deposits).
    lane: u8,
}

impl<T> Shards<T> {
    pub(crate) fn new(inner: Arc<T>) -> Arc<Self> {
        Arc::new(Shards {
            inner,
            shards: std::array::from_fn(|_| OnceLock::new()),
        })
    }

    /// The shared state.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        &self.inner
    }

    /// The shared state's own `Arc` (for handles that outlive the services).
    pub(crate) fn arc(&self) -> &Arc<T> {
        &self.inner
    }

    /// The handle of the calling thread.
    fn this_threads(&self) -> &ShardRef<T> {
        let lane = thread_slot() % SHARDS;
        self.shards[lane].get_or_init(|| self.new_handle(lane))
    }

    #[cold]
    #[inline(never)]
    fn new_handle(&self, lane: usize) -> ShardRef<T> {
        ShardRef(Arc::new(Shard {
            inner: Arc::clone(&self.inner),
            lane: lane as u8,
        }))
    }
}

/// A service's own copy of the handle of the thread that first called it: none until
/// then, and none in a clone. Kept in the service, so that a call takes its reference
/// with one check and one increment, without looking the handle up.
pub(crate) struct Handle<T>(Option<ShardRef<T>>);

impl<T> Handle<T> {
    /// No handle yet.
    pub(crate) const fn new() -> Self {
        Handle(None)
    }

    /// This service's handle on `shards`: taken on the first call, from the calling
    /// thread's.
    #[inline]
    pub(crate) fn get(&mut self, shards: &Shards<T>) -> &ShardRef<T> {
        self.0.get_or_insert_with(|| take(shards))
    }
}

/// The calling thread's handle, for a service's first call.
#[cold]
#[inline(never)]
fn take<T>(shards: &Shards<T>) -> ShardRef<T> {
    shards.this_threads().clone()
}

impl<T> ShardRef<T> {
    /// The shared state.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        &self.0.inner
    }

    /// This handle's number, below [`SHARDS`].
    #[inline]
    pub(crate) fn lane(&self) -> usize {
        usize::from(self.0.lane)
    }
}

impl<T> Clone for ShardRef<T> {
    #[inline]
    fn clone(&self) -> Self {
        ShardRef(Arc::clone(&self.0))
    }
}

impl<T: fmt::Debug> fmt::Debug for Shards<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle")
            .field(&self.0.as_ref().map(ShardRef::lane))
            .finish()
    }
}

impl<T: fmt::Debug> fmt::Debug for ShardRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// A number for the calling thread, given out in turn the first time a thread asks:
/// consecutive threads get consecutive numbers, so up to [`SHARDS`] threads get
/// handles of their own.
#[inline]
fn thread_slot() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        let mine = slot.get();
        if mine != usize::MAX {
            return mine;
        }
        // Relaxed: only distinctness matters, which a read-modify-write gives.
        let mine = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        slot.set(mine);
        mine
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handle_leads_to_the_one_state_and_counts_apart() {
        let shards = Shards::new(Arc::new(7u32));
        assert_eq!(Arc::strong_count(shards.arc()), 1, "no handle made yet");
        for lane in 0..SHARDS {
            let handle = shards.shards[lane].get_or_init(|| shards.new_handle(lane));
            assert!(std::ptr::eq(handle.get(), shards.get()));
            assert_eq!(handle.lane(), lane);
        }
        assert_eq!(Arc::strong_count(shards.arc()), 1 + SHARDS);
        // A service's handle counts on its shard's own count, not on the state's.
        let mut handle = Handle::new();
        let mine = handle.get(&shards).clone();
        assert_eq!(
            Arc::strong_count(&mine.0),
            3,
            "the shard's, the service's, mine"
        );
        assert_eq!(Arc::strong_count(shards.arc()), 1 + SHARDS);
        drop(mine);
        drop(handle);
        assert_eq!(Arc::strong_count(&shards.this_threads().0), 1);
    }

    #[test]
    fn a_service_keeps_its_first_threads_handle_and_new_threads_take_others() {
        let shards = Shards::new(Arc::new(()));
        let mut handle = Handle::new();
        let here = handle.get(&shards).lane();
        assert_eq!(here, thread_slot() % SHARDS, "this thread's");
        // Moved to another thread, the service keeps its handle; a service first
        // called there takes that thread's.
        let (kept, other, theirs) = std::thread::spawn(move || {
            let kept = handle.get(&shards).lane();
            let other = Handle::new().get(&shards).lane();
            (kept, other, thread_slot() % SHARDS)
        })
        .join()
        .expect("thread");
        assert_eq!(kept, here, "kept");
        assert_eq!(other, theirs, "the other thread's");
        // Threads made one after another take consecutive slots (other tests' threads
        // may take some in between, so only count that they are not all the same).
        let slots: std::collections::HashSet<usize> = (0..SHARDS)
            .map(|_| std::thread::spawn(thread_slot).join().expect("thread"))
            .collect();
        assert!(slots.len() > 1, "{slots:?}");
    }
}
