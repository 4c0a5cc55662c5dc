//! A whole pipeline from one configuration.

use super::layers::{BulkheadConfig, CircuitBreakerConfig, RateLimitConfig, RetryConfig};
use super::optional::OptionalService;
use crate::ConfigError;
use crate::bulkhead::{Bulkhead, BulkheadLayer};
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
use crate::rate_limit::{RateLimit, RateLimitLayer};
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// The settings of a whole pipeline: a name and a section for each part, every
/// section optional. [`build`](Self::build) makes a [`ConfiguredResilience`], which puts
/// the parts in the order of [`Resilience`](crate::Resilience).
///
/// ```json
/// {
///   "name": "payments",
///   "timeout": "2s",
///   "retry": { "max_attempts": 3 },
///   "circuit_breaker": { "minimum_calls": 20, "wait_in_open": "10s" },
///   "rate_limit": { "rate": 100, "burst": 20 },
///   "attempt_timeout": "300ms",
///   "bulkhead": { "max_concurrent": 64 }
/// }
/// ```
///
/// A section left out (or null) is not in the pipeline; an empty one (`"retry": {}`)
/// is, with every default. The fallback is not here: it answers with a value, a
/// closure or a service, which no file holds (see [`ConfiguredResilience`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ResilienceConfig {
    /// The pipeline's name, which its parts' metrics and tracing events use unless
    /// they are named themselves (the attempt timeout's is `<name>.attempt`). Required.
    pub name: String,
    /// The overall timeout: bounds the whole call, every attempt and wait included.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The retry, with its budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// The circuit breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// The rate limiter (direct: see [`RateLimitConfig`] for a keyed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// The per-attempt timeout.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<Duration>,
    /// The bulkhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadConfig>,
}

impl ResilienceConfig {
    /// Every configured part, built through its builder and named after the pipeline
    /// unless named itself, or the first [`ConfigError`].
    ///
    /// The error names the refused field as the part's builder does (`max_attempts`,
    /// `failure_rate_threshold`) and says which section it is in; a bad timeout is
    /// `timeout` or `attempt_timeout`, a missing or empty name is `name`.
    pub fn build(&self) -> Result<ConfiguredResilience, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new(
                "name",
                "is required: it names the pipeline's metrics and tracing events",
            ));
        }
        let name: Arc<str> = self.name.as_str().into();
        let timeout = |field: &'static str, d: Option<Duration>| {
            d.map(|d| {
                TimeoutLayer::new(d).map_err(|e| ConfigError::new(field, e.problem().to_owned()))
            })
            .transpose()
        };
        let pipeline = ConfiguredResilience {
            timeout: timeout("timeout", self.timeout)?,
            retry: section("retry", self.retry.as_ref(), RetryConfig::build)?,
            circuit_breaker: section(
                "circuit_breaker",
                self.circuit_breaker.as_ref(),
                CircuitBreakerConfig::build,
            )?,
            rate_limit: section(
                "rate_limit",
                self.rate_limit.as_ref(),
                RateLimitConfig::build,
            )?,
            attempt_timeout: timeout("attempt_timeout", self.attempt_timeout)?,
            bulkhead: section("bulkhead", self.bulkhead.as_ref(), BulkheadConfig::build)?,
            name,
        };
        pipeline.adopt_names();
        Ok(pipeline)
    }
}

/// Builds a section's layer, if the section is there; an error says which section.
fn section<C, L>(
    section: &'static str,
    config: Option<&C>,
    build: impl FnOnce(&C) -> Result<L, ConfigError>,
) -> Result<Option<L>, ConfigError> {
    config.map(build).transpose().map_err(|e| {
        ConfigError::new(
            e.field(),
            format!("{}, in section `{section}`", e.problem()),
        )
    })
}

