//! Resilience settings from a configuration file (feature `serde`).
//!
//! Each layer has a plain settings struct that serde reads from TOML, YAML, JSON or any
//! other self-describing format, and that builds the layer through the layer's own
//! builder, so a file is checked exactly as code is: a bad value is the builder's
//! [`ConfigError`](crate::ConfigError) naming the field, never a panic.
//!
//! | settings | builds | with its builder for |
//! |---|---|---|
//! | [`CircuitBreakerConfig`] | [`CircuitBreakerLayer`](crate::circuit_breaker::CircuitBreakerLayer) | a transition listener, `quanta_clock` |
//! | [`RetryConfig`] (with [`BackoffConfig`], [`RetryBudgetConfig`]) | [`RetryLayer`](crate::retry::RetryLayer) | a retry policy (HTTP, gRPC), a request copier, a listener |
//! | [`TimeoutConfig`] | [`TimeoutLayer`](crate::timeout::TimeoutLayer) | |
//! | [`BulkheadConfig`] | [`BulkheadLayer`](crate::bulkhead::BulkheadLayer) | |
//! | [`RateLimitConfig`] | [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) | a keyed limiter, another clock |
//! | [`ResilienceConfig`] | [`ConfiguredResilience`]: every part, in [`Resilience`](crate::Resilience)'s order | |
//!
//! - **Every field is optional** and defaults to the builder's default, so a file
//!   says only what it changes. The few settings no builder has a default for (a
//!   bulkhead's `max_concurrent`, a limiter's `rate` and `burst`, a timeout's
//!   duration, a pipeline's `name`) are refused as missing when built.
//! - **A typo is an error**: every struct refuses unknown fields.
//! - **Durations are written the human way**, `"250ms"`, `"10s"`, `"1m"`, `"1h 30m"`
//!   (parsed by [`humantime`](https://docs.rs/humantime)); a bare number is refused.
//!   A setting that is on by default (a retry's `budget`, a breaker's
//!   `max_wait_in_half_open`) is turned off with `false` (or null).
//! - **Names match the builders'**: a field is named as the builder method that sets
//!   it (`minimum_calls`, `failure_rate_threshold`), and a method taking several
//!   values is a table of them (`open_backoff = { multiplier = 2, max_wait = "5m" }`).
//!
//! Each struct is `#[non_exhaustive]`, so that new builder settings can join it:
//! outside this crate, make one with `Default::default()` (or from a file) and set
//! its fields.
//!
//! ```
//! use buttress::BoxError;
//! use buttress::config::ResilienceConfig;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let config: ResilienceConfig = serde_json::from_str(
//!     r#"{
//!         "name": "payments",
//!         "timeout": "2s",
//!         "retry": {
//!             "max_attempts": 3,
//!             "backoff": { "kind": "exponential", "base": "50ms", "multiplier": 2, "cap": "1s" },
//!             "budget": { "retry_ratio": 0.2, "min_retries_per_sec": 10 }
//!         },
//!         "circuit_breaker": {
//!             "window": { "kind": "count", "calls": 100 },
//!             "minimum_calls": 20,
//!             "failure_rate_threshold": 50,
//!             "wait_in_open": "10s"
//!         },
//!         "rate_limit": { "rate": 100, "burst": 20 },
//!         "attempt_timeout": "300ms",
//!         "bulkhead": { "max_concurrent": 64 }
//!     }"#,
//! )?;
//! let payments = config.build()?; // every part checked by its builder
//! assert_eq!(payments.parts().len(), 6);
//! let breaker = payments.circuit_breaker().expect("configured").handle();
//!
//! let mut client = ServiceBuilder::new()
//!     .layer(payments)
//!     .service(service_fn(|cents: u64| async move { Ok::<_, BoxError>(cents + 1) }));
//! assert_eq!(client.ready().await?.call(41).await?, 42);
//! assert_eq!(breaker.metrics().calls, 1);
//!
//! // A bad value is the builder's error, naming the field and the section.
//! let bad: ResilienceConfig =
//!     serde_json::from_str(r#"{ "name": "payments", "retry": { "max_attempts": 0 } }"#)?;
//! let err = bad.build().unwrap_err();
//! assert_eq!(err.field(), "max_attempts");
//! assert!(err.to_string().contains("retry"));
//! # Ok(())
//! # }
//! ```
//!
//! The same pipeline in TOML, for instance as one table of an application's
//! configuration file:
//!
//! ```toml
//! [payments]
//! name = "payments"
//! timeout = "2s"
//! attempt_timeout = "300ms"
//!
//! [payments.retry]
//! max_attempts = 3
//! backoff = { kind = "exponential", base = "50ms", multiplier = 2, cap = "1s" }
//! budget = { retry_ratio = 0.2, min_retries_per_sec = 10 } # or `budget = false`
//!
//! [payments.circuit_breaker]
//! window = { kind = "count", calls = 100 } # or { kind = "time", duration = "1m", buckets = 6 }
//! minimum_calls = 20
//! failure_rate_threshold = 50
//! wait_in_open = "10s"
//!
//! [payments.rate_limit]
//! rate = 100
//! burst = 20
//!
//! [payments.bulkhead]
//! max_concurrent = 64
//! ```
//!
//! What a file cannot hold stays in code: take a section's builder
//! ([`CircuitBreakerConfig::builder`], [`RetryConfig::builder`],
//! [`RateLimitConfig::builder`], [`BulkheadConfig::builder`]), add the listener,
//! policy or key function, build, and put the layers in a
//! [`Resilience`](crate::Resilience) yourself.

mod layers;
mod off;
mod optional;
mod pipeline;

pub use layers::{
    BackoffConfig, BackoffKind, BulkheadConfig, CircuitBreakerConfig, JitterKind,
    OpenBackoffConfig, RateLimitConfig, RetryBudgetConfig, RetryConfig, TimeoutConfig,
    WindowConfig,
};
pub use optional::{OptionalFuture, OptionalService};
pub use pipeline::{ConfiguredResilience, ResilienceConfig};
