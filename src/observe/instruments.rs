//! The instruments of each layer: metric handles registered once per instance, and the
//! instance's name for tracing events.
//!
//! Each layer keeps one `*Obs` value in its shared state and calls one method of it at
//! each event. With the `metrics` and `tracing` features off, every `*Obs` is a
//! zero-sized type and its methods are empty. With either on, it is an `Arc` to a cell
//! holding the handles, filled once: when the layer is built with a name, when a
//! pipeline names it, or when it makes its first service (under the empty name).

#[cfg(feature = "metrics")]
use buttress_core::breaker::Outcome;
use buttress_core::breaker::State;
#[cfg(any(feature = "metrics", feature = "tracing"))]
use buttress_core::breaker::Transition;
#[cfg(feature = "metrics")]
use buttress_core::breaker::generation_is_after;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::RetryReason;

#[cfg(any(feature = "metrics", feature = "tracing"))]
use std::sync::OnceLock;
#[cfg(feature = "metrics")]
use std::sync::{Mutex, PoisonError};

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram, Unit};

/// The handles of one instance, registered from its name and options.
#[cfg(any(feature = "metrics", feature = "tracing"))]
trait Register: Sized {
    /// What decides which handles exist (whether the layer times calls, waits...).
    type Opts: Copy;

    /// Registers every handle under `name`. Called once per instance.
    fn register(name: Arc<str>, opts: Self::Opts) -> Self;

    /// The name registered under.
    fn name(&self) -> &str;
}

/// The handles of one instance, filled once.
#[cfg(any(feature = "metrics", feature = "tracing"))]
struct Cell<H: Register> {
    opts: H::Opts,
    handles: OnceLock<H>,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl<H: Register> Cell<H> {
    fn new(name: Option<&Arc<str>>, opts: H::Opts) -> Arc<Self> {
        let cell = Arc::new(Cell {
            opts,
            handles: OnceLock::new(),
        });
        if let Some(name) = name {
            cell.fill(name);
        }
        cell
    }

    /// Registers under `name` unless registered already; whether it registered now.
    fn fill(&self, name: &Arc<str>) -> bool {
        let mut now = false;
        self.handles.get_or_init(|| {
            now = true;
            H::register(Arc::clone(name), self.opts)
        });
        now
    }

    /// The handles, once registered: one load of the cell's state.
    #[inline]
    fn get(&self) -> Option<&H> {
        self.handles.get()
    }
}

/// Declares a layer's instruments: the handles behind an `Arc` with a feature on, a
/// zero-sized type with both off.
macro_rules! obs {
    ($(#[$doc:meta])* $obs:ident($handles:ident, $opts:ty)) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub(crate) struct $obs {
            #[cfg(any(feature = "metrics", feature = "tracing"))]
            cell: Arc<Cell<$handles>>,
        }

        impl $obs {
            /// The instruments of a new instance: registered now if `name` is given,
            /// else by [`adopt`](Self::adopt) or [`ensure`](Self::ensure).
            #[cfg_attr(
                not(any(feature = "metrics", feature = "tracing")),
                allow(unused_variables)
            )]
            pub(crate) fn new(name: Option<&Arc<str>>, opts: $opts) -> Self {
                $obs {
                    #[cfg(any(feature = "metrics", feature = "tracing"))]
                    cell: Cell::new(name, opts),
                }
            }

            /// Registers under `name` (a pipeline's) unless registered already;
            /// whether it registered now.
            #[cfg_attr(
                not(any(feature = "metrics", feature = "tracing")),
                allow(unused_variables)
            )]
            pub(crate) fn adopt(&self, name: &Arc<str>) -> bool {
                #[cfg(any(feature = "metrics", feature = "tracing"))]
                return self.cell.fill(name);
                #[cfg(not(any(feature = "metrics", feature = "tracing")))]
                false
            }

            /// Registers under the empty name unless registered already (the layer
            /// makes a service); whether it registered now.
            pub(crate) fn ensure(&self) -> bool {
                #[cfg(any(feature = "metrics", feature = "tracing"))]
                return self.cell.get().is_none() && self.cell.fill(&Arc::from(""));
                #[cfg(not(any(feature = "metrics", feature = "tracing")))]
                false
            }

            /// The name the instruments are registered under, once they are.
            pub(crate) fn name(&self) -> Option<&str> {
                #[cfg(any(feature = "metrics", feature = "tracing"))]
                return self.cell.get().map(|h| h.name());
                #[cfg(not(any(feature = "metrics", feature = "tracing")))]
                None
            }
        }

        impl fmt::Debug for $obs {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($obs))
                    .field("name", &self.name())
                    .finish()
            }
        }
    };
}

