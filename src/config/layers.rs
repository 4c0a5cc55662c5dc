//! One settings struct per layer, each built through the layer's own builder.

use super::off;
use crate::ConfigError;
use crate::bulkhead::{BulkheadBuilder, BulkheadLayer};
use crate::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer};
use crate::rate_limit::{RateLimitBuilder, RateLimitLayer};
use crate::retry::{Backoff, Jitter, RetryBudget, RetryLayer, RetryLayerBuilder};
use crate::timeout::TimeoutLayer;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The settings of a [`CircuitBreakerLayer`], field for field the
/// [`CircuitBreakerBuilder`]'s, with its defaults.
///
/// ```json
/// {
///   "name": "payments",
///   "window": { "kind": "count", "calls": 100 },
///   "minimum_calls": 10,
///   "failure_rate_threshold": 50,
///   "slow_call_rate_threshold": 100,
///   "slow_call_duration": "2s",
///   "wait_in_open": "30s",
///   "open_backoff": { "multiplier": 2, "max_wait": "5m" },
///   "open_jitter": 0,
///   "permitted_calls_in_half_open": 5,
///   "max_wait_in_half_open": "60s"
/// }
/// ```
///
/// [`build`](Self::build) makes the layer; [`builder`](Self::builder) gives the builder
/// for what a file cannot hold (a transition listener, `quanta_clock`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// The breaker's name, for its handle, listener, metrics and tracing. Default: none
    /// (in a pipeline, metrics and tracing use the pipeline's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the rates are computed over. Default: the last 100 calls.
    pub window: WindowConfig,
    /// Outcomes the window must hold before the breaker may trip. Default: 10.
    pub minimum_calls: u32,
    /// Trip at or above this failure rate, in percent, in `(0, 100]`. Default: 50.
    pub failure_rate_threshold: f64,
    /// Trip at or above this slow-call rate, in percent, in `(0, 100]`. Default: 100.
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long counts as slow. Default: none (not tracked).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub slow_call_duration: Option<Duration>,
    /// The first open wait. Default: 30 s.
    #[serde(with = "humantime_serde")]
    pub wait_in_open: Duration,
    /// How the open wait grows with consecutive re-opens. Default: doubling, up to 5 min.
    pub open_backoff: OpenBackoffConfig,
    /// Up to this fraction (0..=1) of each open wait is taken off at random. Default: 0.
    pub open_jitter: f64,
    /// Probes admitted in half-open (1..=255). Default: 5.
    pub permitted_calls_in_half_open: u32,
    /// Re-open when the probes have not reported within this; `false` (or null) waits
    /// for them forever. Default: 60 s.
    #[serde(with = "off::duration")]
    pub max_wait_in_half_open: Option<Duration>,
}

/// The window a [`CircuitBreakerConfig`]'s rates are computed over, tagged by `kind`:
/// `{ "kind": "count", "calls": 100 }` or
/// `{ "kind": "time", "duration": "1m", "buckets": 6 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// The last `calls` outcomes (a sliding window), as
    /// [`count_window`](CircuitBreakerBuilder::count_window).
    Count {
        /// How many outcomes the window holds.
        calls: u32,
    },
    /// The outcomes of the last `duration`, in `buckets` buckets, as
    /// [`time_window`](CircuitBreakerBuilder::time_window).
    Time {
        /// The span the window covers.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// How many buckets it is kept in.
        buckets: u32,
    },
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig::Count { calls: 100 }
    }
}

/// How a breaker's open wait grows with each consecutive re-open, as
/// [`open_backoff`](CircuitBreakerBuilder::open_backoff).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBackoffConfig {
    /// The factor the wait grows by (at least 1; 1 keeps it constant). Default: 2.
    pub multiplier: f64,
    /// The longest wait. Default: none, meaning 5 min, or `wait_in_open` if longer.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
}

impl Default for OpenBackoffConfig {
    fn default() -> Self {
        OpenBackoffConfig {
            multiplier: 2.0,
            max_wait: None,
        }
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            name: None,
            window: WindowConfig::default(),
            minimum_calls: 10,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: None,
            wait_in_open: Duration::from_secs(30),
            open_backoff: OpenBackoffConfig::default(),
            open_jitter: 0.0,
            permitted_calls_in_half_open: 5,
            max_wait_in_half_open: Some(Duration::from_secs(60)),
        }
    }
}

