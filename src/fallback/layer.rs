//! The fallback's configuration.

use super::handler::{FromFn, ToService, Value};
use super::service::Fallback;
use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::observe::FallbackObs;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// A [`Layer`] that answers a failed call from a fallback: a value, a closure given the
/// failed result, or another service.
///
/// By default every `Err` is a failure; [`classify`](Self::classify) decides on the whole
/// result instead, and [`on_error`](Self::on_error) falls back only on errors matching a
/// predicate.
#[derive(Debug, Clone)]
pub struct FallbackLayer<H, P = DefaultClassifier> {
    handler: H,
    policy: P,
    obs: FallbackObs,
}

impl<V: Clone> FallbackLayer<Value<V>> {
    /// On failure, answer `value` (cloned per call: keep it cheap, or use
    /// [`from_fn`](FallbackLayer::from_fn)).
    pub fn value(value: V) -> Self {
        FallbackLayer {
            handler: Value(value),
            policy: DefaultClassifier,
            obs: FallbackObs::new(None, ()),
        }
    }
}

impl<F: Clone> FallbackLayer<FromFn<F>> {
    /// On failure, answer `f(failed_result)`; the closure gets the original error (or
    /// the `Ok` the classifier called a failure).
    pub fn from_fn(f: F) -> Self {
        FallbackLayer {
            handler: FromFn(f),
            policy: DefaultClassifier,
            obs: FallbackObs::new(None, ()),
        }
    }
}

impl<S: Clone> FallbackLayer<ToService<S>> {
    /// On failure, call `service` with a clone of the request.
    pub fn service(service: S) -> Self {
        FallbackLayer {
            handler: ToService(service),
            policy: DefaultClassifier,
            obs: FallbackObs::new(None, ()),
        }
    }
}

impl<H, P> FallbackLayer<H, P> {
    /// Fall back when `policy` classifies the whole result as a failure (an `Ok` such
    /// as an HTTP 503 included); `Success` and `Ignored` pass through.
    pub fn classify<P2>(self, policy: P2) -> FallbackLayer<H, P2> {
        FallbackLayer {
            handler: self.handler,
            policy,
            obs: self.obs,
        }
    }

    /// Fall back only on errors for which `predicate` holds; other errors pass through.
    pub fn on_error<F>(self, predicate: F) -> FallbackLayer<H, OnError<F>> {
        self.classify(OnError(predicate))
    }

    /// Names the fallback for its metrics and tracing events (see
    /// [`observe`](crate::observe)); unnamed, it takes the name of the pipeline it is
    /// put in.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.obs = FallbackObs::new(Some(&name.into()), ());
        self
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.obs.adopt(name);
    }
}

impl<S, H: Clone, P: Clone> Layer<S> for FallbackLayer<H, P> {
    type Service = Fallback<S, H, P>;

    fn layer(&self, inner: S) -> Self::Service {
        self.obs.ensure();
        Fallback::new(
            inner,
            self.handler.clone(),
            self.policy.clone(),
            self.obs.clone(),
        )
    }
}

/// A classifier from an error predicate: `Err(e)` with `predicate(&e)` is a failure,
/// anything else a success.
#[derive(Clone)]
pub struct OnError<F>(F);

impl<F> fmt::Debug for OnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnError")
    }
}

impl<T, E, F> Classify<T, E> for OnError<F>
where
    F: Fn(&E) -> bool,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Err(e) if (self.0)(e) => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}
