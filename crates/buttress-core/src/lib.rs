//! The state machines and algorithms behind [buttress](https://docs.rs/buttress).
//!
//! This crate knows nothing of tower or tokio. Every algorithm here is a pure decision
//! function over a small state word plus a compare-and-swap loop that stores the new
//! state, so that the hot path of every buttress layer takes no lock and allocates
//! nothing. Time is always an argument ([`Nanos`]): nothing in this crate reads a clock
//! by itself, which is what makes every state machine deterministic under test (see
//! [`clock::ManualClock`]).
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`ConfigError`], naming the bad field of any builder |
//! | [`clock`] | [`Nanos`], the [`Clock`] trait, a monotonic and a manual clock |
//! | [`breaker`] | the circuit-breaker state machine and its windows |
//! | [`backoff`] | retry delays: constant, linear, exponential, capped before jitter |
//! | [`budget`] | the retry budget: retries as a ratio of recent requests |
//! | [`gcra`] | the Generic Cell Rate Algorithm in one atomic word |
//! | [`permits`] | the bulkhead's in-flight counter and its guard |
//! | [`keyed`] | a bounded store of per-key limiters |
//!
//! Under `--cfg loom` the atomics come from [loom](https://docs.rs/loom) so that every
//! compare-and-swap loop can be model-checked.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod config;
mod fastmod;
pub mod gcra;
pub mod keyed;
pub mod permits;
pub(crate) mod sync;

pub use clock::{Clock, ManualClock, MonotonicClock, Nanos};
pub use config::ConfigError;
