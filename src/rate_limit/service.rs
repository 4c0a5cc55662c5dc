//! The rate-limit services.

use super::error::RateLimited;
use super::future::{Parked, ResponseFuture, Waiting};
use super::layer::{Direct, Keyed, SleepClock};
use crate::BoxError;
use crate::clock::{Nanos, TokioClock};
use crate::observe::RateLimitObs;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tower_service::Service;

/// A service limited by one shared GCRA limiter; made by
/// [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<S, C = TokioClock> {
    inner: S,
    shared: Arc<Direct<C>>,
}

impl<S, C> RateLimit<S, C> {
    pub(super) fn new(inner: S, shared: Arc<Direct<C>>) -> Self {
        RateLimit { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C> Clone for RateLimit<S, C> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for RateLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("gcra", &self.shared.gcra)
            .finish()
    }
}

/// What the limiter said, turned into the response future.
///
/// The future is assembled here, inline, from small values: the out-of-line helpers
/// return a pointer to a waiting call or an error, never a whole future. A future
/// written through a pointer by another function comes back to the caller's state as
/// 16-byte loads spanning the 8-byte stores that wrote it, a store-to-load forwarding
/// stall (about a third of the time spent outside the clock, when the admit path
/// shared its return slot with an out-of-line wait-or-reject function).
#[inline(always)]
fn dispatch<S, Req, C>(
    inner: &mut S,
    req: Req,
    verdict: Result<Nanos, Nanos>,
    now: Nanos,
    clock: &C,
    rejected: &AtomicU64,
    obs: &RateLimitObs,
) -> ResponseFuture<S::Future, S, Req>
where
    S: Service<Req> + Clone,
    C: SleepClock,
{
    match verdict {
        Ok(wait) if wait.is_zero() => ResponseFuture::called(inner.call(req)),
        Ok(wait) => {
            // The slot is reserved: sleep exactly until it, then call the service that
            // was made ready (a clone stays for the next `poll_ready`).
            ResponseFuture::waiting(wait_for_slot(inner, req, wait, now, clock, obs))
        }
        Err(retry_after) => ResponseFuture::rejected(refuse(retry_after, rejected, obs)),
    }
}

/// A call that sleeps until the slot reserved `wait` after `now`, then calls the
/// service that was made ready (a clone stays in its place for the next
/// `poll_ready`). Out of line, and it returns a pointer, not a future (see
/// `dispatch`).
#[cold]
#[inline(never)]
fn wait_for_slot<S, Req, C>(
    inner: &mut S,
    req: Req,
    wait: Nanos,
    now: Nanos,
    clock: &C,
    obs: &RateLimitObs,
) -> Parked<S, Req>
where
    S: Clone,
    C: SleepClock,
{
    obs.waits(wait.as_duration());
    let sleep = tokio::time::sleep_until(clock.deadline(now.saturating_add(wait)));
    let ready = inner.clone();
    let svc = std::mem::replace(inner, ready);
    Waiting::parked(sleep, svc, req)
}

/// A rejection, counted.
#[cold]
#[inline(never)]
fn refuse(retry_after: Nanos, rejected: &AtomicU64, obs: &RateLimitObs) -> RateLimited {
    // Relaxed: a count for the handles, publishing nothing; the reject path's only
    // extra cost.
    rejected.fetch_add(1, Ordering::Relaxed);
    obs.rejected(retry_after.as_duration());
    RateLimited::new(retry_after.as_duration())
}

impl<S, C, Req> Service<Req> for RateLimit<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: SleepClock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is the inner service's: the limiter decides per call, so a
        // connection that polls readiness and idles takes no slot.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        // The one clock read of this call.
        let now = shared.clock.now();
        let verdict = if shared.max_wait.is_zero() {
            shared.gcra.check(now).map(|()| Nanos::ZERO)
        } else {
            shared.gcra.reserve(now, shared.max_wait)
        };
        dispatch(
            &mut self.inner,
            req,
            verdict,
            now,
            &shared.clock,
            &shared.rejected,
            &shared.obs,
        )
    }
}

/// A service limited per key; made by [`KeyedRateLimitLayer`](super::KeyedRateLimitLayer).
pub struct KeyedRateLimit<S, K, F, C = TokioClock, H = RandomState> {
    inner: S,
    shared: Arc<Keyed<K, F, C, H>>,
}

impl<S, K, F, C, H> KeyedRateLimit<S, K, F, C, H> {
    pub(super) fn new(inner: S, shared: Arc<Keyed<K, F, C, H>>) -> Self {
        KeyedRateLimit { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, K, F, C, H> Clone for KeyedRateLimit<S, K, F, C, H> {
    fn clone(&self) -> Self {
        KeyedRateLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, K, F, C, H> fmt::Debug for KeyedRateLimit<S, K, F, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("store", &self.shared.store)
            .finish()
    }
}

impl<S, K, F, C, H, Req> Service<Req> for KeyedRateLimit<S, K, F, C, H>
where
    H: BuildHasher,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
    F: Fn(&Req) -> K,
    C: SleepClock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        let key = (shared.key)(&req);
        // The one clock read of this call.
        let now = shared.clock.now();
        let verdict = if shared.max_wait.is_zero() {
            shared.store.check(key, now).map(|()| Nanos::ZERO)
        } else {
            shared.store.reserve(key, now, shared.max_wait)
        };
        dispatch(
            &mut self.inner,
            req,
            verdict,
            now,
            &shared.clock,
            &shared.rejected,
            &shared.obs,
        )
    }
}
