//! The service: admits or rejects each call, and never polls the inner service while
//! the breaker is rejecting.

use super::error::CircuitOpen;
use super::future::ResponseFuture;
use super::layer::{Shards, Shared};
use crate::clock::Nanos;
use crate::error::BoxError;
use crate::shard::Handle;
use buttress_core::breaker::{Peek, Rejected};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// What the last `poll_ready` found.
#[derive(Debug, Clone, Copy)]
enum Readiness {
    /// Not polled since the last call.
    Unknown,
    /// The inner service is ready, and no time was read to decide (the common case:
    /// closed). A tag alone, so that `call` reads back one byte.
    Inner,
    /// The inner service is ready, and the breaker would admit a probe (its open wait
    /// over, or a half-open slot free): `call` asks `acquire` again, timed from then.
    Probe,
    /// The breaker rejects, with nothing to change: `call` confirms the verdict with
    /// one load (or asks `acquire` if the breaker has moved on). The inner service was
    /// not polled.
    Rejected {
        peeked: Rejected,
        seen: Option<Nanos>,
    },
    /// The breaker rejects after a transition that `call` makes through `acquire`.
    /// The inner service was not polled.
    Rejecting { seen: Option<Nanos> },
}

/// A service behind a circuit breaker; made by
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
pub struct CircuitBreaker<S, C = crate::classify::DefaultClassifier> {
    inner: S,
    shards: Arc<Shards>,
    classifier: C,
    readiness: Readiness,
    /// This service's permit handle (see [`crate::shard`]): that of the thread that
    /// first called it.
    handle: Handle<Shared>,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            shards: Arc::clone(&self.shards),
            classifier: self.classifier.clone(),
            // A clone has not been polled, nor called.
            readiness: Readiness::Unknown,
            handle: Handle::new(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", self.shards.get())
            .finish_non_exhaustive()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(super) fn new(inner: S, shards: Arc<Shards>, classifier: C) -> Self {
        CircuitBreaker {
            inner,
            shards,
            classifier,
            readiness: Readiness::Unknown,
            handle: Handle::new(),
        }
    }

    /// The future of a refused call (recorded to the instruments).
    #[inline]
    fn rejected<F>(&self, retry_after: Option<Duration>) -> ResponseFuture<F, C>
    where
        C: Clone,
    {
        self.shards.get().extension().obs.rejected(retry_after);
        ResponseFuture::rejected(CircuitOpen::new(retry_after), self.classifier.clone())
    }

    /// [`rejected`](Self::rejected), out of line: for the admit path's rare refusal.
    #[cold]
    fn rejected_cold<F>(&self, retry_after: Option<Duration>) -> ResponseFuture<F, C>
    where
        C: Clone,
    {
        self.rejected(retry_after)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the breaker.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: crate::classify::Classify<S::Response, BoxError> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The fast path, inlined: closed, so the inner service's readiness is the
        // answer and no time is read.
        if !self.shards.get().is_closed() {
            return self.poll_ready_slow(cx);
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.readiness = Readiness::Inner;
                Poll::Ready(Ok(()))
            }
            other => self.inner_not_ready(other),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // The fast path: made ready without reading the clock (closed).
        if let Readiness::Inner = self.readiness {
            self.readiness = Readiness::Unknown;
            let ext = self.shards.get().extension();
            return match self
                .shards
                .get()
                .acquire_via(self.handle.get(&self.shards), || ext.now())
            {
                Ok(permit) => {
                    ResponseFuture::admitted(self.inner.call(req), permit, self.classifier.clone())
                }
                // The breaker moved on since `poll_ready` (a race with a transition).
                Err(rejected) => self.rejected_cold(rejected.retry_after()),
            };
        }
        self.call_slow(req)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// `poll_ready` when the breaker is not closed: it may reject, or admit a probe
    /// decided at a time read here.
    #[inline(never)]
    fn poll_ready_slow<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let ext = self.shards.get().extension();
        let mut seen = None;
        // One load of the state word; the clock only when the state needs it (open,
        // or every probe slot taken).
        let peek = self.shards.get().peek(|| {
            let t = ext.now();
            seen = Some(t);
            t
        });
        if peek != Peek::Admit {
            // Ready without touching the inner service: the call fails in its future,
            // so a hung backend cannot block callers, and nothing is held.
            self.readiness = match peek {
                Peek::Reject(peeked) => Readiness::Rejected { peeked, seen },
                _ => Readiness::Rejecting { seen },
            };
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.readiness = match seen {
                    None => Readiness::Inner,
                    Some(_) => Readiness::Probe,
                };
                Poll::Ready(Ok(()))
            }
            other => self.inner_not_ready(other),
        }
    }

    /// The inner service is not ready, or failed.
    #[inline]
    fn inner_not_ready<E: Into<BoxError>>(
        &mut self,
        polled: Poll<Result<(), E>>,
    ) -> Poll<Result<(), BoxError>> {
        self.readiness = Readiness::Unknown;
        polled.map_err(Into::into)
    }

    /// Every other case: a probe decided on a time read by `poll_ready`, a rejection
    /// found by `poll_ready`, or a call without `poll_ready`.
    #[inline]
    fn call_slow<Req>(&mut self, req: Req) -> ResponseFuture<S::Future, C>
    where
        S: Service<Req>,
        C: Clone,
    {
        let (inner_ready, seen) = match std::mem::replace(&mut self.readiness, Readiness::Unknown) {
            // A probe (the open wait was over, or half-open had a slot, when poll_ready
            // looked): it is timed from now, not from poll_ready, which may have been
            // long before (its duration decides whether it was slow, and the half-open
            // period starts with it). The one call that reads the clock twice, once
            // per half-open test.
            Readiness::Probe => (true, None),
            Readiness::Rejected { peeked, seen } => {
                match self.shards.get().reject_peeked(peeked) {
                    // Still the generation poll_ready saw: its verdict stands.
                    Some(rejected) => return self.rejected(rejected.retry_after()),
                    None => (false, seen),
                }
            }
            Readiness::Rejecting { seen } => (false, seen),
            // Called without poll_ready: the inner service enforces its own contract.
            // (`Inner` is `call`'s own fast path and does not come here.)
            Readiness::Unknown | Readiness::Inner => (true, None),
        };
        let ext = self.shards.get().extension();
        // The time read by poll_ready, if any, is reused for a call the inner service
        // will not see: one clock read per call.
        match self
            .shards
            .get()
            .acquire_via(self.handle.get(&self.shards), || {
                seen.unwrap_or_else(|| ext.now())
            }) {
            Err(rejected) => self.rejected(rejected.retry_after()),
            Ok(permit) if !inner_ready => {
                // The breaker was rejecting at poll_ready and was reset since: the inner
                // service was not made ready, so it is not called. The permit is
                // dropped unreported (nothing counted, no slot kept).
                drop(permit);
                self.rejected(Some(Duration::ZERO))
            }
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.call(req), permit, self.classifier.clone())
            }
        }
    }
}