/// Runs `$body` with the handles `$h` when registered; nothing at all with both
/// features off.
macro_rules! with {
    ($self:ident, |$h:ident| $body:block) => {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        if let Some($h) = $self.cell.get() $body
    };
}

#[cfg(feature = "metrics")]
fn rejections(name: &Arc<str>, reason: &'static str) -> Counter {
    metrics::describe_counter!(
        "buttress_rejections_total",
        Unit::Count,
        "Calls refused by a buttress layer, by reason."
    );
    metrics::counter!("buttress_rejections_total", "name" => Arc::clone(name), "reason" => reason)
}

// ---------------------------------------------------------------------------------
// Circuit breaker

#[cfg(feature = "metrics")]
const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
];

#[cfg(feature = "metrics")]
fn state_index(s: State) -> usize {
    match s {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::Disabled => 4,
    }
}

/// Whether the breaker can move from `from` to `to`: by itself (closed to open, open to
/// half-open, half-open to closed or open) or by hand (to forced open or disabled from
/// any other state, and a reset to closed from any state, closed included).
#[cfg(feature = "metrics")]
fn can_move(from: State, to: State) -> bool {
    use State::*;
    match to {
        Closed => true,
        Open => matches!(from, Closed | HalfOpen),
        HalfOpen => from == Open,
        ForcedOpen | Disabled => from != to,
    }
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct BreakerHandles {
    name: Arc<str>,
    /// By outcome: success, failure, ignored, rejected.
    #[cfg(feature = "metrics")]
    calls: [Counter; 4],
    #[cfg(feature = "metrics")]
    rejections: Counter,
    /// By state, in the order of `STATES`.
    #[cfg(feature = "metrics")]
    state: [Gauge; 5],
    /// By `from` and `to` (indices into `STATES`): every transition the breaker can
    /// make, registered up front (so that each series starts at zero).
    #[cfg(feature = "metrics")]
    transitions: [[Option<Counter>; 5]; 5],
    /// Only when the breaker times calls.
    #[cfg(feature = "metrics")]
    duration: Option<Histogram>,
    /// The generation of the state the gauge shows (`None`: the closed state set at
    /// registration, of no known generation). A lock, taken only on transitions and
    /// at registration, never on a call: see [`BreakerHandles::show_state`].
    #[cfg(feature = "metrics")]
    shown: Mutex<Option<u32>>,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for BreakerHandles {
    /// Whether the breaker times calls (slow-call tracking).
    type Opts = bool;

    fn register(name: Arc<str>, timed: bool) -> Self {
        #[cfg(feature = "metrics")]
        {
            const CALLS: &str = "buttress_circuit_breaker_calls_total";
            const STATE: &str = "buttress_circuit_breaker_state";
            const DURATION: &str = "buttress_circuit_breaker_call_duration_seconds";
            metrics::describe_counter!(CALLS, Unit::Count, "Calls through the breaker by outcome.");
            metrics::describe_gauge!(
                STATE,
                "1 for the breaker's current state, 0 for the others."
            );
            let calls = ["success", "failure", "ignored", "rejected"]
                .map(|o| metrics::counter!(CALLS, "name" => Arc::clone(&name), "outcome" => o));
            let state = STATES.map(|s| {
                let g = metrics::gauge!(STATE, "name" => Arc::clone(&name), "state" => s.as_str());
                g.set(if s == State::Closed { 1.0 } else { 0.0 });
                g
            });
            const TRANSITIONS: &str = "buttress_circuit_breaker_transitions_total";
            metrics::describe_counter!(
                TRANSITIONS,
                Unit::Count,
                "Circuit breaker state transitions."
            );
            let transitions = STATES.map(|from| {
                STATES.map(|to| {
                    can_move(from, to).then(|| {
                        metrics::counter!(
                            TRANSITIONS,
                            "name" => Arc::clone(&name),
                            "from" => from.as_str(),
                            "to" => to.as_str()
                        )
                    })
                })
            });
            let duration = timed.then(|| {
                metrics::describe_histogram!(
                    DURATION,
                    Unit::Seconds,
                    "Duration of admitted calls."
                );
                metrics::histogram!(DURATION, "name" => Arc::clone(&name))
            });
            BreakerHandles {
                calls,
                rejections: rejections(&name, "circuit_open"),
                state,
                transitions,
                duration,
                shown: Mutex::new(None),
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = timed;
            BreakerHandles { name }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "metrics")]
impl BreakerHandles {
    /// Shows `to`, the state of `generation`, unless the gauge shows a newer
    /// generation's already. Listeners run after the transition's compare-and-swap, in
    /// no order: the listener of an older transition may run last, and must not put
    /// back its state. The check and the gauge writes are made under one lock, so that
    /// a thread preempted between them cannot write an older state over a newer one
    /// either (transitions are rare: the lock is not on the call path).
    fn show_state(&self, to: State, generation: u32) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        if shown.is_some_and(|g| !generation_is_after(generation, g)) {
            return;
        }
        for (gauge, s) in self.state.iter().zip(STATES) {
            gauge.set(if s == to { 1.0 } else { 0.0 });
        }
        *shown = Some(generation);
    }
}

obs! {
    /// The circuit breaker's instruments (kept in the core breaker's extension slot).
    BreakerObs(BreakerHandles, bool)
}

impl BreakerObs {
    /// An admitted call's outcome, as classified.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn outcome(&self, outcome: Outcome) {
        with!(self, |h| {
            let i = match outcome {
                Outcome::Success => 0,
                Outcome::Failure => 1,
                Outcome::Ignored => 2,
            };
            h.calls[i].increment(1);
        });
    }

    /// How long an admitted call took (only for a breaker that times calls).
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn duration(&self, took: Duration) {
        with!(self, |h| {
            if let Some(d) = &h.duration {
                d.record(took.as_secs_f64());
            }
        });
    }

    /// A call the breaker refused.
    #[inline]
    pub(crate) fn rejected(&self, retry_after: Option<Duration>) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            {
                h.calls[3].increment(1);
                h.rejections.increment(1);
            }
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::circuit_breaker",
                name = &*h.name,
                retry_after = ?retry_after,
                "call rejected: circuit open"
            );
        });
        #[cfg(not(feature = "tracing"))]
        let _ = retry_after;
    }

    /// A state transition (from the breaker's listener).
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    #[cold]
    pub(crate) fn transition(&self, t: &Transition<'_>) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "buttress::circuit_breaker",
            name = self.name().or(t.name).unwrap_or(""),
            from = t.from.as_str(),
            to = t.to.as_str(),
            at = ?t.at,
            generation = t.generation,
            "circuit breaker transition"
        );
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            h.show_state(t.to, t.generation);
            if let Some(c) = &h.transitions[state_index(t.from)][state_index(t.to)] {
                c.increment(1);
            }
        });
    }

    /// Shows `state`, the breaker's state in `generation`, in the state gauge (when the
    /// handles are registered late, after the breaker may have moved), unless it shows
    /// a newer generation's already (a transition's listener may have run since the
    /// breaker was read).
    #[cold]
    pub(crate) fn show_state(&self, state: State, generation: u32) {
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            h.show_state(state, generation);
        });
        #[cfg(not(feature = "metrics"))]
        let _ = (state, generation);
    }
}

