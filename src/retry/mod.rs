//! Retry with backoff, jitter, server pushback and a retry budget.
//!
//! [`RetryLayer`] sends a call again when its [`Policy`] says so, up to `max_attempts`
//! (the first call counts), waiting between attempts:
//!
//! - **Backoff**: a [`Backoff`] schedule (constant, linear or exponential), **capped
//!   before jitter** so that clients at the cap still spread out; jitter none, full,
//!   equal or decorrelated. Default: exponential from 50 ms, doubling, capped at 5 s,
//!   full jitter.
//! - **Pushback**: a policy may return [`Decision::RetryAfter`] to wait exactly what
//!   the server asked for (`Retry-After`, `grpc-retry-pushback-ms`, parsed by
//!   [`crate::pushback`]) or what an inner buttress layer said in its rejection's
//!   `retry_after`. A wait longer than `max_wait` (default 30 s) is not waited: the
//!   result is returned.
//! - **Budget**: by default retries spend a [`RetryBudget`] of 20% of the requests of
//!   the last 10 s plus 10 retries per second, shared by every service of the layer,
//!   so that retries cannot multiply the load on a backend that is down. When it
//!   refuses, the error is [`BudgetExhausted`](error::BudgetExhausted) (its source is
//!   the last error); an `Ok` response the policy wanted to retry is returned as is.
//! - **Deadline** (optional): no attempt starts that cannot start (plus
//!   `min_attempt_time`) before `deadline` after the call.
//!
//! [`DefaultPolicy`] retries every error except buttress rejections that are final: a
//! rejection with a `retry_after` (circuit open, rate limited) is retried after it, one
//! without (bulkhead full, budget exhausted) is not; [`Elapsed`] from an inner
//! per-attempt timeout is retried like any error. Requests are copied for each attempt
//! after the first by a [`CloneRequest`] (default: `Clone`), the last attempt's copy
//! being what the policy judges that attempt's result with; a request that cannot be
//! copied is sent once and never retried.
//!
//! An error that was not retried at all comes back unchanged; after more than one
//! attempt it comes back as [`RetriesExhausted`](error::RetriesExhausted) with the
//! number of attempts and the last error as its source. A [`Listener`] hears of every
//! retry (attempt, delay, reason); the default costs nothing.
//!
//! # Which service a retry goes through
//!
//! The first attempt goes through the service that was made ready, as tower's
//! contract says. Retries go through a clone of the service as the layer wrapped it
//! (its prototype, kept with the layer's state when [`Layer::layer`] is called),
//! cloned when the first retry is about to be sent and made ready again before each
//! retry. So a call that is not retried clones no service: below a retry there is
//! often a stack of layers (a breaker, a limiter, a bulkhead) whose clones each count
//! a reference to their shared state, and tower's own `Retry`, which clones the inner
//! service on every call, pays for all of them on every call. The difference shows
//! only for a service whose clones differ: a change made through
//! [`Retry::get_mut`] reaches the first attempts, not the prototype.
//!
//! # Cost
//!
//! A first attempt that succeeds reads no clock unless a deadline is set (the budget's
//! deposit is one atomic add at the budget's cached epoch, with a clock read in 64
//! calls to move that epoch on), creates no timer, clones no service and allocates
//! nothing. Its future holds one counted reference to the layer's state, taken on the
//! calling thread's own handle (so threads share no written cache line), through
//! which a retry reads the configuration, the budget and the prototype. The first
//! retry of a call allocates once what retrying needs (the timer, which later waits
//! reset, and the service clone): kept in a box, that state keeps over a hundred bytes
//! out of every call's future, which is moved on every call, and leaves a call that is
//! not retried nothing to drop but its reference.
//!
//! [`Layer::layer`]: tower_layer::Layer::layer
//!
//! # Metrics and tracing
//!
//! With the `metrics` feature the layer counts attempts, scheduled retries by reason,
//! and the calls that ended with the budget or the retries exhausted; with `tracing`
//! each retry is a `DEBUG` event (attempt, delay, reason) and budget exhaustion a
//! `WARN`. Name the layer with [`RetryLayerBuilder::name`]; see
//! [`observe`](crate::observe). The response future reaches the instruments through the
//! reference it holds already.
//!
//! # Example
//!
//! ```
//! use buttress::retry::{Backoff, Jitter, RetryLayer};
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let seen = calls.clone();
//! let flaky = service_fn(move |req: u32| {
//!     let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         if n < 2 { Err::<u32, buttress::BoxError>("try again".into()) } else { Ok(req * 2) }
//!     }
//! });
//!
//! let retry = RetryLayer::builder()
//!     .max_attempts(4)
//!     .backoff(
//!         Backoff::exponential(Duration::from_millis(100), 2.0)?
//!             .with_cap(Duration::from_secs(2))
//!             .with_jitter(Jitter::Full),
//!     )
//!     .build()?;
//! let svc = ServiceBuilder::new().layer(retry).service(flaky);
//! assert_eq!(svc.oneshot(21).await?, 42);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 3);
//! # Ok(())
//! # }
//! ```
//!
//! [`Elapsed`]: crate::timeout::error::Elapsed

pub mod error;
pub mod future;
mod layer;
pub mod policy;
mod service;

pub use buttress_core::backoff::{Backoff, Jitter};
pub use buttress_core::budget::{RetryBudget, RetryBudgetBuilder};
pub use layer::{RetryLayer, RetryLayerBuilder};
pub use policy::{
    ByClone, CloneRequest, Decision, DefaultPolicy, Listener, NoListener, Policy, RetryEvent,
    RetryReason, SendOnce,
};
pub use service::Retry;
