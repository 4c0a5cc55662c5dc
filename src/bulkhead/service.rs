//! The bulkhead service.

use super::error::BulkheadFull;
use super::future::{Parked, ResponseFuture, Waiting};
use super::shared::{Permit, Shared, Wait};
use crate::BoxError;
use std::fmt;
use std::task::{Context, Poll, ready};
use tower_service::Service;

/// A service that lets at most `max_concurrent` calls into `S` at once; made by
/// [`BulkheadLayer`](super::BulkheadLayer).
pub struct Bulkhead<S> {
    inner: S,
    shared: Shared,
    /// Backpressure mode's slot for the next call.
    slot: Slot,
}

/// Backpressure mode: where this service stands with its slot for the next call.
/// (One field rather than two options, so that the service stays small.)
enum Slot {
    /// None taken.
    Free,
    /// Taken by `poll_ready`, for the next `call`.
    Held(Permit),
    /// Waiting for one, while `poll_ready` is pending.
    Acquiring(Wait),
}

impl<S> Bulkhead<S> {
    pub(super) fn new(inner: S, shared: Shared) -> Self {
        Bulkhead {
            inner,
            shared,
            slot: Slot::Free,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("holds_slot", &matches!(self.slot, Slot::Held(_)))
            .finish()
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// A clone shares the bulkhead, but not a slot this service holds.
    fn clone(&self) -> Self {
        Bulkhead::new(self.inner.clone(), self.shared.clone())
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req>;

    #[inline(always)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if !matches!(self.slot, Slot::Held(_)) && self.shared.is_backpressure() {
            ready!(self.poll_slot(cx))?;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // The response future is assembled here, inline, from small values: the helpers
    // out of line return a permit or a pointer to a queued call, never a whole future.
    // A future written through a pointer by another function comes back to the
    // caller's state as 16-byte loads spanning the 8-byte stores that wrote it, a
    // store-to-load forwarding stall (a third of this layer's cost when the reject mode
    // shared its return slot with the semaphore modes' out-of-line `call`).
    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // The slot is taken here, with the call, never between `poll_ready` and `call`
        // (except in backpressure mode, where `poll_ready` took it on purpose).
        let permit = match &self.shared {
            // The reject-at-once mode, straight to the core's counter.
            Shared::Reject(permits) => match permits.try_acquire() {
                Some(g) => Permit::counter(g, permits.extension()),
                None => {
                    permits.extension().rejected();
                    return ResponseFuture::rejected(BulkheadFull::new());
                }
            },
            _ => match self.semaphore_slot() {
                Some(p) => p,
                None => match self.shared.wait() {
                    Some(wait) => {
                        return ResponseFuture::waiting(queue(&mut self.inner, req, wait));
                    }
                    None => {
                        self.shared.obs().rejected();
                        return ResponseFuture::rejected(BulkheadFull::new());
                    }
                },
            },
        };
        ResponseFuture::called(self.inner.call(req), permit)
    }
}

/// A call queued for a slot, with the service that was made ready (a clone stays in
/// its place for the next `poll_ready`). Out of line, and it returns a pointer, not a
/// future (see `call`).
#[cold]
#[inline(never)]
fn queue<S: Clone, Req>(inner: &mut S, req: Req, wait: Wait) -> Parked<S, Req> {
    let ready = inner.clone();
    let svc = std::mem::replace(inner, ready);
    Waiting::parked(wait, svc, req)
}

impl<S: Clone> Bulkhead<S> {
    /// Backpressure mode: takes the slot for the next `call`, waiting for one if full.
    /// Out of line, so that the other modes' `poll_ready` stays a check.
    #[inline(never)]
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Slot::Free = self.slot {
            match self.shared.try_acquire() {
                Some(p) => {
                    self.slot = Slot::Held(p);
                    return Poll::Ready(Ok(()));
                }
                None => {
                    if let Some(wait) = self.shared.wait() {
                        self.slot = Slot::Acquiring(wait);
                    }
                }
            }
        }
        if let Slot::Acquiring(wait) = &mut self.slot {
            let permit = ready!(wait.as_mut().poll(cx));
            self.slot = Slot::Free;
            self.slot = Slot::Held(permit.map_err(BoxError::from)?);
        }
        Poll::Ready(Ok(()))
    }

    /// The waiting and backpressure modes' slot for `call`: the one `poll_ready` took,
    /// or a free one now.
    #[inline(never)]
    fn semaphore_slot(&mut self) -> Option<Permit> {
        match std::mem::replace(&mut self.slot, Slot::Free) {
            Slot::Held(p) => Some(p),
            // A wait in progress stays in progress (`call` without a finished
            // `poll_ready`): the call takes a free slot now, if any.
            acquiring @ Slot::Acquiring(_) => {
                self.slot = acquiring;
                self.shared.try_acquire()
            }
            Slot::Free => self.shared.try_acquire(),
        }
    }
}
