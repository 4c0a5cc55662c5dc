//! The response future of [`PropagateDeadline`](super::PropagateDeadline).

use crate::error::BoxError;
use crate::timeout::error::DeadlinePassed;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// The future of a [`PropagateDeadline`](super::PropagateDeadline) call: the inner
    /// call, or, when the deadline had already passed, [`DeadlinePassed`] at once.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Passed,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn calling(fut: F) -> Self {
        ResponseFuture {
            state: State::Calling { fut },
        }
    }

    #[inline]
    pub(super) fn passed() -> Self {
        ResponseFuture {
            state: State::Passed,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { fut } => fut.poll(cx).map_err(Into::into),
            StateProj::Passed => Poll::Ready(Err(Box::new(DeadlinePassed::new()))),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expired = matches!(self.state, State::Passed);
        f.debug_struct("ResponseFuture")
            .field("expired", &expired)
            .finish_non_exhaustive()
    }
}
