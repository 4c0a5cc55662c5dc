//! The rate limiters' response future.

use super::error::RateLimited;
use crate::BoxError;
use crate::cold::ColdDrop;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit) and
    /// [`KeyedRateLimit`](super::KeyedRateLimit): the inner call, a sleep until a
    /// reserved slot, or a rejection.
    pub struct ResponseFuture<F, S, Req> {
        #[pin]
        state: State<F, S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        Called {
            #[pin]
            fut: F,
        },
        Waiting {
            // Boxed with the service and the request, so that the admit path's future
            // is the inner one plus a tag, whatever the size of the service.
            waiting: Parked<S, Req>,
        },
        Rejected {
            err: Option<RateLimited>,
        },
    }
}

pin_project! {
    /// A call waiting for its reserved slot.
    pub(super) struct Waiting<S, Req> {
        #[pin]
        sleep: Sleep,
        svc: Option<S>,
        req: Option<Req>,
    }
}

impl<S, Req> Waiting<S, Req> {
    /// Boxed: a call that waits is the only one that allocates.
    pub(super) fn parked(sleep: Sleep, svc: S, req: Req) -> Parked<S, Req> {
        ColdDrop::new(Box::pin(Waiting {
            sleep,
            svc: Some(svc),
            req: Some(req),
        }))
    }
}

/// A boxed [`Waiting`], dropped out of line (see [`ColdDrop`]): the timer and the
/// service in the box have large drops of their own.
pub(super) type Parked<S, Req> = ColdDrop<Pin<Box<Waiting<S, Req>>>>;

impl<F, S, Req> ResponseFuture<F, S, Req> {
    #[inline]
    pub(super) fn called(fut: F) -> Self {
        ResponseFuture {
            state: State::Called { fut },
        }
    }

    #[inline]
    pub(super) fn waiting(waiting: Parked<S, Req>) -> Self {
        ResponseFuture {
            state: State::Waiting { waiting },
        }
    }

    pub(super) fn rejected(err: RateLimited) -> Self {
        ResponseFuture {
            state: State::Rejected { err: Some(err) },
        }
    }
}

impl<F, S, Req> fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, S, Req, T, E> Future for ResponseFuture<F, S, Req>
where
    F: Future<Output = Result<T, E>>,
    S: Service<Req, Future = F, Response = T, Error = E>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The admitted call is the whole of the fast path: small enough to inline.
        if let StateProj::Called { fut } = self.as_mut().project().state.project() {
            return fut.poll(cx).map_err(Into::into);
        }
        self.poll_slow(cx)
    }
}

impl<F, S, Req, T, E> ResponseFuture<F, S, Req>
where
    F: Future<Output = Result<T, E>>,
    S: Service<Req, Future = F, Response = T, Error = E>,
    E: Into<BoxError>,
{
    /// A rejection, or a wait for a reserved slot: kept out of line.
    #[inline(never)]
    fn poll_slow(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, BoxError>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => return fut.poll(cx).map_err(Into::into),
                StateProj::Rejected { err } => {
                    let err = err
                        .take()
                        .unwrap_or_else(|| RateLimited::new(Default::default()));
                    return Poll::Ready(Err(err.into()));
                }
                StateProj::Waiting { waiting } => {
                    let Some(waiting) = waiting.as_mut() else {
                        unreachable!("a waiting call's box is dropped only with it")
                    };
                    let waiting = waiting.as_mut().project();
                    ready!(waiting.sleep.poll(cx));
                    match (waiting.svc.take(), waiting.req.take()) {
                        (Some(mut svc), Some(req)) => {
                            let fut = svc.call(req);
                            this.state.set(State::Called { fut });
                        }
                        _ => return Poll::Ready(Err(RateLimited::new(Default::default()).into())),
                    }
                }
            }
        }
    }
}
