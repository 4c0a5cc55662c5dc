//! The bulkhead's configuration.

use super::service::Bulkhead;
use super::shared::Shared;
use crate::ConfigError;
use crate::observe::BulkheadObs;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// A [`Layer`] that allows at most `max_concurrent` calls in flight, shared by every
/// service it makes (and their clones).
///
/// Build it with [`BulkheadLayer::new`] (reject at once when full) or
/// [`BulkheadLayer::builder`] (waiting queue, backpressure).
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    pub(super) shared: Shared,
    /// The builder's name, which the handles report under by default.
    name: Option<Arc<str>>,
}

impl BulkheadLayer {
    /// At most `max_concurrent` calls in flight; a call over that is rejected at once
    /// with [`BulkheadFull`](super::error::BulkheadFull).
    pub fn new(max_concurrent: usize) -> Result<Self, ConfigError> {
        Self::builder().max_concurrent(max_concurrent).build()
    }

    /// A builder for the waiting and backpressure modes.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::default()
    }

    /// A handle reporting this bulkhead's in-flight and waiting counts.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            shared: self.shared.clone(),
            name: self.name.clone(),
        }
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.shared.obs().adopt(name);
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Bulkhead<S> {
        self.shared.obs().ensure();
        Bulkhead::new(inner, self.shared.clone())
    }
}

/// Configuration of a [`BulkheadLayer`].
#[derive(Debug, Clone, Default)]
pub struct BulkheadBuilder {
    max_concurrent: Option<usize>,
    max_wait: Option<Duration>,
    max_waiting: Option<usize>,
    backpressure: bool,
    name: Option<Arc<str>>,
}

impl BulkheadBuilder {
    /// Names the bulkhead for its metrics and tracing events (see
    /// [`observe`](crate::observe)); unnamed, it takes the name of the pipeline it is
    /// put in.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Calls allowed in flight at once (required, at least 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = Some(n);
        self
    }

    /// When full, wait up to `d` for a slot instead of rejecting at once. Waiters are
    /// served first come first served, in the order they join the queue: when their
    /// response futures are first polled (at once, for a future that is awaited
    /// straight after `call`, as `oneshot`, axum and hyper do); one whose wait runs out
    /// gets `BulkheadFull`. While it waits, a call keeps the inner service that was
    /// made ready for it, and whatever that readiness holds (a `Buffer` slot, say).
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = Some(d);
        self
    }

    /// How many calls may wait at once (default 1024 with `max_wait`); a call that finds
    /// the queue full is rejected at once.
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = Some(n);
        self
    }

    /// Take the slot in `poll_ready` (tower-style backpressure: the service is not
    /// ready while full) instead of in the response future. A service made ready then
    /// holds its slot until `call`, or until it is dropped.
    pub fn backpressure(mut self, on: bool) -> Self {
        self.backpressure = on;
        self
    }

    /// The layer, or the first refused field.
    pub fn build(self) -> Result<BulkheadLayer, ConfigError> {
        let max = self
            .max_concurrent
            .ok_or_else(|| ConfigError::new("max_concurrent", "is required"))?;
        if max == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        // tokio's semaphore holds at most usize::MAX >> 3 permits.
        if max > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            ));
        }
        if self.backpressure && (self.max_wait.is_some() || self.max_waiting.is_some()) {
            return Err(ConfigError::new(
                "backpressure",
                "waits in poll_ready; it cannot be combined with max_wait or max_waiting",
            ));
        }
        if self.max_waiting.is_some() && self.max_wait.is_none() {
            return Err(ConfigError::new("max_waiting", "needs max_wait to be set"));
        }
        // The waiting gauge and wait histogram exist only when calls may wait.
        let obs = BulkheadObs::new(self.name.as_ref(), self.max_wait.is_some());
        let shared = if self.backpressure {
            Shared::backpressure(max, obs)
        } else if let Some(max_wait) = self.max_wait {
            let max_waiting = self.max_waiting.unwrap_or(1024);
            if max_waiting == 0 {
                return Err(ConfigError::new(
                    "max_waiting",
                    "must be at least 1 (leave max_wait unset to never wait)",
                ));
            }
            Shared::queued(max, max_wait, max_waiting, obs)?
        } else {
            Shared::reject(max, obs)?
        };
        Ok(BulkheadLayer {
            shared,
            name: self.name,
        })
    }
}

/// A view of one bulkhead's counts, for metrics and health checks.
///
/// With the `health` feature it is a health source: healthy while a slot is free and
/// nobody waits, degraded when full or when calls are waiting.
#[derive(Debug, Clone)]
pub struct BulkheadHandle {
    shared: Shared,
    name: Option<std::sync::Arc<str>>,
}

impl BulkheadHandle {
    /// The same handle, reporting under `name` (health checks need unique names).
    pub fn named(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`named`](Self::named), else the bulkhead's own (its
    /// builder's [`name`](BulkheadBuilder::name)), if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Calls holding a slot right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// Calls waiting in the queue for a slot right now (waiting mode, `max_wait`). In
    /// backpressure mode callers wait in `poll_ready`, before there is a call, and
    /// are not counted: this is 0 there; a full bulkhead shows as `available() == 0`.
    pub fn waiting(&self) -> usize {
        self.shared.waiting()
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.shared.max_concurrent() - self.in_flight().min(self.shared.max_concurrent())
    }

    /// The configured maximum in flight.
    pub fn max_concurrent(&self) -> usize {
        self.shared.max_concurrent()
    }
}
