//! The bulkhead's response future.

use super::error::BulkheadFull;
use super::shared::{Permit, Wait};
use crate::BoxError;
use crate::cold::ColdDrop;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_service::Service;

pin_project! {
    /// The response future of [`Bulkhead`](super::Bulkhead): the inner call holding its
    /// slot, a queued wait for one, or a rejection.
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
            // Dropped with the future: completion, error, cancellation and panic
            // all give the slot back.
            permit: Permit,
        },
        Waiting {
            // Boxed with the service and the request, so that the admitted call's
            // future is the inner one and its permit, whatever the size of the
            // service; dropped out of line.
            waiting: Parked<S, Req>,
        },
        Rejected {
            err: Option<BulkheadFull>,
        },
    }
}

/// A call queued for a slot: the wait, then the service made ready and the request.
pub(super) struct Waiting<S, Req> {
    wait: Wait,
    svc: Option<S>,
    req: Option<Req>,
}

impl<S, Req> Waiting<S, Req> {
    /// Boxed: a call that queues is the only one that allocates.
    pub(super) fn parked(wait: Wait, svc: S, req: Req) -> Parked<S, Req> {
        ColdDrop::new(Box::new(Waiting {
            wait,
            svc: Some(svc),
            req: Some(req),
        }))
    }
}

/// A boxed [`Waiting`], dropped out of line (see [`ColdDrop`]).
pub(super) type Parked<S, Req> = ColdDrop<Box<Waiting<S, Req>>>;

impl<F, S, Req> ResponseFuture<F, S, Req> {
    #[inline]
    pub(super) fn called(fut: F, permit: Permit) -> Self {
        ResponseFuture {
            state: State::Called { fut, permit },
        }
    }

    #[inline]
    pub(super) fn waiting(waiting: Parked<S, Req>) -> Self {
        ResponseFuture {
            state: State::Waiting { waiting },
        }
    }

    pub(super) fn rejected(err: BulkheadFull) -> Self {
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

    // Always inlined: the admit path is a tag check and the inner poll; waiting and
    // rejection are out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let StateProj::Called { fut, .. } = state.as_mut().project() {
            return fut.poll(cx).map_err(Into::into);
        }
        poll_slow(state, cx)
    }
}

/// The response future's waiting and rejected states.
#[inline(never)]
fn poll_slow<F, S, Req, T, E>(
    mut state: Pin<&mut State<F, S, Req>>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, BoxError>>
where
    F: Future<Output = Result<T, E>>,
    S: Service<Req, Future = F, Response = T, Error = E>,
    E: Into<BoxError>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Called { fut, .. } => return fut.poll(cx).map_err(Into::into),
            StateProj::Rejected { err } => {
                let err = err.take().unwrap_or_default();
                return Poll::Ready(Err(err.into()));
            }
            StateProj::Waiting { waiting } => {
                let Some(waiting) = waiting.as_mut() else {
                    unreachable!("a queued call's box is dropped only with it")
                };
                let Waiting { wait, svc, req } = &mut **waiting;
                let waited = ready!(wait.as_mut().poll(cx));
                let (svc, req) = (svc.take(), req.take());
                // The wait is over and is never polled again (it would panic): polled
                // once more after this returns an error, or after the inner `call`
                // panicked, the future answers `BulkheadFull`.
                state.set(State::Rejected { err: None });
                let permit = match waited {
                    Ok(p) => p,
                    Err(full) => return Poll::Ready(Err(full.into())),
                };
                match (svc, req) {
                    (Some(mut svc), Some(req)) => {
                        let fut = svc.call(req);
                        state.set(State::Called { fut, permit });
                    }
                    _ => return Poll::Ready(Err(BulkheadFull::new().into())),
                }
            }
        }
    }
}
