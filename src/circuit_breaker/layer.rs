//! The layer: configuration, and the shared state every service it makes uses.

use super::handle::CircuitBreakerHandle;
use super::service::CircuitBreaker;
use crate::classify::DefaultClassifier;
use crate::clock::TokioClock;
use buttress_core::ConfigError;
use buttress_core::breaker::{Breaker, BreakerConfig, BreakerConfigBuilder, Listener, Transition};
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
    pub(super) breaker: Arc<Breaker>,
    pub(super) clock: TokioClock,
    pub(super) classifier: C,
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
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
            breaker: Arc::new(Breaker::new(config)),
            clock: TokioClock::new(),
            classifier: DefaultClassifier,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Classifies outcomes with `classifier` instead (a [`Classify`] policy, or any
    /// `Fn(&Result<T, E>) -> Outcome`). The breaker's state stays shared.
    ///
    /// [`Classify`]: crate::classify::Classify
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            clock: self.clock,
            classifier,
        }
    }

    /// A handle to read the breaker's state and metrics and to control it by hand.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(Arc::clone(&self.breaker), self.clock)
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(
            inner,
            Arc::clone(&self.breaker),
            self.clock,
            self.classifier.clone(),
        )
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
        let mut breaker = Breaker::new(self.config.build()?);
        if let Some(name) = self.name {
            breaker = breaker.with_name(name);
        }
        #[cfg(feature = "tracing")]
        let listener = Some(traced(self.listener));
        #[cfg(not(feature = "tracing"))]
        let listener = self.listener;
        if let Some(listener) = listener {
            breaker = breaker.with_listener(listener);
        }
        Ok(CircuitBreakerLayer {
            breaker: Arc::new(breaker),
            clock: TokioClock::new(),
            classifier: DefaultClassifier,
        })
    }
}

/// With the `tracing` feature, every transition is also an `info` event on the
/// `buttress::circuit_breaker` target, before the user's listener runs.
#[cfg(feature = "tracing")]
fn traced(user: Option<Listener>) -> Listener {
    Arc::new(move |t: &Transition<'_>| {
        tracing::info!(
            target: "buttress::circuit_breaker",
            breaker = t.name.unwrap_or(""),
            from = t.from.as_str(),
            to = t.to.as_str(),
            at = ?t.at,
            generation = t.generation,
            "circuit breaker transition"
        );
        if let Some(user) = &user {
            user(t);
        }
    })
}
