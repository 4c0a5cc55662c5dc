//! The layer: configuration, and the shared state every service it makes uses.

use super::handle::CircuitBreakerHandle;
use super::service::CircuitBreaker;
use crate::classify::DefaultClassifier;
use crate::clock::TokioClock;
use crate::observe::BreakerObs;
use buttress_core::ConfigError;
use buttress_core::breaker::{
    Breaker, BreakerConfig, BreakerConfigBuilder, BreakerRef, Listener, Transition,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// Puts a circuit breaker in front of a service.
///
/// The breaker's state lives behind an `Arc` in the layer: every service the layer makes,
/// and every clone of those, shares one breaker. Two independent breakers are two layer
/// values. Build one with [`CircuitBreakerLayer::builder`]; outcomes are classified by
/// `C` (by default [`DefaultClassifier`]: `Err` fails, `Ok` succeeds).
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    pub(super) shards: Arc<Shards>,
    pub(super) classifier: C,
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", self.shards.get())
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// A builder with every default (see [`BreakerConfigBuilder`] for them).
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// A layer from a configuration built with [`BreakerConfig::builder`].
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreakerLayer {
            shards: Shards::new(assemble(Breaker::new(config), None, None)),
            classifier: DefaultClassifier,
        }
    }
}

/// The breaker as the layer shares it: carrying its clock and its instruments, both
/// reachable from every permit, so that neither the services nor their futures carry
/// a copy.
pub(super) type Shared = Breaker<Ext>;

/// What the layer keeps in the core breaker's extension slot.
#[derive(Debug)]
pub(super) struct Ext {
    /// The layer's clock: tokio's time since the layer was built.
    pub(super) clock: TokioClock,
    /// The instruments (zero-sized without the `metrics` and `tracing` features).
    pub(super) obs: BreakerObs,
}

/// The breaker's handles for its permits (see [`crate::shard`]).
pub(super) type Shards = crate::shard::Shards<Shared>;

/// One handle, held by a permit.
pub(super) type ShardRef = crate::shard::ShardRef<Shared>;

impl BreakerRef for ShardRef {
    type Ext = Ext;

    #[inline]
    fn breaker(&self) -> &Shared {
        self.get()
    }
}

/// The shared breaker: named, with its instruments, and with a listener that records
/// each transition to them (with `metrics` or `tracing`) before `user`'s runs.
fn assemble(mut breaker: Breaker, name: Option<Arc<str>>, user: Option<Listener>) -> Arc<Shared> {
    let obs = BreakerObs::new(name.as_ref(), breaker.times_calls());
    if let Some(name) = name {
        breaker = breaker.with_name(name);
    }
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    let listener = Some(observed(obs.clone(), user));
    #[cfg(not(any(feature = "metrics", feature = "tracing")))]
    let listener = user;
    if let Some(listener) = listener {
        breaker = breaker.with_listener(listener);
    }
    Arc::new(breaker.with_extension(Ext {
        clock: TokioClock::new(),
        obs,
    }))
}

/// With the `metrics` or `tracing` feature, every transition is recorded to the
/// instruments (the state gauge, the transitions counter, an `INFO` event on the
/// `buttress::circuit_breaker` target) before the user's listener runs.
#[cfg(any(feature = "metrics", feature = "tracing"))]
fn observed(obs: BreakerObs, user: Option<Listener>) -> Listener {
    Arc::new(move |t: &Transition<'_>| {
        obs.transition(t);
        if let Some(user) = &user {
            user(t);
        }
    })
}

impl<C> CircuitBreakerLayer<C> {
    /// Classifies outcomes with `classifier` instead (a [`Classify`] policy, or any
    /// `Fn(&Result<T, BoxError>) -> Outcome`: the breaker boxes the inner error before
    /// classifying it). The breaker's state stays shared.
    ///
    /// Whatever the classifier, a buttress rejection from a layer inside the breaker (a
    /// rate limiter's `RateLimited`, a bulkhead's `BulkheadFull`, an inner breaker's
    /// `CircuitOpen`, a retry budget's `BudgetExhausted`) is ignored: the backend was
    /// not asked, so it says nothing about the backend. A timeout's `Elapsed` is
    /// classified like any error (a failure by default).
    ///
    /// [`Classify`]: crate::classify::Classify
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            shards: self.shards,
            classifier,
        }
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        let breaker = self.shards.get();
        let obs = &breaker.extension().obs;
        if obs.adopt(name) {
            obs.show_state(breaker.state());
        }
    }

    /// A handle to read the breaker's state and metrics and to control it by hand.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(Arc::clone(self.shards.arc()))
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let breaker = self.shards.get();
        let obs = &breaker.extension().obs;
        if obs.ensure() {
            obs.show_state(breaker.state());
        }
        CircuitBreaker::new(inner, Arc::clone(&self.shards), self.classifier.clone())
    }
}

/// Builds a [`CircuitBreakerLayer`]: the breaker's configuration (defaults listed at
/// [`BreakerConfigBuilder`]), plus a name and a transition listener.
#[derive(Default)]
pub struct CircuitBreakerBuilder {
    config: BreakerConfigBuilder,
    name: Option<Arc<str>>,
    listener: Option<Listener>,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

macro_rules! delegate {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $($arg: $ty),*) -> Self {
                self.config = self.config.$name($($arg),*);
                self
            }
        )*
    };
}

impl CircuitBreakerBuilder {
    delegate! {
        /// Rates over the last `calls` outcomes (a sliding window). Default: 100.
        count_window(calls: u32);
        /// Rates over the last `duration`, in `buckets` buckets.
        time_window(duration: Duration, buckets: u32);
        /// Outcomes the window must hold before the breaker may trip. Default: 10.
        minimum_calls(calls: u32);
        /// Trip at or above this failure rate, in percent (0..=100). Default: 50.
        failure_rate_threshold(percent: f64);
        /// Trip at or above this slow-call rate, in percent (0..=100). Default: 100.
        slow_call_rate_threshold(percent: f64);
        /// A call taking at least this long counts as slow. Default: not tracked.
        slow_call_duration(duration: Duration);
        /// The first open wait. Default: 30 s.
        wait_in_open(wait: Duration);
        /// Growth of the open wait per consecutive re-open, and its cap. Default: 2, 5 min
        /// (or `wait_in_open` if longer).
        open_backoff(multiplier: f64, max_wait: Duration);
        /// Up to this fraction (0..=1) of each open wait is taken off at random. Default: 0.
        open_jitter(fraction: f64);
        /// Probes admitted in half-open (1..=255). Default: 5.
        permitted_calls_in_half_open(calls: u32);
        /// Re-open when the probes have not reported within this. Default: 60 s.
        max_wait_in_half_open(wait: Option<Duration>);
    }

    /// Names the breaker; the name is passed to the listener.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Calls `listener` on every state transition (name, from, to, at), on the thread
    /// that made it. `at` is on the layer's clock: time since the layer was built, which
    /// follows tokio's (paused) time. Without a listener, transitions cost nothing extra.
    pub fn on_transition(
        mut self,
        listener: impl Fn(&Transition<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Checks the configuration and builds the layer. The layer's clock starts now.
    pub fn build(self) -> Result<CircuitBreakerLayer, ConfigError> {
        let breaker = Breaker::new(self.config.build()?);
        Ok(CircuitBreakerLayer {
            shards: Shards::new(assemble(breaker, self.name, self.listener)),
            classifier: DefaultClassifier,
        })
    }
}