impl CircuitBreakerConfig {
    /// The builder holding these settings, for what a file cannot hold (a transition
    /// listener, `quanta_clock`); its [`build`](CircuitBreakerBuilder::build) checks
    /// them.
    pub fn builder(&self) -> CircuitBreakerBuilder {
        let mut b = CircuitBreakerLayer::builder();
        b = match self.window {
            WindowConfig::Count { calls } => b.count_window(calls),
            WindowConfig::Time { duration, buckets } => b.time_window(duration, buckets),
        };
        b = b
            .minimum_calls(self.minimum_calls)
            .failure_rate_threshold(self.failure_rate_threshold)
            .slow_call_rate_threshold(self.slow_call_rate_threshold)
            .wait_in_open(self.wait_in_open)
            .open_backoff_multiplier(self.open_backoff.multiplier);
        // Without a cap in the file the builder works it out when built, so that a
        // `wait_in_open` changed on this builder moves the default cap with it.
        if let Some(max_wait) = self.open_backoff.max_wait {
            b = b.open_backoff(self.open_backoff.multiplier, max_wait);
        }
        b = b
            .open_jitter(self.open_jitter)
            .permitted_calls_in_half_open(self.permitted_calls_in_half_open)
            .max_wait_in_half_open(self.max_wait_in_half_open);
        if let Some(d) = self.slow_call_duration {
            b = b.slow_call_duration(d);
        }
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        b
    }

    /// The layer, or the builder's [`ConfigError`] naming the first refused field.
    pub fn build(&self) -> Result<CircuitBreakerLayer, ConfigError> {
        self.builder().build()
    }
}

/// The settings of a [`RetryLayer`], field for field the [`RetryLayerBuilder`]'s, with
/// its defaults.
///
/// ```json
/// {
///   "max_attempts": 3,
///   "backoff": { "kind": "exponential", "base": "50ms", "multiplier": 2, "cap": "5s", "jitter": "full" },
///   "budget": { "ttl": "10s", "retry_ratio": 0.2, "min_retries_per_sec": 10, "slots": 10 },
///   "deadline": "10s",
///   "min_attempt_time": "0s",
///   "max_wait": "30s"
/// }
/// ```
///
/// `"budget": false` (or null) retries without a budget. [`build`](Self::build) makes
/// the layer with the default policy (errors are retried) and requests copied with
/// `Clone`; [`builder`](Self::builder) gives the builder to change those (an HTTP or
/// gRPC policy, a request copier, a listener).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// The retry's name, for metrics and tracing. Default: none (in a pipeline, the
    /// pipeline's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Attempts at most, the first call included (at least 1). Default: 3.
    pub max_attempts: u32,
    /// The delays between attempts. Default: exponential from 50 ms, doubling, capped
    /// at 5 s, full jitter.
    pub backoff: BackoffConfig,
    /// The retry budget; `false` (or null) for none. Default: the budget's defaults
    /// (20 % of the requests of the last 10 s, plus 10 retries per second).
    #[serde(with = "off::table")]
    pub budget: Option<RetryBudgetConfig>,
    /// An overall deadline, from the call: no attempt starts that cannot start before
    /// it. Default: none.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    /// How long an attempt needs at least, with a deadline. Default: 0.
    #[serde(with = "humantime_serde")]
    pub min_attempt_time: Duration,
    /// The longest single wait; a longer delay or pushback ends the retries. Default:
    /// 30 s.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Seeds the jitter, for reproducible delays (see
    /// [`seed`](RetryLayerBuilder::seed)). Default: none (random).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            name: None,
            max_attempts: 3,
            backoff: BackoffConfig::default(),
            budget: Some(RetryBudgetConfig::default()),
            deadline: None,
            min_attempt_time: Duration::ZERO,
            max_wait: Duration::from_secs(30),
            seed: None,
        }
    }
}

impl RetryConfig {
    /// The builder holding these settings, to give it a policy, a request copier or a
    /// listener (for instance `HttpRetryPolicy::retry_layer`, with the `http` feature);
    /// its [`build`](RetryLayerBuilder::build) checks them. Fails on a bad backoff
    /// or budget, which are checked as they are made.
    pub fn builder(&self) -> Result<RetryLayerBuilder, ConfigError> {
        let mut b = RetryLayer::builder()
            .max_attempts(self.max_attempts)
            .backoff(self.backoff.build()?)
            .min_attempt_time(self.min_attempt_time)
            .max_wait(self.max_wait);
        b = match &self.budget {
            Some(budget) => b.budget(budget.build()?),
            None => b.no_budget(),
        };
        if let Some(d) = self.deadline {
            b = b.deadline(d);
        }
        if let Some(seed) = self.seed {
            b = b.seed(seed);
        }
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        Ok(b)
    }

