//! Where a fallback response comes from: a value, a closure, or another service.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_service::Service;

/// What a fallback keeps of the request before the primary call: nothing for a value
/// or a closure, a clone of the request for a fallback service.
pub trait Save<Req> {
    /// The part of the request kept.
    type Saved;

    /// Keeps what [`Recover::recover`] will need, before the request goes to the
    /// primary service.
    fn save(&self, req: &Req) -> Self::Saved;
}

/// Produces the fallback response from the failed result of the primary call.
pub trait Recover<Saved, T, E> {
    /// The future of a fallback response that is not ready at once ([`NoWait`] for
    /// handlers that always answer at once).
    type Future: Future<Output = Result<T, BoxError>>;

    /// The fallback for `failed` (an `Err`, or an `Ok` the classifier called a
    /// failure): the answer itself, or the future of it.
    fn recover(self, failed: Result<T, E>, saved: Saved) -> Recovery<T, Self::Future>;
}

/// What [`Recover::recover`] gives: the fallback's answer now, or a future of it.
#[derive(Debug)]
pub enum Recovery<T, F> {
    /// The answer, with no future to poll (a value, a closure's result).
    Now(Result<T, BoxError>),
    /// The future of the answer (a fallback service's call).
    Later(F),
}

/// The future type of the handlers that always answer at once ([`Value`], [`FromFn`]):
/// it has no values, so a response future never holds one, and the compiler drops the
/// code that would poll one from the response future's success path.
pub struct NoWait<T> {
    never: std::convert::Infallible,
    _answer: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for NoWait<T> {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

impl<T> Future for NoWait<T> {
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.never {}
    }
}

/// A fallback to a fixed value, cloned for each fallback (and each call; keep it cheap,
/// or share it behind an `Arc`).
#[derive(Debug, Clone)]
pub struct Value<V>(pub(super) V);

impl<V, Req> Save<Req> for Value<V> {
    type Saved = ();
    #[inline]
    fn save(&self, _: &Req) {}
}

impl<V, E> Recover<(), V, E> for Value<V> {
    type Future = NoWait<V>;
    fn recover(self, _: Result<V, E>, (): ()) -> Recovery<V, NoWait<V>> {
        Recovery::Now(Ok(self.0))
    }
}

/// A fallback computed by a closure from the failed result (so the original error
/// reaches it).
#[derive(Clone)]
pub struct FromFn<F>(pub(super) F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<F, Req> Save<Req> for FromFn<F> {
    type Saved = ();
    #[inline]
    fn save(&self, _: &Req) {}
}

impl<F, T, E> Recover<(), T, E> for FromFn<F>
where
    F: FnOnce(Result<T, E>) -> T,
{
    type Future = NoWait<T>;
    fn recover(self, failed: Result<T, E>, (): ()) -> Recovery<T, NoWait<T>> {
        Recovery::Now(Ok((self.0)(failed)))
    }
}

/// A fallback service, called with a clone of the request (kept before the primary
/// call, so the request type must be `Clone`).
#[derive(Debug, Clone)]
pub struct ToService<S>(pub(super) S);

impl<S, Req: Clone> Save<Req> for ToService<S> {
    type Saved = Req;
    #[inline]
    fn save(&self, req: &Req) -> Req {
        req.clone()
    }
}

impl<S, Req, T, E> Recover<Req, T, E> for ToService<S>
where
    S: Service<Req, Response = T>,
    S::Error: Into<BoxError>,
{
    type Future = Oneshot<S, Req>;
    fn recover(self, _: Result<T, E>, req: Req) -> Recovery<T, Self::Future> {
        Recovery::Later(Oneshot {
            state: OneshotState::NotReady {
                svc: self.0,
                req: Some(req),
            },
            _req: PhantomData,
        })
    }
}

pin_project! {
    /// The fallback service's call: `poll_ready`, then `call`.
    pub struct Oneshot<S: Service<Req>, Req> {
        #[pin]
        state: OneshotState<S, Req>,
        _req: PhantomData<fn(Req)>,
    }
}

pin_project! {
    #[project = OneshotProj]
    enum OneshotState<S: Service<Req>, Req> {
        NotReady { svc: S, req: Option<Req> },
        Called { #[pin] fut: S::Future },
    }
}

impl<S: Service<Req>, Req> fmt::Debug for Oneshot<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Oneshot")
    }
}

impl<S, Req> Future for Oneshot<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    // Out of line: the response future polls its fallback's future from its own
    // inlined poll, whose success path should not grow with the fallback's call.
    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                OneshotProj::NotReady { svc, req } => {
                    ready!(svc.poll_ready(cx)).map_err(Into::into)?;
                    let Some(req) = req.take() else {
                        return Poll::Ready(Err("fallback polled after completion".into()));
                    };
                    let fut = svc.call(req);
                    this.state.set(OneshotState::Called { fut });
                }
                OneshotProj::Called { fut } => return fut.poll(cx).map_err(Into::into),
            }
        }
    }
}