// ---------------------------------------------------------------------------------
// Retry

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct RetryHandles {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    attempts: Counter,
    /// By reason: error, response, pushback.
    #[cfg(feature = "metrics")]
    retries: [Counter; 3],
    #[cfg(feature = "metrics")]
    budget_exhausted: Counter,
    #[cfg(feature = "metrics")]
    retries_exhausted: Counter,
    #[cfg(feature = "metrics")]
    rejections: Counter,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for RetryHandles {
    type Opts = ();

    fn register(name: Arc<str>, (): ()) -> Self {
        #[cfg(feature = "metrics")]
        {
            const ATTEMPTS: &str = "buttress_retry_attempts_total";
            const RETRIES: &str = "buttress_retry_retries_total";
            const BUDGET: &str = "buttress_retry_budget_exhausted_total";
            const EXHAUSTED: &str = "buttress_retry_retries_exhausted_total";
            metrics::describe_counter!(ATTEMPTS, Unit::Count, "Attempts sent, the first included.");
            metrics::describe_counter!(RETRIES, Unit::Count, "Retries scheduled, by reason.");
            metrics::describe_counter!(
                BUDGET,
                Unit::Count,
                "Calls ended because the retry budget refused a retry."
            );
            metrics::describe_counter!(
                EXHAUSTED,
                Unit::Count,
                "Calls that failed after at least one retry."
            );
            RetryHandles {
                attempts: metrics::counter!(ATTEMPTS, "name" => Arc::clone(&name)),
                retries: ["error", "response", "pushback"].map(
                    |r| metrics::counter!(RETRIES, "name" => Arc::clone(&name), "reason" => r),
                ),
                budget_exhausted: metrics::counter!(BUDGET, "name" => Arc::clone(&name)),
                retries_exhausted: metrics::counter!(EXHAUSTED, "name" => Arc::clone(&name)),
                rejections: rejections(&name, "budget_exhausted"),
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        RetryHandles { name }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

obs! {
    /// The retry's instruments.
    RetryObs(RetryHandles, ())
}

impl RetryObs {
    /// An attempt is sent (the first, or a retry).
    #[inline]
    pub(crate) fn attempt(&self) {
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            h.attempts.increment(1);
        });
    }

    /// A retry is scheduled: attempt number `attempt` goes after `delay`.
    #[cold]
    pub(crate) fn retry(&self, attempt: u32, delay: Duration, reason: RetryReason) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            h.retries[match reason {
                RetryReason::Response => 1,
                RetryReason::Pushback => 2,
                RetryReason::Error => 0,
            }]
            .increment(1);
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::retry",
                name = &*h.name,
                attempt,
                delay = ?delay,
                reason = ?reason,
                "retrying"
            );
        });
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = (attempt, delay, reason);
        #[cfg(all(feature = "metrics", not(feature = "tracing")))]
        let _ = (attempt, delay);
    }

    /// The budget refused a retry after `attempts` attempts: the call ends.
    #[cold]
    pub(crate) fn budget_exhausted(&self, attempts: u32) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            {
                h.budget_exhausted.increment(1);
                h.rejections.increment(1);
            }
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "buttress::retry",
                name = &*h.name,
                attempts,
                "retry budget exhausted"
            );
        });
        #[cfg(not(feature = "tracing"))]
        let _ = attempts;
    }

    /// The call failed after `attempts` attempts (more than one), with no retry left.
    #[cold]
    pub(crate) fn retries_exhausted(&self, attempts: u32) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            h.retries_exhausted.increment(1);
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::retry",
                name = &*h.name,
                attempts,
                "retries exhausted"
            );
        });
        #[cfg(not(feature = "tracing"))]
        let _ = attempts;
    }
}

