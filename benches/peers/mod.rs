//! The thinnest adapters that put a peer without a tower `Service` of its own in front
//! of a service, so that every row is measured through the same `ready` + `call`.
//!
//! Each adapter forwards `poll_ready` and wraps the inner future in the peer's own
//! future (or calls the peer's check before calling through), adding nothing of its
//! own beyond what the peer's API requires.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::{Ready, ready};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

/// failsafe's futures-aware breaker: `CircuitBreaker::call(future)` around the inner
/// future. Its state machine is `Clone` (an `Arc` inside), so clones share it.
#[derive(Clone)]
pub struct Failsafe<S, B> {
    inner: S,
    breaker: B,
}

impl<S, B> Failsafe<S, B> {
    pub fn new(inner: S, breaker: B) -> Self {
        Failsafe { inner, breaker }
    }
}

/// A breaker with failsafe's default configuration (success rate over a time window,
/// or else consecutive failures), which every successful call keeps closed.
pub fn failsafe_default() -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static
{
    failsafe::Config::new().build()
}

impl<S, B, Req> Service<Req> for Failsafe<S, B>
where
    S: Service<Req>,
    B: failsafe::futures::CircuitBreaker,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

/// recloser's `AsyncRecloser::call(future)` around the inner future. `AsyncRecloser` is
/// an `Arc<Recloser>`, so clones share one breaker.
#[derive(Clone)]
pub struct Recloser<S> {
    inner: S,
    breaker: recloser::AsyncRecloser,
}

impl<S> Recloser<S> {
    /// recloser's default configuration (50% over the last 100 calls).
    pub fn new(inner: S) -> Self {
        Recloser {
            inner,
            breaker: recloser::AsyncRecloser::from(recloser::Recloser::default()),
        }
    }
}

impl<S, Req> Service<Req> for Recloser<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = recloser::Error<S::Error>;
    type Future = recloser::RecloserFuture<S::Future, recloser::AnyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(recloser::Error::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

/// A governor direct limiter checked once per call; the call is refused in its future
/// when `check` says no (it never does here: the quota is a billion per second with a
/// burst of `u32::MAX`). Clones share the limiter through an `Arc`.
pub struct Governor<S, C: governor::clock::Clock> {
    inner: S,
    limiter: Arc<
        governor::RateLimiter<
            governor::state::NotKeyed,
            governor::state::InMemoryState,
            C,
            governor::middleware::NoOpMiddleware<C::Instant>,
        >,
    >,
}

impl<S: Clone, C: governor::clock::Clock> Clone for Governor<S, C> {
    fn clone(&self) -> Self {
        Governor {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

/// The quota every rate-limiter row uses: so high that nothing is refused.
pub fn governor_quota() -> governor::Quota {
    governor::Quota::with_period(Duration::from_nanos(1))
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::MAX)
}

impl<S, C: governor::clock::Clock> Governor<S, C> {
    pub fn with_clock(inner: S, clock: C) -> Self {
        Governor {
            inner,
            limiter: Arc::new(governor::RateLimiter::direct_with_clock(
                governor_quota(),
                clock,
            )),
        }
    }
}

/// The error of a refused governor check.
#[derive(Debug)]
pub struct GovernorRefused;

impl std::fmt::Display for GovernorRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate limited")
    }
}

impl std::error::Error for GovernorRefused {}

/// Either the inner future or an immediate refusal.
pub enum GovernorFuture<F> {
    Called(F),
    Refused(Ready<Result<(), GovernorRefused>>),
}

impl<F, T, E> std::future::Future for GovernorFuture<F>
where
    F: std::future::Future<Output = Result<T, E>> + Unpin,
    E: Into<tower::BoxError>,
{
    type Output = Result<T, tower::BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            GovernorFuture::Called(f) => std::pin::Pin::new(f).poll(cx).map_err(Into::into),
            GovernorFuture::Refused(_) => Poll::Ready(Err(Box::new(GovernorRefused))),
        }
    }
}

impl<S, C, Req> Service<Req> for Governor<S, C>
where
    S: Service<Req>,
    S::Future: Unpin,
    S::Error: Into<tower::BoxError>,
    C: governor::clock::Clock,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = GovernorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(_) => GovernorFuture::Called(self.inner.call(req)),
            Err(_) => GovernorFuture::Refused(ready(Err(GovernorRefused))),
        }
    }
}

/// tower's `Retry` policy for the first-attempt-success row: requests are cloned up
/// front (as tower's `Retry` needs), nothing is ever retried.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverRetry;

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Not a peer: the bare service plus one piece of work per call (`extra`), to show
/// what a building block costs on the machine: a clock read, an `Arc` clone and drop,
/// a boxed error.
#[derive(Clone, Copy, Debug)]
pub struct Extra<S, F>(pub S, pub F);

impl<S, F, Req> Service<Req> for Extra<S, F>
where
    S: Service<Req>,
    F: Fn(),
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        (self.1)();
        self.0.call(req)
    }
}
