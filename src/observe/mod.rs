//! Metrics and tracing: what every layer records, under which names, at which levels.
//!
//! Both are off by default and cost nothing then: with the `metrics` and `tracing`
//! features off, the instruments of a layer are a zero-sized type whose methods are
//! empty, so not even a branch is left on the call path.
//!
//! # Metrics (`metrics` feature)
//!
//! Layers record through the [`metrics`](https://docs.rs/metrics) facade, so any
//! recorder works (a Prometheus exporter, StatsD, a test's recorder).
//!
//! **Handles are registered once per layer instance**, with their labels, and kept in
//! the layer's shared state; a call only bumps a handle it already holds: no label is
//! built, nothing is allocated, no `String` is made per call. When that happens:
//!
//! - a layer given a name (`.name("payments")` on its builder, or on
//!   [`TimeoutLayer`](crate::timeout::TimeoutLayer) and
//!   [`FallbackLayer`](crate::fallback::FallbackLayer)) registers when it is built;
//! - an unnamed layer put in a [`Resilience`](crate::Resilience) pipeline registers
//!   then, under the pipeline's name (the attempt timeout of a pipeline named
//!   `payments` under `payments.attempt`, to tell it from the overall timeout);
//! - any other unnamed layer registers when it makes its first service, under the empty
//!   name `""`.
//!
//! So install the recorder before building the layers. Clones of a layer, and every
//! service it makes, share its handles: one layer value put in a pipeline twice (a
//! `TimeoutLayer` as both the overall and the attempt timeout) records under the name
//! it took first; build two values to tell them apart.
//!
//! Give every breaker a name of its own (or put it in a pipeline of its own name):
//! counters and the bulkhead's gauges add up correctly under a shared name, but
//! `buttress_circuit_breaker_state` says which state *one* breaker is in, and two
//! breakers under one name (two unnamed ones, say, both `""`) overwrite each other's.
//!
//! Every metric has the label `name`, the instance's name. Counters end in `_total`,
//! durations are histograms in seconds.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `buttress_circuit_breaker_calls_total` | counter | `name`, `outcome` | calls through the breaker by outcome: `success`, `failure`, `ignored` (as classified), `rejected` (refused by the breaker) |
//! | `buttress_circuit_breaker_state` | gauge | `name`, `state` | 1 for the state the breaker is in, 0 for the others (`closed`, `open`, `half_open`, `forced_open`, `disabled`); a transition whose listener runs after a later one's does not overwrite it |
//! | `buttress_circuit_breaker_transitions_total` | counter | `name`, `from`, `to` | state transitions; every pair the breaker can make is registered up front, at zero |
//! | `buttress_circuit_breaker_call_duration_seconds` | histogram | `name` | duration of admitted calls; only with `slow_call_duration` set (the breaker times calls then anyway) |
//! | `buttress_retry_attempts_total` | counter | `name` | attempts sent, the first included |
//! | `buttress_retry_retries_total` | counter | `name`, `reason` | retries scheduled, by why: `error`, `response` (a retryable response), `pushback` (a server's `Retry-After` or a rejection's `retry_after`) |
//! | `buttress_retry_budget_exhausted_total` | counter | `name` | calls that ended because the retry budget refused a retry |
//! | `buttress_retry_retries_exhausted_total` | counter | `name` | calls that failed after at least one retry, with no retry left to make |
//! | `buttress_timeout_elapsed_total` | counter | `name` | calls cut by the timeout |
//! | `buttress_bulkhead_in_flight` | gauge | `name` | calls holding a slot |
//! | `buttress_bulkhead_waiting` | gauge | `name` | calls waiting for a slot (with `max_wait` only) |
//! | `buttress_bulkhead_rejected_total` | counter | `name` | calls refused (full, queue full, or waited too long) |
//! | `buttress_bulkhead_wait_duration_seconds` | histogram | `name` | time queued calls waited, whether they got a slot or not (with `max_wait` only) |
//! | `buttress_rate_limit_rejected_total` | counter | `name` | calls refused by the limiter |
//! | `buttress_rate_limit_waited_total` | counter | `name` | calls delayed to a reserved slot (with `max_wait` only) |
//! | `buttress_rate_limit_wait_duration_seconds` | histogram | `name` | how long delayed calls slept (with `max_wait` only) |
//! | `buttress_fallback_taken_total` | counter | `name` | calls answered by the fallback |
//! | `buttress_rejections_total` | counter | `name`, `reason` | every refusal by any of the layers above, by [`RejectionKind`](crate::error::RejectionKind): `circuit_open`, `bulkhead_full`, `rate_limited`, `elapsed`, `budget_exhausted` (the gRPC deadline layer, which has no instruments, does not count its `deadline_passed`) |
//!
//! `buttress_rejections_total` repeats the rejections that each layer also counts in its
//! own metrics, so that one query (or alert) covers every layer of a stack; in a
//! pipeline, where every part carries the pipeline's name, `reason` tells the layers
//! apart.
//!
//! ## Cost
//!
//! - **Per event, one handle update**: a counter bump on the event's own path (an
//!   admitted breaker call: one; a retried call: one per attempt and retry; a
//!   rejection: two, its layer's counter and `buttress_rejections_total`). The
//!   bulkhead's in-flight gauge moves by one when a call takes its slot and again when
//!   it gives it back: two gauge updates per admitted call, the dearest metric here
//!   (a Prometheus gauge update is a compare-and-swap plus a generation counter).
//! - **No clock read for metrics** on any call path: the breaker's durations use the
//!   times its slow-call tracking reads anyway (and exist only with it), the rate
//!   limiter's waits are known when the slot is reserved. Only a bulkhead wait, already
//!   the slow path, reads the clock once more when it ends, for its histogram.
//! - **Reaching the handles**: the breaker's permit reaches them through the core state
//!   it already holds (an extension slot in
//!   [`Breaker`](buttress_core::breaker::Breaker)), the retry's future through the
//!   layer's shared state, which it holds anyway for the budget (without a budget, a
//!   feature on makes it take that one `Arc` clone per call). The timeout's and the
//!   fallback's futures, and the bulkhead's permits (whose core counter holds no
//!   reference count to go through), have no shared state to go through: with a
//!   feature on they hold one `Arc` clone of the instruments per call.
//! - Nothing is allocated per call. With no recorder installed every handle is a
//!   no-op, and with both features off all of this is compiled out.
//!
//! # tracing (`tracing` feature)
//!
//! Events, each with the field `name` (the instance's name, as above), on a target per
//! layer:
//!
//! | event | level | target | fields |
//! |---|---|---|---|
//! | circuit breaker transition | `INFO` | `buttress::circuit_breaker` | `name`, `from`, `to`, `at`, `generation` |
//! | call rejected by the breaker | `DEBUG` | `buttress::circuit_breaker` | `name`, `retry_after` |
//! | retry scheduled | `DEBUG` | `buttress::retry` | `name`, `attempt` (the one about to be sent), `delay`, `reason` |
//! | retry budget exhausted | `WARN` | `buttress::retry` | `name`, `attempts` |
//! | retries exhausted | `DEBUG` | `buttress::retry` | `name`, `attempts` |
//! | call timed out | `DEBUG` | `buttress::timeout` | `name`, `after` |
//! | bulkhead full | `DEBUG` | `buttress::bulkhead` | `name` |
//! | rate limited | `DEBUG` | `buttress::rate_limit` | `name`, `retry_after` |
//! | rate-limit wait | `DEBUG` | `buttress::rate_limit` | `name`, `wait` |
//! | fallback taken | `DEBUG` | `buttress::fallback` | `name` |
//!
//! The circuit breaker's own `on_transition` listener still runs after its event.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use buttress::circuit_breaker::CircuitBreakerLayer;
//! use buttress::Resilience;
//! use buttress::retry::RetryLayer;
//!
//! # fn main() -> Result<(), buttress::ConfigError> {
//! // A recorder must be installed first (for example a Prometheus exporter's):
//! // metrics::set_global_recorder(recorder)
//! let breaker = CircuitBreakerLayer::builder().name("payments-db").build()?;
//! // Unnamed: it takes the pipeline's name, "payments".
//! let retry = RetryLayer::builder().max_attempts(3).build()?;
//! let stack = Resilience::new("payments").circuit_breaker(breaker).retry(retry);
//! # let _ = stack;
//! # Ok(())
//! # }
//! # main().unwrap();
//! # }
//! ```

mod instruments;

pub(crate) use instruments::{
    BreakerObs, BulkheadObs, FallbackObs, RateLimitObs, RetryObs, TimeoutObs,
};