// ---------------------------------------------------------------------------------
// Timeout

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct TimeoutHandles {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    elapsed: Counter,
    #[cfg(feature = "metrics")]
    rejections: Counter,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for TimeoutHandles {
    type Opts = ();

    fn register(name: Arc<str>, (): ()) -> Self {
        #[cfg(feature = "metrics")]
        {
            const ELAPSED: &str = "buttress_timeout_elapsed_total";
            metrics::describe_counter!(ELAPSED, Unit::Count, "Calls cut by the timeout.");
            TimeoutHandles {
                elapsed: metrics::counter!(ELAPSED, "name" => Arc::clone(&name)),
                rejections: rejections(&name, "elapsed"),
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        TimeoutHandles { name }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

obs! {
    /// The timeout's instruments.
    TimeoutObs(TimeoutHandles, ())
}

impl TimeoutObs {
    /// A call was cut after `after`.
    #[cold]
    pub(crate) fn elapsed(&self, after: Duration) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            {
                h.elapsed.increment(1);
                h.rejections.increment(1);
            }
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::timeout",
                name = &*h.name,
                after = ?after,
                "call timed out"
            );
        });
        #[cfg(not(feature = "tracing"))]
        let _ = after;
    }
}

// ---------------------------------------------------------------------------------
// Bulkhead

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct BulkheadHandles {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    in_flight: Gauge,
    #[cfg(feature = "metrics")]
    rejected: Counter,
    #[cfg(feature = "metrics")]
    rejections: Counter,
    /// Only when calls may wait.
    #[cfg(feature = "metrics")]
    waiting: Option<(Gauge, Histogram)>,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for BulkheadHandles {
    /// Whether calls may wait for a slot.
    type Opts = bool;

    fn register(name: Arc<str>, waits: bool) -> Self {
        #[cfg(feature = "metrics")]
        {
            const IN_FLIGHT: &str = "buttress_bulkhead_in_flight";
            const WAITING: &str = "buttress_bulkhead_waiting";
            const REJECTED: &str = "buttress_bulkhead_rejected_total";
            const WAIT: &str = "buttress_bulkhead_wait_duration_seconds";
            metrics::describe_gauge!(IN_FLIGHT, "Calls holding a bulkhead slot.");
            metrics::describe_counter!(REJECTED, Unit::Count, "Calls refused by the bulkhead.");
            let waiting = waits.then(|| {
                metrics::describe_gauge!(WAITING, "Calls waiting for a bulkhead slot.");
                metrics::describe_histogram!(
                    WAIT,
                    Unit::Seconds,
                    "Time calls waited for a bulkhead slot."
                );
                (
                    metrics::gauge!(WAITING, "name" => Arc::clone(&name)),
                    metrics::histogram!(WAIT, "name" => Arc::clone(&name)),
                )
            });
            BulkheadHandles {
                in_flight: metrics::gauge!(IN_FLIGHT, "name" => Arc::clone(&name)),
                rejected: metrics::counter!(REJECTED, "name" => Arc::clone(&name)),
                rejections: rejections(&name, "bulkhead_full"),
                waiting,
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = waits;
            BulkheadHandles { name }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

obs! {
    /// The bulkhead's instruments.
    BulkheadObs(BulkheadHandles, bool)
}

impl BulkheadObs {
    /// A call took a slot.
    #[inline]
    pub(crate) fn acquired(&self) {
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            h.in_flight.increment(1.0);
        });
    }

    /// A call gave its slot back.
    #[inline]
    pub(crate) fn released(&self) {
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            h.in_flight.decrement(1.0);
        });
    }

    /// A call was refused.
    #[cold]
    pub(crate) fn rejected(&self) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            {
                h.rejected.increment(1);
                h.rejections.increment(1);
            }
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::bulkhead",
                name = &*h.name,
                "call rejected: bulkhead full"
            );
        });
    }

    /// A call starts waiting for a slot, at `since`; the wait ends (in the waiting
    /// gauge and the wait histogram) when the returned timer drops.
    #[cold]
    pub(crate) fn wait_started(&self, since: tokio::time::Instant) -> WaitTimer {
        #[cfg(feature = "metrics")]
        with!(self, |h| {
            if let Some((waiting, _)) = &h.waiting {
                waiting.increment(1.0);
            }
        });
        #[cfg(not(feature = "metrics"))]
        let _ = since;
        WaitTimer {
            #[cfg(feature = "metrics")]
            obs: self.clone(),
            #[cfg(feature = "metrics")]
            since,
        }
    }
}