/// The pipeline a [`ResilienceConfig`] describes: the layers of the sections it has,
/// applied in the order of [`Resilience`](crate::Resilience), outermost first:
/// timeout, retry, circuit breaker, rate limiter, attempt timeout, bulkhead.
///
/// It is a [`Layer`]; each part is an [`OptionalService`], the layer's service or the
/// inner service as is, so one type serves whatever sections a file has. Because the
/// retry may be there, the service must be `Clone` and so must requests (as for
/// [`RetryLayer`]'s default); for requests that are not (an HTTP request with a
/// streaming body), build the parts from their sections' builders
/// ([`RetryConfig::builder`] takes an HTTP retry policy) and put them in a
/// [`Resilience`](crate::Resilience).
///
/// Each part is reachable ([`circuit_breaker`](Self::circuit_breaker) for its handle,
/// for instance), and like every layer it shares its state with its clones. A fallback
/// goes outside it, as the pipeline puts it outermost:
/// `ServiceBuilder::new().layer(fallback).layer(configured)`.
#[derive(Debug, Clone)]
pub struct ConfiguredResilience {
    name: Arc<str>,
    timeout: Option<TimeoutLayer>,
    retry: Option<RetryLayer>,
    circuit_breaker: Option<CircuitBreakerLayer>,
    rate_limit: Option<RateLimitLayer>,
    attempt_timeout: Option<TimeoutLayer>,
    bulkhead: Option<BulkheadLayer>,
}

impl ConfiguredResilience {
    /// Gives the pipeline's name to every part not named itself, as
    /// [`Resilience`](crate::Resilience) does.
    fn adopt_names(&self) {
        let name = &self.name;
        if let Some(l) = &self.timeout {
            l.adopt_name(name);
        }
        if let Some(l) = &self.retry {
            l.adopt_name(name);
        }
        if let Some(l) = &self.circuit_breaker {
            l.adopt_name(name);
        }
        if let Some(l) = &self.rate_limit {
            l.adopt_name(name);
        }
        if let Some(l) = &self.attempt_timeout {
            l.adopt_name(&format!("{name}.attempt").into());
        }
        if let Some(l) = &self.bulkhead {
            l.adopt_name(name);
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The overall timeout, if configured.
    pub fn timeout(&self) -> Option<&TimeoutLayer> {
        self.timeout.as_ref()
    }

    /// The retry, if configured (its budget is [`RetryLayer::budget`]).
    pub fn retry(&self) -> Option<&RetryLayer> {
        self.retry.as_ref()
    }

    /// The circuit breaker, if configured (its handle is
    /// [`CircuitBreakerLayer::handle`]).
    pub fn circuit_breaker(&self) -> Option<&CircuitBreakerLayer> {
        self.circuit_breaker.as_ref()
    }

    /// The rate limiter, if configured.
    pub fn rate_limit(&self) -> Option<&RateLimitLayer> {
        self.rate_limit.as_ref()
    }

    /// The per-attempt timeout, if configured.
    pub fn attempt_timeout(&self) -> Option<&TimeoutLayer> {
        self.attempt_timeout.as_ref()
    }

    /// The bulkhead, if configured.
    pub fn bulkhead(&self) -> Option<&BulkheadLayer> {
        self.bulkhead.as_ref()
    }

    /// The parts that are configured, outermost first, named as
    /// [`Resilience::parts`](crate::Resilience::parts) names them.
    pub fn parts(&self) -> Vec<&'static str> {
        let slots: [(&'static str, bool); 6] = [
            ("timeout", self.timeout.is_some()),
            ("retry", self.retry.is_some()),
            ("circuit_breaker", self.circuit_breaker.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
            ("attempt_timeout", self.attempt_timeout.is_some()),
            ("bulkhead", self.bulkhead.is_some()),
        ];
        slots
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

/// The service of each part, innermost first.
type Bh<S> = OptionalService<Bulkhead<S>, S>;
type At<S> = OptionalService<Timeout<Bh<S>>, Bh<S>>;
type Rl<S> = OptionalService<RateLimit<At<S>>, At<S>>;
type Cb<S> = OptionalService<CircuitBreaker<Rl<S>>, Rl<S>>;
type Rt<S> = OptionalService<Retry<Cb<S>>, Cb<S>>;
type Ot<S> = OptionalService<Timeout<Rt<S>>, Rt<S>>;

impl<S: Clone> Layer<S> for ConfiguredResilience {
    type Service = Ot<S>;

    fn layer(&self, service: S) -> Self::Service {
        let s = OptionalService::new(self.bulkhead.as_ref(), service);
        let s = OptionalService::new(self.attempt_timeout.as_ref(), s);
        let s = OptionalService::new(self.rate_limit.as_ref(), s);
        let s = OptionalService::new(self.circuit_breaker.as_ref(), s);
        let s = OptionalService::new(self.retry.as_ref(), s);
        OptionalService::new(self.timeout.as_ref(), s)
    }
}
