//! The state one bulkhead shares between its layer, services, clones and handles.

use super::error::BulkheadFull;
use crate::ConfigError;
use crate::observe::BulkheadObs;
use buttress_core::permits::{PermitGuard, Permits};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One bulkhead's state, by mode. Cloning shares it.
#[derive(Clone)]
pub(super) enum Shared {
    /// Reject at once when full: the core's counter, one compare-and-swap to acquire,
    /// one `fetch_sub` to release. The instruments ride in the counter's extension.
    Reject(Arc<Permits<BulkheadObs>>),
    /// Wait up to `max_wait` in a FIFO queue: tokio's fair semaphore holds the slots
    /// (a waiter is handed a released slot before any newcomer can take it), and a core
    /// counter bounds the queue.
    Waiting(Arc<Queued>),
    /// Take the slot in `poll_ready`.
    Backpressure(Arc<Slots>),
}

// Every mode is one pointer, so that the service (which a retry layer above copies
// into every call's future) stays small.

/// The waiting mode's state.
pub(super) struct Queued {
    slots: Arc<Semaphore>,
    queue: Permits,
    max: usize,
    max_wait: Duration,
    obs: BulkheadObs,
}

/// The backpressure mode's state.
pub(super) struct Slots {
    slots: Arc<Semaphore>,
    max: usize,
    obs: BulkheadObs,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.max_concurrent())
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A slot held by a call; dropping it frees the slot (completion, error, cancellation
/// or panic alike), and records that to the instruments.
///
/// With the `metrics` or `tracing` feature, a permit carries a reference to the
/// instruments (one `Arc` clone per call; zero-sized otherwise): neither the core
/// counter's guard nor tokio's permit leads back to them.
pub(super) enum Permit {
    Counter(#[allow(dead_code)] PermitGuard, BulkheadObs),
    Semaphore(#[allow(dead_code)] OwnedSemaphorePermit, BulkheadObs),
}

impl Permit {
    #[inline]
    pub(super) fn counter(guard: PermitGuard, obs: &BulkheadObs) -> Self {
        obs.acquired();
        Permit::Counter(guard, obs.clone())
    }

    #[inline]
    fn semaphore(permit: OwnedSemaphorePermit, obs: &BulkheadObs) -> Self {
        obs.acquired();
        Permit::Semaphore(permit, obs.clone())
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        match self {
            Permit::Counter(_, obs) | Permit::Semaphore(_, obs) => obs.released(),
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// The wait of a queued call: only built when the bulkhead is full, so the allocation
/// it costs (and that of the box its call waits in) is never on the admit path.
/// `Sync`, so that the service holding it is too, as axum's `Router::layer` and shared
/// handler state require.
pub(super) type Wait = Pin<Box<dyn Future<Output = Result<Permit, BulkheadFull>> + Send + Sync>>;

impl Shared {
    pub(super) fn reject(max: usize, obs: BulkheadObs) -> Result<Self, ConfigError> {
        Ok(Shared::Reject(Arc::new(Permits::with_extension(max, obs)?)))
    }

    pub(super) fn queued(
        max: usize,
        max_wait: Duration,
        max_waiting: usize,
        obs: BulkheadObs,
    ) -> Result<Self, ConfigError> {
        // Zero is refused by the builder; what the counter refuses here is a size
        // too large for it, and its error says so (renamed to this field).
        let queue = Permits::new(max_waiting)
            .map_err(|e| ConfigError::new("max_waiting", e.problem().to_owned()))?;
        Ok(Shared::Waiting(Arc::new(Queued {
            slots: Arc::new(Semaphore::new(max)),
            queue,
            max,
            max_wait,
            obs,
        })))
    }

    pub(super) fn backpressure(max: usize, obs: BulkheadObs) -> Self {
        Shared::Backpressure(Arc::new(Slots {
            slots: Arc::new(Semaphore::new(max)),
            max,
            obs,
        }))
    }

    /// The instruments.
    #[inline]
    pub(super) fn obs(&self) -> &BulkheadObs {
        match self {
            Shared::Reject(p) => p.extension(),
            Shared::Waiting(q) => &q.obs,
            Shared::Backpressure(b) => &b.obs,
        }
    }

    pub(super) fn max_concurrent(&self) -> usize {
        match self {
            Shared::Reject(p) => p.max(),
            Shared::Waiting(q) => q.max,
            Shared::Backpressure(b) => b.max,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        match self {
            Shared::Reject(p) => p.in_flight(),
            Shared::Waiting(q) => q.max - q.slots.available_permits().min(q.max),
            Shared::Backpressure(b) => b.max - b.slots.available_permits().min(b.max),
        }
    }

    pub(super) fn waiting(&self) -> usize {
        match self {
            Shared::Reject(_) | Shared::Backpressure(_) => 0,
            Shared::Waiting(q) => q.queue.in_flight(),
        }
    }

    /// A slot now, if one is free: the admit path, no allocation, no wait.
    #[inline]
    pub(super) fn try_acquire(&self) -> Option<Permit> {
        match self {
            Shared::Reject(p) => p.try_acquire().map(|g| Permit::counter(g, p.extension())),
            Shared::Waiting(q) => Arc::clone(&q.slots)
                .try_acquire_owned()
                .ok()
                .map(|p| Permit::semaphore(p, &q.obs)),
            Shared::Backpressure(b) => Arc::clone(&b.slots)
                .try_acquire_owned()
                .ok()
                .map(|p| Permit::semaphore(p, &b.obs)),
        }
    }

    /// The queued wait for a slot, if this mode waits and the queue has room.
    pub(super) fn wait(&self) -> Option<Wait> {
        match self {
            Shared::Reject(_) => None,
            Shared::Waiting(q) => {
                let Queued {
                    slots,
                    queue,
                    max_wait,
                    obs,
                    ..
                } = &**q;
                let queued = queue.try_acquire()?;
                let slots = Arc::clone(slots);
                let obs = obs.clone();
                // The wait's one clock read: its deadline (and, for the wait histogram,
                // its start).
                let since = tokio::time::Instant::now();
                let deadline = since.checked_add(*max_wait);
                let timer = obs.wait_started(since);
                Some(Box::pin(async move {
                    // Holding the queue slot while waiting; it goes when this ends, and
                    // the timer records the wait however it ends (cancelled included).
                    let _queued = queued;
                    let _timer = timer;
                    let acquired = match deadline {
                        Some(d) => tokio::time::timeout_at(d, slots.acquire_owned()).await.ok(),
                        // A wait too long for an instant: it never runs out.
                        None => Some(slots.acquire_owned().await),
                    };
                    match acquired {
                        Some(Ok(p)) => Ok(Permit::semaphore(p, &obs)),
                        // Timed out (or the semaphore closed, which this crate never does).
                        _ => {
                            obs.rejected();
                            Err(BulkheadFull::new())
                        }
                    }
                }))
            }
            Shared::Backpressure(b) => {
                let slots = Arc::clone(&b.slots);
                let obs = b.obs.clone();
                Some(Box::pin(async move {
                    slots
                        .acquire_owned()
                        .await
                        .map(|p| Permit::semaphore(p, &obs))
                        .map_err(|_| BulkheadFull::new())
                }))
            }
        }
    }

    #[inline]
    pub(super) fn is_backpressure(&self) -> bool {
        matches!(self, Shared::Backpressure(_))
    }
}
