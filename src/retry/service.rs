//! The retry service.

use super::future::{Attempts, ResponseFuture};
use super::layer::{Proto, Shards, Shared};
use super::policy::{ByClone, CloneRequest, DefaultPolicy, Listener, NoListener, Policy};
use crate::clock::TokioClock;
use crate::error::BoxError;
use crate::shard::Handle;
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
    /// This service's handle on the shared state (see [`crate::shard`]): that of the
    /// thread that first called it.
    handle: Handle<Proto<S>>,
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
    before: Before,
    clock: TokioClock,
    /// More than one attempt is allowed: the request is copied.
    may_retry: bool,
}

/// What a call does before it is sent: one match, whatever is configured.
#[derive(Clone)]
enum Before {
    Nothing,
    /// Deposit into the budget (at its cached epoch: no clock read).
    Deposit(Arc<RetryBudget>),
    /// Read the call's start, for the deadline; and deposit at it, with a budget.
    Start(Option<Arc<RetryBudget>>),
}

impl Hot {
    fn of(shared: &Shared) -> Self {
        let before = match (&shared.budget, shared.config.needs_clock) {
            (None, false) => Before::Nothing,
            (Some(b), false) => Before::Deposit(Arc::clone(b)),
            (budget, true) => Before::Start(budget.clone()),
        };
        Hot {
            before,
            clock: shared.config.clock,
            may_retry: shared.config.max_attempts > 1,
        }
    }
}

impl<S, P, C, L> Retry<S, P, C, L> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, policy: P, cloner: C, listener: L) -> Self
    where
        S: Clone,
    {
        let hot = Hot::of(&shared);
        let shared = crate::shard::Shards::new(Arc::new(Proto::new(shared, inner.clone())));
        Retry {
            inner,
            shared,
            policy,
            cloner,
            listener,
            handle: Handle::new(),
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
    /// A clone shares the budget and the layer's jitter seeds.
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            handle: Handle::new(),
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
        // The future reaches the config, the budget, the instruments and the prototype
        // through one reference, taken on this thread's handle (see `crate::shard`).
        let handle = self.handle.get(&self.shared);
        // Deposits go to the lane of this service's thread, so that threads do not
        // write one counter (see the budget's docs).
        let start = match &hot.before {
            Before::Nothing => Nanos::ZERO,
            Before::Deposit(b) => {
                // At the budget's cached epoch: no clock read (but about one in 64 on a
                // busy lane, a few per slot on a quiet one: `refreshes_at`).
                let clock = hot.clock;
                b.deposit_cached_in(handle.lane(), || clock.now());
                Nanos::ZERO
            }
            // A clock read only when the deadline needs one.
            Before::Start(budget) => {
                let start = hot.clock.now();
                if let Some(b) = budget {
                    b.deposit_in(handle.lane(), start);
                }
                start
            }
        };
        handle.get().shared.obs.attempt();
        let handle = handle.clone();
        let next = if hot.may_retry {
            self.cloner.clone_request(&req)
        } else {
            None
        };
        // Call the service that was made ready. Retries go through clones of the
        // prototype, so this call clones no service.
        let fut = self.inner.call(req);
        ResponseFuture::new(
            fut,
            next,
            Attempts::new(
                handle,
                start,
                self.policy.clone(),
                self.cloner.clone(),
                self.listener.clone(),
            ),
        )
    }
}
