//! The state one bulkhead shares between its layer, services, clones and handles.

use super::error::BulkheadFull;
use crate::ConfigError;
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
    /// Reject at once when full: the core's counter, one `fetch_add` to acquire, one
    /// `fetch_sub` to release.
    Reject(Arc<Permits>),
    /// Wait up to `max_wait` in a FIFO queue: tokio's fair semaphore holds the slots
    /// (a waiter is handed a released slot before any newcomer can take it), and a core
    /// counter bounds the queue.
    Waiting {
        slots: Arc<Semaphore>,
        queue: Arc<Permits>,
        max: usize,
        max_wait: Duration,
    },
    /// Take the slot in `poll_ready`.
    Backpressure { slots: Arc<Semaphore>, max: usize },
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
/// or panic alike).
pub(super) enum Permit {
    Counter(#[allow(dead_code)] PermitGuard),
    Semaphore(#[allow(dead_code)] OwnedSemaphorePermit),
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// The wait of a queued call: only built when the bulkhead is full, so the one
/// allocation it costs is never on the admit path.
pub(super) type Wait = Pin<Box<dyn Future<Output = Result<Permit, BulkheadFull>> + Send>>;

impl Shared {
    pub(super) fn reject(max: usize) -> Result<Self, ConfigError> {
        Ok(Shared::Reject(Arc::new(Permits::new(max)?)))
    }

    pub(super) fn queued(
        max: usize,
        max_wait: Duration,
        max_waiting: usize,
    ) -> Result<Self, ConfigError> {
        let queue = Permits::new(max_waiting)
            .map_err(|_| ConfigError::new("max_waiting", "must be at least 1"))?;
        Ok(Shared::Waiting {
            slots: Arc::new(Semaphore::new(max)),
            queue: Arc::new(queue),
            max,
            max_wait,
        })
    }

    pub(super) fn backpressure(max: usize) -> Self {
        Shared::Backpressure {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub(super) fn max_concurrent(&self) -> usize {
        match self {
            Shared::Reject(p) => p.max(),
            Shared::Waiting { max, .. } | Shared::Backpressure { max, .. } => *max,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        match self {
            Shared::Reject(p) => p.in_flight(),
            Shared::Waiting { slots, max, .. } | Shared::Backpressure { slots, max } => {
                max - slots.available_permits().min(*max)
            }
        }
    }

    pub(super) fn waiting(&self) -> usize {
        match self {
            Shared::Reject(_) | Shared::Backpressure { .. } => 0,
            Shared::Waiting { queue, .. } => queue.in_flight(),
        }
    }

    /// A slot now, if one is free: the admit path, no allocation, no wait.
    #[inline]
    pub(super) fn try_acquire(&self) -> Option<Permit> {
        match self {
            Shared::Reject(p) => p.try_acquire().map(Permit::Counter),
            Shared::Waiting { slots, .. } | Shared::Backpressure { slots, .. } => Arc::clone(slots)
                .try_acquire_owned()
                .ok()
                .map(Permit::Semaphore),
        }
    }

    /// The queued wait for a slot, if this mode waits and the queue has room.
    pub(super) fn wait(&self) -> Option<Wait> {
        match self {
            Shared::Reject(_) => None,
            Shared::Waiting {
                slots,
                queue,
                max_wait,
                ..
            } => {
                let queued = queue.try_acquire()?;
                let slots = Arc::clone(slots);
                let max_wait = *max_wait;
                Some(Box::pin(async move {
                    // Holding the queue slot while waiting; it goes when this ends.
                    let _queued = queued;
                    match tokio::time::timeout(max_wait, slots.acquire_owned()).await {
                        Ok(Ok(p)) => Ok(Permit::Semaphore(p)),
                        // Timed out (or the semaphore closed, which this crate never does).
                        _ => Err(BulkheadFull::new()),
                    }
                }))
            }
            Shared::Backpressure { slots, .. } => {
                let slots = Arc::clone(slots);
                Some(Box::pin(async move {
                    slots
                        .acquire_owned()
                        .await
                        .map(Permit::Semaphore)
                        .map_err(|_| BulkheadFull::new())
                }))
            }
        }
    }

    #[inline]
    pub(super) fn is_backpressure(&self) -> bool {
        matches!(self, Shared::Backpressure { .. })
    }
}
