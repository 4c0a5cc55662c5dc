//! The circuit breaker: stop calling a backend that is failing, and probe it before
//! trusting it again.
//!
//! While the backend is healthy the breaker is `Closed` and only keeps score, in a
//! window of the last N calls or the last D of time. When the failure rate (or the
//! slow-call rate) reaches its threshold over at least `minimum_calls` calls, it
//! opens: calls fail at once with [`CircuitOpen`](error::CircuitOpen), which carries a
//! `retry_after`, and the backend gets time to recover instead of a pile of requests.
//! The first call after the open wait is a probe (`HalfOpen`); once
//! `permitted_calls_in_half_open` probes have reported, the breaker closes, or opens
//! again for a longer wait (exponential, capped, optionally jittered). A
//! [`CircuitBreakerHandle`] reads the state and metrics and forces the breaker open,
//! disables it, or resets it.
//!
//! The hot path takes no lock and allocates nothing: the state is one atomic word in
//! [`buttress_core::breaker`], and a closed breaker with a count window and no slow-call
//! tracking does not even read the clock. An admitted call's only writes to shared
//! memory are the reference count its permit takes and gives back, and that count is
//! one of several handles, each service using the one of the thread that first called
//! it, so threads calling at once do not contend for one cache line. While the breaker is rejecting, `poll_ready`
//! answers at once without polling the inner service, so a hung backend cannot block
//! callers; a cancelled or panicking call counts nothing and frees its probe slot.
//!
//! ```
//! use buttress::circuit_breaker::{CircuitBreakerLayer, State};
//! use buttress::error::{rejection, RejectionKind};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .name("backend")
//!     .count_window(10)
//!     .minimum_calls(5)
//!     .failure_rate_threshold(50.0)
//!     .wait_in_open(Duration::from_secs(5))
//!     .on_transition(|t| println!("{:?}: {} -> {} at {}", t.name, t.from, t.to, t.at))
//!     .build()?;
//! let handle = breaker.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(breaker)
//!     .service(service_fn(|fail: bool| async move {
//!         if fail { Err("backend down") } else { Ok("hello") }
//!     }));
//!
//! for _ in 0..5 {
//!     let _ = svc.ready().await?.call(true).await;
//! }
//! assert_eq!(handle.state(), State::Open);
//! let err = svc.ready().await?.call(false).await.unwrap_err();
//! let r = rejection(&*err).expect("a rejection");
//! assert_eq!(r.kind(), RejectionKind::CircuitOpen);
//! assert_eq!(r.retry_after(), Some(Duration::from_secs(5)));
//! # Ok(())
//! # }
//! ```

//!
//! ## Details
//!
//! - **Rates and thresholds.** A rate reaching its threshold trips (inclusive: 50 %
//!   trips at exactly half). Thresholds are compared exactly to a hundredth of a
//!   percent. The slow-call rate counts only when `slow_call_duration` is set; a call
//!   taking at least that long is slow, whether it succeeded or failed.
//! - **Clock reads.** None for a closed breaker with a count window and no slow-call
//!   tracking; one per call with a time window (when the outcome is recorded); two
//!   with slow-call tracking (start and end of the call). While open, `poll_ready`
//!   reads the clock to decide, and `call` reuses that reading to reject; a probe
//!   (the wait is over) reads it again at `call`, so that it is timed from its call
//!   however long after `poll_ready` that comes. The clock is tokio's
//!   by default, so paused time drives the breaker in tests; with the `quanta`
//!   feature, `CircuitBreakerBuilder::quanta_clock` reads the time-stamp counter
//!   instead, under 10 ns a read where tokio's costs about 22 on a virtual machine: an
//!   open breaker's rejection then costs about half as much.
//! - **Half-open.** The first call after the open wait moves the breaker to half-open
//!   and is its first probe. Once `permitted_calls_in_half_open` probes have reported
//!   success or failure, the breaker closes if their failure and slow rates are under
//!   the thresholds (`minimum_calls` does not apply to probes), and opens again
//!   otherwise. Calls beyond the probes are rejected with no `retry_after`. Once
//!   `max_wait_in_half_open` has passed without a decision (probes hanging, or
//!   cancelled by an outer timeout before they reported, which frees their slots), the
//!   next call re-opens the breaker (counted as a failed test: the open wait grows).
//! - **Readiness.** A service whose `poll_ready` saw the breaker rejecting does not
//!   call the inner service; if the breaker was reset between `poll_ready` and
//!   `call`, that one call is rejected with `retry_after` zero (its permit is given
//!   back unused).
//! - **Generations.** An outcome counts only in the generation its call was admitted
//!   in; a call admitted before a transition (or before `reset`) and finishing after it
//!   is not counted.
//! - **Transitions.** The listener runs on the thread that made the transition, inside
//!   the call that caused it: keep it short. With the `tracing` feature each
//!   transition is also an `info` event on the `buttress::circuit_breaker` target.
//! - **Metrics and tracing.** With the `metrics` feature the breaker counts calls by
//!   outcome, shows its state in a gauge, counts transitions, and (with slow-call
//!   tracking) records call durations; with `tracing` it logs transitions and
//!   rejections. Names, labels and levels: [`observe`](crate::observe).

pub mod error;
pub mod future;
mod handle;
mod layer;
mod service;

pub use buttress_core::breaker::{
    BreakerConfig, BreakerConfigBuilder, Metrics, State, Transition, WindowKind,
};
pub use handle::CircuitBreakerHandle;
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use service::CircuitBreaker;
