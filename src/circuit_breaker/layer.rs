//! The layer: configuration, and the shared state every service it makes uses.

use super::handle::CircuitBreakerHandle;
use super::service::CircuitBreaker;
use crate::classify::DefaultClassifier;
use crate::clock::{Clock, Nanos, TokioClock};
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
            shards: Shards::new(assemble(Breaker::new(config), None, None, Fast::default())),
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
    /// The time-stamp counter, read instead of `clock` when the builder asked for it;
    /// started with `clock`, so both read time since the layer was built.
    #[cfg_attr(not(feature = "quanta"), allow(dead_code))]
    pub(super) fast: Fast,
    /// The instruments (zero-sized without the `metrics` and `tracing` features).
    pub(super) obs: BreakerObs,
}

/// The breaker's optional fast clock (empty without the `quanta` feature).
#[derive(Debug, Default)]
pub(super) struct Fast(#[cfg(feature = "quanta")] Option<crate::clock::QuantaClock>);

impl Ext {
    /// The breaker's time: since the layer was built, on the clock it was built with.
    #[inline]
    pub(super) fn now(&self) -> Nanos {
        #[cfg(feature = "quanta")]
        if let Some(fast) = &self.fast.0 {
            return fast.now();
        }
        self.clock.now()
    }
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
fn assemble(
    mut breaker: Breaker,
    name: Option<Arc<str>>,
    user: Option<Listener>,
    fast: Fast,
) -> Arc<Shared> {
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
        fast,
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

/// Shows the breaker's current state in its instruments' state gauge (just
/// registered), with its generation, both from one read: the instruments keep the
/// newer of it and of a transition whose listener runs meanwhile.
#[cold]
fn show_current_state(breaker: &Shared) {
    let m = breaker.metrics(breaker.extension().now());
    breaker.extension().obs.show_state(m.state, m.generation);
}

impl<C> CircuitBreakerLayer<C> {
    /// Classifies outcomes with `classifier` instead (a [`Classify`] policy, or any
    /// `Fn(&Result<T, BoxError>) -> Outcome`: the breaker boxes the inner error before
    /// classifying it). The breaker's state stays shared.
    ///
    /// Whatever the classifier, a buttress rejection from a layer inside the breaker (a
    /// rate limiter's `RateLimited`, a bulkhead's `BulkheadFull`, an inner breaker's
    /// `CircuitOpen`, the gRPC deadline layer's `DeadlinePassed`) is ignored: the
    /// backend was not asked, so it says nothing about the backend. A timeout's
    /// `Elapsed` is classified like any error (a failure by default), and so is a retry
    /// budget's `BudgetExhausted` (a retry inside the breaker refused after an attempt
    /// failed), unless the attempt it follows was itself refused by such a layer.
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
            show_current_state(breaker);
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
            show_current_state(breaker);
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
    fast: Fast,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .field("listener", &self.listener.is_some())
            .field("fast_clock", &self.fast)
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
        /// Trip at or above this failure rate, in percent, in `(0, 100]` (0 is refused:
        /// successes alone would reach it). Default: 50.
        failure_rate_threshold(percent: f64);
        /// Trip at or above this slow-call rate, in percent, in `(0, 100]` (0 is
        /// refused). Default: 100.
        slow_call_rate_threshold(percent: f64);
        /// A call taking at least this long counts as slow. Default: not tracked.
        slow_call_duration(duration: Duration);
        /// The first open wait. Default: 30 s.
        wait_in_open(wait: Duration);
        /// Growth of the open wait per consecutive re-open, and its cap. Default: 2, 5 min
        /// (or `wait_in_open` if longer).
        open_backoff(multiplier: f64, max_wait: Duration);
        /// Growth of the open wait per consecutive re-open, keeping the cap (the one
        /// given to `open_backoff`, else the default). Default: 2.
        open_backoff_multiplier(multiplier: f64);
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

    /// Reads time from the CPU's time-stamp counter ([`QuantaClock`], under 10 ns a read)
    /// instead of tokio's clock (about 20 to 25 ns on a typical virtual machine)
    /// (feature `quanta`).
    ///
    /// A closed breaker without a time window or slow-call tracking reads no clock at
    /// all, so this changes nothing there; an open breaker reads it on every call (is
    /// the wait over?), and so do time windows and slow-call tracking. The counter does
    /// **not** follow tokio's paused time: tests that drive a breaker with
    /// `tokio::time::pause()` keep the default. [`CircuitBreakerHandle::clock`] still
    /// maps the breaker's times onto tokio instants; both clocks start when the layer
    /// is built and run at the pace of real time.
    ///
    /// [`QuantaClock`]: crate::clock::QuantaClock
    /// [`CircuitBreakerHandle::clock`]: super::CircuitBreakerHandle::clock
    #[cfg(feature = "quanta")]
    pub fn quanta_clock(mut self) -> Self {
        self.fast = Fast(Some(crate::clock::QuantaClock::new()));
        self
    }

    /// Checks the configuration and builds the layer. The layer's clock starts now.
    pub fn build(self) -> Result<CircuitBreakerLayer, ConfigError> {
        let breaker = Breaker::new(self.config.build()?);
        Ok(CircuitBreakerLayer {
            shards: Shards::new(assemble(breaker, self.name, self.listener, self.fast)),
            classifier: DefaultClassifier,
        })
    }
}

#[cfg(all(test, feature = "quanta"))]
mod tests {
    use super::*;
    use crate::BoxError;
    use crate::circuit_breaker::error::CircuitOpen;
    use buttress_core::breaker::State;
    use tower::{Service, ServiceExt};

    /// A breaker on a mocked time-stamp counter: open waits end on the counter's time,
    /// to the nanosecond, and not on tokio's.
    #[tokio::test(start_paused = true)]
    async fn the_quanta_clock_decides_when_the_open_wait_ends() {
        let (clock, mock) = crate::clock::QuantaClock::mocked();
        let mut builder = CircuitBreakerLayer::builder()
            .count_window(4)
            .minimum_calls(4)
            .wait_in_open(Duration::from_millis(100));
        builder.fast = Fast(Some(clock));
        let layer = builder.build().unwrap();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = failing.clone();
        let mut svc = layer.layer(tower::service_fn(move |_: ()| {
            let fail = f.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if fail {
                    Err::<(), BoxError>("down".into())
                } else {
                    Ok(())
                }
            }
        }));
        for _ in 0..4 {
            assert!(svc.ready().await.unwrap().call(()).await.is_err());
        }
        assert_eq!(layer.handle().state(), State::Open);
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        let open = err.downcast_ref::<CircuitOpen>().expect("a rejection");
        assert_eq!(open.retry_after(), Some(Duration::from_millis(100)));

        // tokio's time moving on does not end the wait: the counter decides.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(
            svc.ready()
                .await
                .unwrap()
                .call(())
                .await
                .unwrap_err()
                .is::<CircuitOpen>()
        );
        mock.increment(Duration::from_millis(100) - Duration::from_nanos(1));
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<CircuitOpen>()
                .expect("still open")
                .retry_after(),
            Some(Duration::from_nanos(1))
        );
        mock.increment(Duration::from_nanos(1));
        failing.store(false, std::sync::atomic::Ordering::SeqCst);
        svc.ready()
            .await
            .unwrap()
            .call(())
            .await
            .expect("a probe is admitted");
        assert_eq!(layer.handle().state(), State::HalfOpen);
    }
}
