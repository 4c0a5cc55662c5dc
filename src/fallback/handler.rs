//! Where a fallback response comes from: a value, a closure, or another service.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::{Future, Ready, ready};
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
    /// The future of the fallback response.
    type Future: Future<Output = Result<T, BoxError>>;

    /// The fallback for `failed` (an `Err`, or an `Ok` the classifier called a
    /// failure).
    fn recover(self, failed: Result<T, E>, saved: Saved) -> Self::Future;
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
    type Future = Ready<Result<V, BoxError>>;
    fn recover(self, _: Result<V, E>, (): ()) -> Self::Future {
        ready(Ok(self.0))
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
    type Future = Ready<Result<T, BoxError>>;
    fn recover(self, failed: Result<T, E>, (): ()) -> Self::Future {
        ready(Ok((self.0)(failed)))
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
    fn recover(self, _: Result<T, E>, req: Req) -> Self::Future {
        Oneshot {
            state: OneshotState::NotReady {
                svc: self.0,
                req: Some(req),
            },
            _req: PhantomData,
        }
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
