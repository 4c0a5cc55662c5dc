//! The resilience pipeline: every layer, in the one order that works.
//!
//! [`Resilience`] takes any of the seven buttress layers and yields one [`Layer`] that
//! applies them in a fixed order, whatever order they were given in:
//!
//! ```text
//! outermost                                                           innermost
//! fallback > timeout > retry (+ budget) > circuit breaker > rate limiter > attempt timeout > bulkhead > service
//! ```
//!
//! Each part keeps its own configuration type and its own errors; the pipeline only
//! decides where each one stands. The order is the one a resilient client needs:
//!
//! - **Fallback outermost**, so it sees the final outcome of everything inside it,
//!   including an overall timeout, and answers in their place.
//! - **Overall timeout outside retry**, so it bounds the whole exchange, waits between
//!   attempts included: the caller's deadline is never exceeded however many retries
//!   there are.
//! - **Retry outside the breaker**, so an open breaker's `CircuitOpen` reaches the retry
//!   with its `retry_after`: the retry waits that long (or gives up), rather than
//!   hammering a breaker that has already said no. The retry budget, inside the retry
//!   layer, keeps retries to a fraction of requests during an outage.
//! - **Breaker outside the rate limiter**, so the breaker counts what happens to calls
//!   that were sent: a per-attempt timeout (inside it) counts as a failure of the
//!   backend, while the limiter's and bulkhead's own rejections are local decisions that
//!   say nothing of the backend and are not counted (see
//!   [`circuit_breaker`](crate::circuit_breaker)).
//! - **Rate limiter outside the attempt timeout**, so time spent waiting for a rate
//!   slot is not charged to the attempt.
//! - **Attempt timeout outside the bulkhead**, so waiting for a bulkhead slot counts
//!   against the attempt (and so against the overall timeout), and a hung call is cut
//!   and its slot freed. An attempt cut while it still waits in the bulkhead's queue
//!   ends in `Elapsed` too, which the breaker counts: give the bulkhead a `max_wait`
//!   shorter than the attempt timeout, so that a full queue answers `BulkheadFull`
//!   (not counted) first.
//! - **Bulkhead innermost**, closest to the resource whose concurrency it protects:
//!   it holds a slot only while the call really runs.
//!
//! The pipeline has a name (an `Arc<str>`, set once when it is made) that metrics and
//! tracing events use to tell stacks apart (health reports use each handle's own name). A part given no name of its own takes the
//! pipeline's for its metrics and tracing events when it is put in (the attempt
//! timeout takes `<name>.attempt`); see [`observe`](crate::observe).
//!
//! ```
//! use buttress::pipeline::Resilience;
//! use buttress::{bulkhead::BulkheadLayer, circuit_breaker::CircuitBreakerLayer};
//! use buttress::{retry::RetryLayer, timeout::TimeoutLayer};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! // Configured in any order: the pipeline puts each part in its place.
//! let payments = Resilience::new("payments")
//!     .bulkhead(BulkheadLayer::new(64)?)
//!     .retry(RetryLayer::builder().max_attempts(3).build()?)
//!     .timeout(TimeoutLayer::new(Duration::from_secs(2))?)
//!     .circuit_breaker(CircuitBreakerLayer::builder().name("payments").build()?)
//!     .attempt_timeout(TimeoutLayer::new(Duration::from_millis(500))?);
//! assert_eq!(payments.name(), "payments");
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(payments)
//!     .service(service_fn(|amount: u64| async move { Ok::<_, std::io::Error>(amount * 2) }));
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! # Ok(())
//! # }
//! ```

use crate::bulkhead::BulkheadLayer;
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::fallback::FallbackLayer;
use crate::rate_limit::{KeyedRateLimitLayer, RateLimitLayer};
use crate::retry::RetryLayer;
use crate::timeout::TimeoutLayer;
use std::fmt;
use std::sync::Arc;
use tower_layer::{Identity, Layer};

mod sealed {
    use std::sync::Arc;

    pub trait Sealed {
        /// Takes the pipeline's name for metrics and tracing unless named already.
        fn adopt_name(&self, name: &Arc<str>);
    }
}

/// A rate limiter the pipeline accepts: [`RateLimitLayer`] or [`KeyedRateLimitLayer`].
pub trait RateLimitPart: sealed::Sealed {}

impl<C> sealed::Sealed for RateLimitLayer<C> {
    fn adopt_name(&self, name: &Arc<str>) {
        RateLimitLayer::adopt_name(self, name)
    }
}
impl<C> RateLimitPart for RateLimitLayer<C> {}
impl<K, F, C, H> sealed::Sealed for KeyedRateLimitLayer<K, F, C, H> {
    fn adopt_name(&self, name: &Arc<str>) {
        KeyedRateLimitLayer::adopt_name(self, name)
    }
}
impl<K, F, C, H> RateLimitPart for KeyedRateLimitLayer<K, F, C, H> {}

/// The resilience pipeline: up to seven buttress layers applied in the order of the
/// [module docs](self), whatever order they were configured in.
///
/// Each type parameter is one slot, [`Identity`] while unset. Setting a slot again
/// replaces what it held.
#[derive(Clone)]
pub struct Resilience<
    Fb = Identity,
    Ot = Identity,
    Rt = Identity,
    Cb = Identity,
    Rl = Identity,
    At = Identity,
    Bh = Identity,
> {
    name: Arc<str>,
    fallback: Fb,
    timeout: Ot,
    retry: Rt,
    circuit_breaker: Cb,
    rate_limit: Rl,
    attempt_timeout: At,
    bulkhead: Bh,
}