/// One call's wait for a bulkhead slot: recorded when dropped, however the wait ends
/// (a slot, a timeout, a cancellation). Zero-sized without the `metrics` feature.
pub(crate) struct WaitTimer {
    #[cfg(feature = "metrics")]
    obs: BulkheadObs,
    #[cfg(feature = "metrics")]
    since: tokio::time::Instant,
}

impl Drop for WaitTimer {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = self.obs.cell.get() {
            if let Some((waiting, took)) = &h.waiting {
                waiting.decrement(1.0);
                took.record(self.since.elapsed().as_secs_f64());
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Rate limiter

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct RateLimitHandles {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    rejected: Counter,
    #[cfg(feature = "metrics")]
    rejections: Counter,
    /// Only when calls may wait.
    #[cfg(feature = "metrics")]
    waited: Option<(Counter, Histogram)>,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for RateLimitHandles {
    /// Whether calls may wait for a slot.
    type Opts = bool;

    fn register(name: Arc<str>, waits: bool) -> Self {
        #[cfg(feature = "metrics")]
        {
            const REJECTED: &str = "buttress_rate_limit_rejected_total";
            const WAITED: &str = "buttress_rate_limit_waited_total";
            const WAIT: &str = "buttress_rate_limit_wait_duration_seconds";
            metrics::describe_counter!(REJECTED, Unit::Count, "Calls refused by the rate limiter.");
            let waited = waits.then(|| {
                metrics::describe_counter!(
                    WAITED,
                    Unit::Count,
                    "Calls delayed to a reserved rate-limit slot."
                );
                metrics::describe_histogram!(
                    WAIT,
                    Unit::Seconds,
                    "How long delayed calls slept for their rate-limit slot."
                );
                (
                    metrics::counter!(WAITED, "name" => Arc::clone(&name)),
                    metrics::histogram!(WAIT, "name" => Arc::clone(&name)),
                )
            });
            RateLimitHandles {
                rejected: metrics::counter!(REJECTED, "name" => Arc::clone(&name)),
                rejections: rejections(&name, "rate_limited"),
                waited,
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = waits;
            RateLimitHandles { name }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

obs! {
    /// The rate limiter's instruments.
    RateLimitObs(RateLimitHandles, bool)
}

impl RateLimitObs {
    /// A call was refused; a slot frees in `retry_after`.
    #[cold]
    pub(crate) fn rejected(&self, retry_after: Duration) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            {
                h.rejected.increment(1);
                h.rejections.increment(1);
            }
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::rate_limit",
                name = &*h.name,
                retry_after = ?retry_after,
                "call rejected: rate limited"
            );
        });
        #[cfg(not(feature = "tracing"))]
        let _ = retry_after;
    }

    /// A call reserved a slot `wait` ahead and sleeps until it.
    #[cold]
    pub(crate) fn waits(&self, wait: Duration) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            if let Some((waited, took)) = &h.waited {
                waited.increment(1);
                took.record(wait.as_secs_f64());
            }
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "buttress::rate_limit",
                name = &*h.name,
                wait = ?wait,
                "call delayed to a reserved slot"
            );
        });
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = wait;
    }
}

