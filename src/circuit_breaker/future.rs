//! The response future: records the outcome when the call completes.

use super::error::CircuitOpen;
#[cfg(feature = "metrics")]
use super::layer::Shared;
use super::layer::{Ext, ShardRef};
use crate::classify::{Classify, Outcome};
use crate::error::{BoxError, RejectionKind};
use buttress_core::breaker::Permit;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pin_project! {
    /// The future of [`CircuitBreaker`](super::CircuitBreaker): the inner call holding
    /// its permit, or a rejection.
    ///
    /// On completion the result is classified and recorded. Dropped before completion
    /// (cancelled), or unwound by a panic in the inner future, it records nothing and
    /// its permit gives back any half-open probe slot.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        classifier: C,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        // The inner call, and its permit until the outcome is recorded.
        Admitted { #[pin] fut: F, permit: Permit<Ext, ShardRef> },
        // Rejected; `None` once returned.
        Rejected { err: Option<CircuitOpen> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(super) fn admitted(inner: F, permit: Permit<Ext, ShardRef>, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Admitted { fut: inner, permit },
            classifier,
        }
    }

    #[inline]
    pub(super) fn rejected(err: CircuitOpen, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { err: Some(err) },
            classifier,
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ResponseFuture");
        match &self.kind {
            Kind::Admitted { permit, .. } => d.field("permit", permit),
            Kind::Rejected { err } => d.field("rejected", err),
        };
        d.finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (fut, permit) = match this.kind.project() {
            KindProj::Admitted { fut, permit } => (fut, permit),
            KindProj::Rejected { err } => {
                return Poll::Ready(Err(match err.take() {
                    Some(e) => Box::new(e),
                    None => "circuit breaker future polled after completion".into(),
                }));
            }
        };
        let result = ready!(fut.poll(cx)).map_err(Into::into);
        // Classified once, and only while the permit is unreported (a second poll
        // after completion records nothing).
        if permit.is_unreported() {
            let outcome = match &result {
                // A layer inside the breaker refused the call itself: a local decision
                // that says nothing about the backend, so it is not counted.
                Err(e) if is_local_refusal(&**e) => Outcome::Ignored,
                _ => this.classifier.classify(&result),
            };
            #[cfg(feature = "metrics")]
            {
                let now = observe(permit.breaker(), permit.started_at(), outcome);
                permit.record_once_with(outcome, |ext| now.unwrap_or_else(|| ext.now()));
            }
            #[cfg(not(feature = "metrics"))]
            permit.record_once_with(outcome, |ext| ext.now());
        }
        Poll::Ready(result)
    }
}

/// Records an admitted call's outcome to the instruments, and its duration when the
/// breaker times calls: then the time is read here, and the breaker is given this
/// reading (it would read the clock for its slow-call check anyway).
#[cfg(feature = "metrics")]
#[inline]
fn observe(
    breaker: Option<&Shared>,
    started_at: crate::clock::Nanos,
    outcome: Outcome,
) -> Option<crate::clock::Nanos> {
    let breaker = breaker?;
    let ext = breaker.extension();
    ext.obs.outcome(outcome);
    if breaker.times_calls() && outcome != Outcome::Ignored {
        let now = ext.now();
        ext.obs
            .duration(now.saturating_sub(started_at).as_duration());
        return Some(now);
    }
    None
}

/// Whether `err` is a buttress rejection made inside the breaker without the backend
/// being asked: a rate limiter's, a bulkhead's, an inner breaker's, the gRPC deadline
/// layer's. A timeout (`Elapsed`) is not: the backend was asked and did not answer in
/// time. Nor is a retry budget's refusal, which comes only after an attempt: what
/// decides is the last attempt's error, its source (a backend failure, or itself a
/// local refusal).
#[cold]
fn is_local_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    crate::error::chain(err)
        .filter_map(crate::error::as_rejection)
        .find(|r| r.kind() != RejectionKind::BudgetExhausted)
        .is_some_and(|r| r.kind() != RejectionKind::Elapsed)
}