impl Resilience {
    /// An empty pipeline named `name`. The name is fixed for the pipeline's life.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Resilience {
            name: name.into(),
            fallback: Identity::new(),
            timeout: Identity::new(),
            retry: Identity::new(),
            circuit_breaker: Identity::new(),
            rate_limit: Identity::new(),
            attempt_timeout: Identity::new(),
            bulkhead: Identity::new(),
        }
    }
}

impl<Fb, Ot, Rt, Cb, Rl, At, Bh> Resilience<Fb, Ot, Rt, Cb, Rl, At, Bh> {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pipeline's name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The fallback, outermost: answers in place of any failure from inside.
    pub fn fallback<H, P>(
        self,
        layer: FallbackLayer<H, P>,
    ) -> Resilience<FallbackLayer<H, P>, Ot, Rt, Cb, Rl, At, Bh> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: layer,
            timeout: self.timeout,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            rate_limit: self.rate_limit,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The overall timeout: bounds the whole call, every attempt and wait included.
    pub fn timeout<T>(
        self,
        layer: TimeoutLayer<T>,
    ) -> Resilience<Fb, TimeoutLayer<T>, Rt, Cb, Rl, At, Bh> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: layer,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            rate_limit: self.rate_limit,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The retry, with its budget: around the breaker, so it honours `retry_after`.
    pub fn retry<P, C, L>(
        self,
        layer: RetryLayer<P, C, L>,
    ) -> Resilience<Fb, Ot, RetryLayer<P, C, L>, Cb, Rl, At, Bh> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: self.timeout,
            retry: layer,
            circuit_breaker: self.circuit_breaker,
            rate_limit: self.rate_limit,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The circuit breaker: counts every attempt that was sent, timeouts included.
    pub fn circuit_breaker<C>(
        self,
        layer: CircuitBreakerLayer<C>,
    ) -> Resilience<Fb, Ot, Rt, CircuitBreakerLayer<C>, Rl, At, Bh> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: self.timeout,
            retry: self.retry,
            circuit_breaker: layer,
            rate_limit: self.rate_limit,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The rate limiter, direct ([`RateLimitLayer`]) or keyed ([`KeyedRateLimitLayer`]).
    pub fn rate_limit<L: RateLimitPart>(self, layer: L) -> Resilience<Fb, Ot, Rt, Cb, L, At, Bh> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: self.timeout,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            rate_limit: layer,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The per-attempt timeout: cuts one attempt (retried, and counted by the breaker).
    pub fn attempt_timeout<T>(
        self,
        layer: TimeoutLayer<T>,
    ) -> Resilience<Fb, Ot, Rt, Cb, Rl, TimeoutLayer<T>, Bh> {
        layer.adopt_name(&format!("{}.attempt", self.name).into());
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: self.timeout,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            rate_limit: self.rate_limit,
            attempt_timeout: layer,
            bulkhead: self.bulkhead,
        }
    }

    /// The bulkhead, innermost: bounds the calls in flight to the service.
    pub fn bulkhead(
        self,
        layer: BulkheadLayer,
    ) -> Resilience<Fb, Ot, Rt, Cb, Rl, At, BulkheadLayer> {
        layer.adopt_name(&self.name);
        Resilience {
            name: self.name,
            fallback: self.fallback,
            timeout: self.timeout,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            rate_limit: self.rate_limit,
            attempt_timeout: self.attempt_timeout,
            bulkhead: layer,
        }
    }

    /// Wraps `service` in the pipeline (the same as [`Layer::layer`]).
    pub fn service<S>(&self, service: S) -> <Self as Layer<S>>::Service
    where
        Self: Layer<S>,
    {
        self.layer(service)
    }

    /// The parts that are set, outermost first, by their slot names.
    pub fn parts(&self) -> Vec<&'static str> {
        let slots: [(&'static str, bool); 7] = [
            ("fallback", is_set::<Fb>()),
            ("timeout", is_set::<Ot>()),
            ("retry", is_set::<Rt>()),
            ("circuit_breaker", is_set::<Cb>()),
            ("rate_limit", is_set::<Rl>()),
            ("attempt_timeout", is_set::<At>()),
            ("bulkhead", is_set::<Bh>()),
        ];
        slots
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

/// Whether a slot holds a layer rather than [`Identity`].
fn is_set<T>() -> bool {
    std::any::type_name::<T>() != std::any::type_name::<Identity>()
}

impl<S, Fb, Ot, Rt, Cb, Rl, At, Bh> Layer<S> for Resilience<Fb, Ot, Rt, Cb, Rl, At, Bh>
where
    Bh: Layer<S>,
    At: Layer<Bh::Service>,
    Rl: Layer<At::Service>,
    Cb: Layer<Rl::Service>,
    Rt: Layer<Cb::Service>,
    Ot: Layer<Rt::Service>,
    Fb: Layer<Ot::Service>,
{
    type Service = Fb::Service;

    fn layer(&self, service: S) -> Self::Service {
        let s = self.bulkhead.layer(service);
        let s = self.attempt_timeout.layer(s);
        let s = self.rate_limit.layer(s);
        let s = self.circuit_breaker.layer(s);
        let s = self.retry.layer(s);
        let s = self.timeout.layer(s);
        self.fallback.layer(s)
    }
}

impl<Fb, Ot, Rt, Cb, Rl, At, Bh> fmt::Debug for Resilience<Fb, Ot, Rt, Cb, Rl, At, Bh> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("name", &self.name)
            .field("parts", &self.parts())
            .finish()
    }
}