// ---------------------------------------------------------------------------------
// Fallback

#[cfg(any(feature = "metrics", feature = "tracing"))]
struct FallbackHandles {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    taken: Counter,
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
impl Register for FallbackHandles {
    type Opts = ();

    fn register(name: Arc<str>, (): ()) -> Self {
        #[cfg(feature = "metrics")]
        {
            const TAKEN: &str = "buttress_fallback_taken_total";
            metrics::describe_counter!(TAKEN, Unit::Count, "Calls answered by the fallback.");
            FallbackHandles {
                taken: metrics::counter!(TAKEN, "name" => Arc::clone(&name)),
                name,
            }
        }
        #[cfg(not(feature = "metrics"))]
        FallbackHandles { name }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

obs! {
    /// The fallback's instruments.
    FallbackObs(FallbackHandles, ())
}

impl FallbackObs {
    /// A failed call is answered by the fallback.
    #[cold]
    pub(crate) fn taken(&self) {
        with!(self, |h| {
            #[cfg(feature = "metrics")]
            h.taken.increment(1);
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "buttress::fallback", name = &*h.name, "fallback taken");
        });
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use buttress_core::clock::Nanos;
    use metrics::{Key, KeyName, Metadata, Recorder, SharedString};
    use metrics_util::registry::{AtomicStorage, Registry};
    use std::sync::atomic::Ordering;

    /// A recorder keeping every gauge and counter in `metrics-util`'s atomic registry.
    struct Rec(Registry<Key, AtomicStorage>);

    impl Recorder for Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.0
                .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.0
                .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.0
                .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
        }
    }