    /// The layer, or the [`ConfigError`] naming the first refused field.
    pub fn build(&self) -> Result<RetryLayer, ConfigError> {
        self.builder()?.build()
    }
}

/// A retry's delay schedule, as a [`Backoff`]: `base` grown by `kind`, capped at `cap`,
/// then jittered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// How the delay grows. Default: exponential.
    pub kind: BackoffKind,
    /// The first delay (and the step, when linear). Default: 50 ms.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// The growth factor of an exponential backoff (`base * multiplier^(n-1)`), a
    /// finite number >= 0; constant and linear backoffs do not use it. Default: 2.
    pub multiplier: f64,
    /// The longest delay, applied before jitter. Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// The randomness taken off the capped delay. Default: full.
    pub jitter: JitterKind,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            kind: BackoffKind::Exponential,
            base: Duration::from_millis(50),
            multiplier: 2.0,
            cap: Duration::from_secs(5),
            jitter: JitterKind::Full,
        }
    }
}

impl BackoffConfig {
    /// The backoff, or a [`ConfigError`] for a bad `multiplier`.
    pub fn build(&self) -> Result<Backoff, ConfigError> {
        let backoff = match self.kind {
            BackoffKind::Constant => Backoff::constant(self.base),
            BackoffKind::Linear => Backoff::linear(self.base),
            BackoffKind::Exponential => Backoff::exponential(self.base, self.multiplier)?,
        };
        Ok(backoff.with_cap(self.cap).with_jitter(self.jitter.into()))
    }
}

/// How a [`BackoffConfig`]'s delay grows: `"constant"`, `"linear"` or `"exponential"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// `base` every time ([`Backoff::constant`]).
    Constant,
    /// `base * n` before retry `n` ([`Backoff::linear`]).
    Linear,
    /// `base * multiplier^(n-1)` before retry `n` ([`Backoff::exponential`]).
    Exponential,
}

/// A [`Jitter`], written `"none"`, `"full"`, `"equal"` or `"decorrelated"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterKind {
    /// [`Jitter::None`]: the capped delay as is.
    None,
    /// [`Jitter::Full`]: uniform in `[0, d]`.
    Full,
    /// [`Jitter::Equal`]: uniform in `[d/2, d]`.
    Equal,
    /// [`Jitter::Decorrelated`]: uniform in `[base, 3 * previous]`, capped.
    Decorrelated,
}

impl From<JitterKind> for Jitter {
    fn from(kind: JitterKind) -> Self {
        match kind {
            JitterKind::None => Jitter::None,
            JitterKind::Full => Jitter::Full,
            JitterKind::Equal => Jitter::Equal,
            JitterKind::Decorrelated => Jitter::Decorrelated,
        }
    }
}

impl From<Jitter> for JitterKind {
    fn from(jitter: Jitter) -> Self {
        match jitter {
            Jitter::None => JitterKind::None,
            Jitter::Full => JitterKind::Full,
            Jitter::Equal => JitterKind::Equal,
            Jitter::Decorrelated => JitterKind::Decorrelated,
        }
    }
}

/// The settings of a [`RetryBudget`], field for field its builder's, with its
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryBudgetConfig {
    /// How long a request's deposit counts (at most a day). Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Retries allowed per request seen in the last `ttl`, in `0.0..=1000.0`.
    /// Default: 0.2.
    pub retry_ratio: f64,
    /// Retries per second allowed even with no requests (0 for none). Default: 10.
    pub min_retries_per_sec: u32,
    /// How many time slots the `ttl` is kept in, in `1..=256`, each at least 100 ms. Default: 10.
    pub slots: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            retry_ratio: 0.2,
            min_retries_per_sec: 10,
            slots: 10,
        }
    }
}

impl RetryBudgetConfig {
    /// The budget, or the [`ConfigError`] naming the first refused field.
    pub fn build(&self) -> Result<RetryBudget, ConfigError> {
        RetryBudget::builder()
            .ttl(self.ttl)
            .retry_ratio(self.retry_ratio)
            .min_retries_per_sec(self.min_retries_per_sec)
            .slots(self.slots)
            .build()
    }
}

