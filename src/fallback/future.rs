//! The fallback's response future.

use super::handler::Recover;
use crate::BoxError;
use crate::classify::{Classify, Outcome};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pin_project! {
    /// The response future of [`Fallback`](super::Fallback): the primary call, then, on
    /// a failure, the fallback's.
    pub struct ResponseFuture<F, Fb, H, P, Sv> {
        #[pin]
        state: State<F, Fb>,
        rest: Option<(H, P, Sv)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Fb> {
        Primary { #[pin] fut: F },
        Fallback { #[pin] fut: Fb },
    }
}

impl<F, Fb, H, P, Sv> ResponseFuture<F, Fb, H, P, Sv> {
    #[inline]
    pub(super) fn new(fut: F, handler: H, policy: P, saved: Sv) -> Self {
        ResponseFuture {
            state: State::Primary { fut },
            rest: Some((handler, policy, saved)),
        }
    }
}

impl<F, Fb, H, P, Sv> fmt::Debug for ResponseFuture<F, Fb, H, P, Sv> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Primary { .. } => "primary",
            State::Fallback { .. } => "fallback",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, Fb, H, P, Sv, T, E> Future for ResponseFuture<F, Fb, H, P, Sv>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    P: Classify<T, E>,
    H: Recover<Sv, T, E, Future = Fb>,
    Fb: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary { fut } => {
                    let result = ready!(fut.poll(cx));
                    // The success path: one classification, one branch.
                    let failed = match this.rest {
                        Some((_, policy, _)) => policy.classify(&result) == Outcome::Failure,
                        None => false,
                    };
                    if !failed {
                        return Poll::Ready(result.map_err(Into::into));
                    }
                    let Some((handler, _, saved)) = this.rest.take() else {
                        return Poll::Ready(result.map_err(Into::into));
                    };
                    let fut = handler.recover(result, saved);
                    this.state.set(State::Fallback { fut });
                }
                StateProj::Fallback { fut } => return fut.poll(cx),
            }
        }
    }
}
