//! The retry service.

use super::future::{Attempts, ResponseFuture};
use super::layer::{Proto, Shards, Shared};
use super::policy::{ByClone, CloneRequest, DefaultPolicy, Listener, NoListener, Policy};
use crate::clock::TokioClock;
use crate::error::BoxError;
use buttress_core::budget::RetryBudget;
use buttress_core::{Clock, Nanos};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Retries the calls of `S`; made by [`RetryLayer`](super::RetryLayer).
pub struct Retry<S, P = DefaultPolicy, C = ByClone, L = NoListener> {
    inner: S,
    /// The layer's shared state and the prototype of `inner` that retries clone,
    /// with their per-thread handles.
    shared: Arc<Shards<S>>,
    policy: P,
    cloner: C,
    listener: L,
    /// The jitter seed of the next call; advanced by a constant per call.
    seed: u64,
    /// This service's handle on the shared state (see [`crate::shard`]): that of the
    /// thread that first called it.
    slot: u8,
    /// What every call reads, copied here from the layer's state when the service is
    /// made, so that a call finds it without following three pointers. Measured: read
    /// through the shared state instead, a call with the budget costs about 2 ns more
    /// and the full pipeline about 5; the price is one more reference count (the
    /// budget's) when the service is cloned, not per call.
    hot: Hot,
}

/// The part of the layer's state a call reads whatever happens.
#[derive(Clone)]
struct Hot {
    budget: Option<Arc<RetryBudget>>,
    clock: TokioClock,
    /// A deadline is set: the call's start is read.
    needs_clock: bool,
    /// More than one attempt is allowed: the request is copied.
    may_retry: bool,
}

impl Hot {
    fn of(shared: &Shared) -> Self {
        Hot {
            budget: shared.budget.clone(),
            clock: shared.config.clock,
            needs_clock: shared.config.needs_clock,
            may_retry: shared.config.max_attempts > 1,
        }
    }
}

/// Spacing between the seeds of consecutive calls of one service (the golden ratio;
/// `SmallRng::seed_from_u64` mixes the seed further).
const CALL_GAP: u64 = 0x9E37_79B9_7F4A_7C15;

impl<S, P, C, L> Retry<S, P, C, L> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, policy: P, cloner: C, listener: L) -> Self
    where
        S: Clone,
    {
        let seed = shared.next_seed();
        let hot = Hot::of(&shared);
        let shared = crate::shard::Shards::new(Arc::new(Proto::new(shared, inner.clone())));
        Retry {
            inner,
            shared,
            policy,
            cloner,
            listener,
            seed,
            slot: crate::shard::UNSET,
            hot,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably: the one first attempts go through. Retries go
    /// through clones of the service as the layer wrapped it, which this does not
    /// change (see the [module docs](super)).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, owned.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P: Clone, C: Clone, L: Clone> Clone for Retry<S, P, C, L> {
    /// A clone shares the budget and draws jitter from its own seed stream.
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            seed: self.shared.get().shared.next_seed(),
            slot: crate::shard::UNSET,
            hot: self.hot.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            cloner: self.cloner.clone(),
            listener: self.listener.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, C: fmt::Debug, L> fmt::Debug for Retry<S, P, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.shared.get().shared.config)
            .field("policy", &self.policy)
            .field("clone_request", &self.cloner)
            .finish_non_exhaustive()
    }
}

impl<S, Req, P, C, L> Service<Req> for Retry<S, P, C, L>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response> + Clone,
    C: CloneRequest<Req> + Clone,
    L: Listener + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, P, C, L>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let hot = &self.hot;
        // A clock read only when the deadline needs one.
        let start = if hot.needs_clock {
            hot.clock.now()
        } else {
            Nanos::ZERO
        };
        // The future reaches the config, the budget, the instruments and the prototype
        // through one reference, taken on this thread's handle (see `crate::shard`).
        let shards = &*self.shared;
        let handle = shards.at(&mut self.slot).clone();
        if let Some(b) = &hot.budget {
            // In the lane of this service's thread, so that threads do not write one
            // counter (see the budget's docs).
            let lane = usize::from(self.slot);
            if hot.needs_clock {
                b.deposit_in(lane, start);
            } else {
                // At the budget's cached epoch: no clock read (but one in 64).
                let clock = hot.clock;
                b.deposit_cached_in(lane, || clock.now());
            }
        }
        handle.get().shared.obs.attempt();
        let next = if hot.may_retry {
            self.cloner.clone_request(&req)
        } else {
            None
        };
        let seed = self.seed;
        self.seed = self.seed.wrapping_add(CALL_GAP);
        // Call the service that was made ready. Retries go through clones of the
        // prototype, so this call clones no service.
        let fut = self.inner.call(req);
        ResponseFuture::new(
            fut,
            next,
            Attempts::new(
                handle,
                start,
                seed,
                self.policy.clone(),
                self.cloner.clone(),
                self.listener.clone(),
            ),
        )
    }
}
