//! The service: admits or rejects each call, and never polls the inner service while
//! the breaker is rejecting.

use super::error::CircuitOpen;
use super::future::ResponseFuture;
use super::layer::Shared;
use crate::clock::{Clock, Nanos, TokioClock};
use crate::error::BoxError;
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
    /// The inner service is ready. `seen`: the time read to decide, if one was read.
    Inner { seen: Option<Nanos> },
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
    breaker: Arc<Shared>,
    clock: TokioClock,
    classifier: C,
    readiness: Readiness,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            clock: self.clock,
            classifier: self.classifier.clone(),
            // A clone has not been polled.
            readiness: Readiness::Unknown,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(super) fn new(inner: S, breaker: Arc<Shared>, clock: TokioClock, classifier: C) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            clock,
            classifier,
            readiness: Readiness::Unknown,
        }
    }

    /// The future of a refused call (recorded to the instruments).
    #[inline]
    fn rejected<F>(&self, retry_after: Option<Duration>) -> ResponseFuture<F, C>
    where
        C: Clone,
    {
        self.breaker.extension().rejected(retry_after);
        ResponseFuture::rejected(
            CircuitOpen::new(retry_after),
            self.classifier.clone(),
            self.clock,
        )
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
        let clock = self.clock;
        let mut seen = None;
        // One load of the state word; the clock only when the state needs it (open,
        // or every probe slot taken).
        let peek = self.breaker.peek(|| {
            let t = clock.now();
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
                self.readiness = Readiness::Inner { seen };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.readiness = Readiness::Unknown;
                Poll::Ready(Err(e.into()))
            }
            Poll::Pending => {
                self.readiness = Readiness::Unknown;
                Poll::Pending
            }
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let (inner_ready, seen) = match std::mem::replace(&mut self.readiness, Readiness::Unknown) {
            Readiness::Inner { seen } => (true, seen),
            Readiness::Rejected { peeked, seen } => match self.breaker.reject_peeked(peeked) {
                // Still the generation poll_ready saw: its verdict stands.
                Some(rejected) => return self.rejected(rejected.retry_after()),
                None => (false, seen),
            },
            Readiness::Rejecting { seen } => (false, seen),
            // Called without poll_ready: the inner service enforces its own contract.
            Readiness::Unknown => (true, None),
        };
        let clock = self.clock;
        // The time read by poll_ready, if any, is reused: one clock read per call.
        match self.breaker.acquire(|| seen.unwrap_or_else(|| clock.now())) {
            Err(rejected) => self.rejected(rejected.retry_after()),
            Ok(permit) if !inner_ready => {
                // The breaker was rejecting at poll_ready and was reset since: the inner
                // service was not made ready, so it is not called. The permit is
                // dropped unreported (nothing counted, no slot kept).
                drop(permit);
                self.rejected(Some(Duration::ZERO))
            }
            Ok(permit) => ResponseFuture::admitted(
                self.inner.call(req),
                permit,
                self.classifier.clone(),
                clock,
            ),
        }
    }
}
