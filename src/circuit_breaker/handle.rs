//! A cheap, cloneable handle to one breaker: read it, and control it by hand.

use super::layer::Shared;
use crate::clock::TokioClock;
#[cfg(feature = "health")]
use buttress_core::breaker::Peek;
use buttress_core::breaker::{Metrics, State};
use std::sync::Arc;

/// Reads and controls the breaker of a [`CircuitBreakerLayer`](super::CircuitBreakerLayer)
/// (from [`handle`](super::CircuitBreakerLayer::handle)). Clones share the breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle {
    breaker: Arc<Shared>,
    /// The name given with [`named`](Self::named), over the breaker's own.
    name: Option<Arc<str>>,
}

impl CircuitBreakerHandle {
    pub(super) fn new(breaker: Arc<Shared>) -> Self {
        CircuitBreakerHandle {
            breaker,
            name: None,
        }
    }

    /// The same handle, reporting under `name` (health checks need unique names), as
    /// the bulkhead's and the rate limiter's handles do. The breaker itself (its
    /// metrics, its listener's transitions) keeps its own name.
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`named`](Self::named), else the breaker's own (its
    /// builder's `name`), if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| self.breaker.name())
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// Whether a call made now would be admitted (as a probe, when the breaker is open
    /// and its wait is over), read without changing anything: the health source's view
    /// of an open breaker (see `crate::health`).
    #[cfg(feature = "health")]
    pub(crate) fn would_admit(&self) -> bool {
        self.breaker.peek(|| self.breaker.extension().now()) == Peek::Admit
    }

    /// A snapshot of the state, the window's counts and rates, and the rejections.
    pub fn metrics(&self) -> Metrics {
        self.breaker.metrics(self.breaker.extension().now())
    }

    /// Rejects every call until [`reset`](Self::reset) or [`disable`](Self::disable).
    pub fn force_open(&self) {
        self.breaker.force_open(self.breaker.extension().now())
    }

    /// Lets every call through and records nothing until [`reset`](Self::reset) or
    /// [`force_open`](Self::force_open).
    pub fn disable(&self) {
        self.breaker.disable(self.breaker.extension().now())
    }

    /// Closes the breaker with an empty window, from any state.
    pub fn reset(&self) {
        self.breaker.reset(self.breaker.extension().now())
    }

    /// The clock the breaker's times are on (to turn a transition's `at` into an
    /// instant with [`TokioClock::instant_at`]). With the builder's `quanta_clock`
    /// the times are read from the time-stamp counter, started at the same moment:
    /// the mapping holds as long as tokio's time is not paused.
    pub fn clock(&self) -> TokioClock {
        self.breaker.extension().clock
    }
}