/// The settings of a [`TimeoutLayer`]: `{ "timeout": "2s" }`.
///
/// In a [`ResilienceConfig`](super::ResilienceConfig) the timeouts are plain durations
/// (`"timeout": "2s"`, `"attempt_timeout": "300ms"`), named after the pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// The timeout's name, for metrics and tracing. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long a call may take (greater than zero). Required.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl TimeoutConfig {
    /// The layer, or a [`ConfigError`] naming `timeout` when it is missing or zero.
    pub fn build(&self) -> Result<TimeoutLayer, ConfigError> {
        let timeout = self
            .timeout
            .ok_or_else(|| ConfigError::new("timeout", "is required"))?;
        let layer = TimeoutLayer::new(timeout)?;
        Ok(match &self.name {
            Some(name) => layer.name(name.as_str()),
            None => layer,
        })
    }
}

/// The settings of a [`BulkheadLayer`], field for field the [`BulkheadBuilder`]'s,
/// with its defaults: `{ "max_concurrent": 64, "max_wait": "20ms", "max_waiting": 256 }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// The bulkhead's name, for its handle, metrics and tracing. Default: none (in a
    /// pipeline, metrics and tracing use the pipeline's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Calls allowed in flight at once (at least 1). Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// When full, wait up to this for a slot instead of rejecting at once. Default:
    /// none (reject at once).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
    /// How many calls may wait at once (needs `max_wait`). Default: 1024 with
    /// `max_wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<usize>,
    /// Take the slot in `poll_ready` (tower-style backpressure; not with `max_wait`).
    /// Default: false.
    pub backpressure: bool,
}

impl BulkheadConfig {
    /// The builder holding these settings; its [`build`](BulkheadBuilder::build) checks
    /// them.
    pub fn builder(&self) -> BulkheadBuilder {
        let mut b = BulkheadLayer::builder().backpressure(self.backpressure);
        if let Some(n) = self.max_concurrent {
            b = b.max_concurrent(n);
        }
        if let Some(d) = self.max_wait {
            b = b.max_wait(d);
        }
        if let Some(n) = self.max_waiting {
            b = b.max_waiting(n);
        }
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        b
    }

    /// The layer, or the builder's [`ConfigError`] naming the first refused field.
    pub fn build(&self) -> Result<BulkheadLayer, ConfigError> {
        self.builder().build()
    }
}

/// The settings of a direct [`RateLimitLayer`], field for field the
/// [`RateLimitBuilder`]'s, with its defaults: `{ "rate": 100, "period": "1s", "burst": 20 }`.
///
/// A keyed limiter needs a function from the request to its key, which no file holds:
/// take the [`builder`](Self::builder) and call
/// [`keyed`](RateLimitBuilder::keyed) on it.
///
/// ```
/// use buttress::config::RateLimitConfig;
///
/// # fn main() -> Result<(), buttress::BoxError> {
/// let config: RateLimitConfig = serde_json::from_str(r#"{ "rate": 10, "burst": 5 }"#)?;
/// // One limiter per client address, at most 100,000 addresses held.
/// let per_client = config
///     .builder()
///     .keyed(100_000, |req: &(std::net::IpAddr, u64)| req.0)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The limiter's name, for its handle, metrics and tracing. Default: none (in a
    /// pipeline, metrics and tracing use the pipeline's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Calls allowed per `period` (at least 1). Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// The period the rate is counted over. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Calls allowed at once after an idle period (at least 1). Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Over the limit, wait up to this for a slot instead of rejecting. Default: none
    /// (reject at once).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            name: None,
            rate: None,
            period: Duration::from_secs(1),
            burst: None,
            max_wait: None,
        }
    }
}

impl RateLimitConfig {
    /// The builder holding these settings: for a keyed limiter
    /// ([`keyed`](RateLimitBuilder::keyed)) or another clock
    /// ([`clock`](RateLimitBuilder::clock)); its build methods check them.
    pub fn builder(&self) -> RateLimitBuilder {
        let mut b = RateLimitLayer::builder().period(self.period);
        if let Some(rate) = self.rate {
            b = b.rate(rate);
        }
        if let Some(burst) = self.burst {
            b = b.burst(burst);
        }
        if let Some(d) = self.max_wait {
            b = b.max_wait(d);
        }
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        b
    }

    /// The direct layer, or the builder's [`ConfigError`] naming the first refused
    /// field.
    pub fn build(&self) -> Result<RateLimitLayer, ConfigError> {
        self.builder().build()
    }
}
