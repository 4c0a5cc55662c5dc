//! Resilience middleware for [Tower](https://docs.rs/tower).
//!
//! buttress keeps a service standing when what it depends on does not: a circuit
//! breaker, retry with backoff, jitter and a retry budget, timeout, bulkhead, rate
//! limiter and fallback, each a [`tower_layer::Layer`] that composes with
//! `ServiceBuilder`, around axum handlers, tonic services and tower clients.
//!
//! Every layer keeps its shared state in the lock-free, allocation-free
//! [`buttress_core`] and follows the same rules:
//!
//! - **One state per layer value.** A layer owns its state behind an `Arc`; every service
//!   it makes, and every clone of those, shares it. Two independent breakers are two
//!   layer values.
//! - **Readiness pins nothing.** Rejections happen in the response future, so a
//!   connection that polls readiness and then idles holds no capacity.
//! - **Capacity is a guard.** A half-open probe, a bulkhead slot, a retry token is a value
//!   whose `Drop` gives it back: cancellation and panics leak nothing.
//! - **Errors stack.** Services return [`BoxError`]; a layer's own
//!   refusal is a small type recognised by [`error::rejection`].
//! - **Time is tokio's.** Layers read [`clock::TokioClock`], so `tokio::time::pause()`
//!   drives them deterministically, and read it only when their configuration needs it.
//!
//! # Features
//!
//! Integrations are off by default; with a feature off, nothing of it is compiled.
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | the `http` module: an `http::Response` classifier, rejections answered as 503/429/504 with `Retry-After` (axum's `HandleErrorLayer` and `IntoResponse`) |
//! | `grpc` | the `grpc` module: a `tonic::Code` classifier, rejections as `tonic::Status` with `grpc-retry-pushback-ms`, `grpc-timeout` parsing and formatting |
//! | `metrics` | every layer records calls, rejections, states and waits through the `metrics` facade, with handles registered once per instance (see [`observe`]) |
//! | `tracing` | events for breaker transitions (`INFO`), rejections and retries (`DEBUG`), retry-budget exhaustion (`WARN`), with the instance's name (see [`observe`]) |
//! | `health` | the `health` module: a registry of components answering liveness and readiness probes in JSON (served over HTTP with `http` too) |
//! | `serde` | the `config` module: every layer's settings as serde structs (durations written `"250ms"`, `"10s"`), to keep them in a configuration file and build the layers, or a whole pipeline, from it |
//! | `quanta` | [`clock::QuantaClock`]: a time-stamp-counter clock, under 10 ns a read, for rate limiters on a hot path and open breakers (`CircuitBreakerBuilder::quanta_clock`) (it does not follow tokio's paused time) |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bulkhead;
pub mod circuit_breaker;
pub mod classify;
pub mod clock;
mod cold;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
pub mod error;
pub mod fallback;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod observe;
pub mod pipeline;
pub mod pushback;
pub mod rate_limit;
pub mod retry;
mod shard;
pub mod timeout;

pub use buttress_core::ConfigError;
pub use error::BoxError;
pub use pipeline::Resilience;

/// The README's examples, compiled and run as doctests.
#[cfg(all(
    doctest,
    feature = "http",
    feature = "grpc",
    feature = "health",
    feature = "metrics",
    feature = "serde"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