    impl Rec {
        /// The state gauge shows: the one state at 1 (panics unless exactly one is).
        fn shown(&self) -> State {
            let on: Vec<State> = STATES
                .into_iter()
                .filter(|s| {
                    let key = Key::from_parts(
                        "buttress_circuit_breaker_state",
                        vec![
                            metrics::Label::new("name", "db"),
                            metrics::Label::new("state", s.as_str()),
                        ],
                    );
                    let g = self.0.get_gauge(&key).expect("registered");
                    f64::from_bits(g.load(Ordering::SeqCst)) == 1.0
                })
                .collect();
            assert_eq!(on.len(), 1, "{on:?}");
            on[0]
        }

        fn transitions(&self, from: State, to: State) -> u64 {
            let key = Key::from_parts(
                "buttress_circuit_breaker_transitions_total",
                vec![
                    metrics::Label::new("name", "db"),
                    metrics::Label::new("from", from.as_str()),
                    metrics::Label::new("to", to.as_str()),
                ],
            );
            self.0
                .get_counter(&key)
                .expect("registered")
                .load(Ordering::SeqCst)
        }
    }

    fn obs(rec: &Rec) -> BreakerObs {
        metrics::with_local_recorder(rec, || BreakerObs::new(Some(&Arc::from("db")), false))
    }

    fn t(from: State, to: State, generation: u32) -> Transition<'static> {
        Transition {
            name: Some("db"),
            from,
            to,
            at: Nanos::ZERO,
            generation,
        }
    }

    /// Listeners run after the transition's compare-and-swap, unordered: a thread that
    /// won open -> half-open (generation 2) and was preempted runs its listener after
    /// the one that won half-open -> open (generation 3). The gauge keeps the newer
    /// state; the transition is still counted.
    #[test]
    fn a_late_listener_of_an_older_transition_leaves_the_state_gauge_alone() {
        let rec = Rec(Registry::atomic());
        let obs = obs(&rec);
        assert_eq!(rec.shown(), State::Closed);
        obs.transition(&t(State::Closed, State::Open, 1));
        assert_eq!(rec.shown(), State::Open);
        obs.transition(&t(State::HalfOpen, State::Open, 3));
        obs.transition(&t(State::Open, State::HalfOpen, 2));
        assert_eq!(rec.shown(), State::Open);
        assert_eq!(rec.transitions(State::Open, State::HalfOpen), 1);
        assert_eq!(rec.transitions(State::HalfOpen, State::Open), 1);
        obs.transition(&t(State::Open, State::HalfOpen, 4));
        assert_eq!(rec.shown(), State::HalfOpen);
    }

    /// Handles registered late show the breaker's state as read then, unless a
    /// transition's listener showed a newer one since.
    #[test]
    fn a_late_registration_shows_the_state_read_unless_a_newer_one_is_shown() {
        let rec = Rec(Registry::atomic());
        let obs = obs(&rec);
        obs.show_state(State::ForcedOpen, 5);
        assert_eq!(rec.shown(), State::ForcedOpen);
        obs.transition(&t(State::ForcedOpen, State::Closed, 6));
        obs.show_state(State::ForcedOpen, 5);
        assert_eq!(rec.shown(), State::Closed);
        obs.show_state(State::Disabled, 7);
        assert_eq!(rec.shown(), State::Disabled);
    }

    /// Generations wrap at 2^24: generation 0 comes after the last one.
    #[test]
    fn the_state_gauge_orders_generations_across_the_wrap() {
        let rec = Rec(Registry::atomic());
        let obs = obs(&rec);
        let last = (1 << 24) - 1;
        obs.transition(&t(State::Closed, State::Open, last - 1));
        obs.transition(&t(State::Open, State::HalfOpen, last));
        obs.transition(&t(State::HalfOpen, State::Open, 0));
        obs.transition(&t(State::Open, State::HalfOpen, last));
        assert_eq!(rec.shown(), State::Open);
        obs.transition(&t(State::Open, State::HalfOpen, 1));
        assert_eq!(rec.shown(), State::HalfOpen);
    }
}
