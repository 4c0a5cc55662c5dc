//! The response future: records the outcome when the call completes.

use super::error::CircuitOpen;
use crate::classify::{Classify, Outcome};
use crate::clock::{Clock, TokioClock};
use crate::error::BoxError;
use buttress_core::breaker::{self, Permit};
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
        inner: Option<F>,
        permit: Option<Permit>,
        rejected: Option<CircuitOpen>,
        classifier: C,
        clock: TokioClock,
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(super) fn admitted(inner: F, permit: Permit, classifier: C, clock: TokioClock) -> Self {
        ResponseFuture {
            inner: Some(inner),
            permit: Some(permit),
            rejected: None,
            classifier,
            clock,
        }
    }

    pub(super) fn rejected(err: CircuitOpen, classifier: C, clock: TokioClock) -> Self {
        ResponseFuture {
            inner: None,
            permit: None,
            rejected: Some(err),
            classifier,
            clock,
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("permit", &self.permit)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(match this.rejected.take() {
                Some(e) => Box::new(e),
                None => "circuit breaker future polled after completion".into(),
            }));
        };
        let result = ready!(inner.poll(cx));
        if let Some(permit) = this.permit.take() {
            let outcome = match this.classifier.classify(&result) {
                Outcome::Success => breaker::Outcome::Success,
                Outcome::Failure => breaker::Outcome::Failure,
                Outcome::Ignored => breaker::Outcome::Ignored,
            };
            let clock = *this.clock;
            permit.record(outcome, || clock.now());
        }
        Poll::Ready(result.map_err(Into::into))
    }
}
