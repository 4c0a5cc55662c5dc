//! The circuit-breaker state machine: lock-free, allocation-free, clock-free.
//!
//! A [`Breaker`] is `Closed` while its window's failure and slow-call rates stay under
//! their thresholds. Once the window holds at least `minimum_calls` outcomes and a rate
//! reaches its threshold (inclusive), it opens: calls are rejected with a
//! `retry_after`. The first call after the open wait moves it to `HalfOpen`, where at
//! most `permitted_calls_in_half_open` probes go through; when that many have reported,
//! it closes if their rates are under the thresholds and opens again otherwise, with an
//! open wait that grows with each consecutive re-open (capped, optionally jittered)
//! and goes back to its first value once closed. `ForcedOpen` and `Disabled` are set
//! by hand and left by [`Breaker::reset`].
//!
//! Every admitted call holds a [`Permit`]: [`Permit::record`] reports its outcome, and
//! dropping it unreported (a cancelled call, a panic) counts nothing and gives back a
//! half-open probe slot. Every transition starts a new generation, and an outcome is
//! only counted in the generation its permit was issued in.
//!
//! The breaker never reads a clock: each operation takes a closure giving the time,
//! called at most once and only when the configuration or the state needs it (for a
//! closed breaker with a count window and no slow-call tracking, only when an outcome
//! trips it).
//!
//! ```
//! use buttress_core::breaker::{Breaker, BreakerConfig, Outcome, State};
//! use buttress_core::{ManualClock, Clock};
//! use std::{sync::Arc, time::Duration};
//!
//! let config = BreakerConfig::builder()
//!     .count_window(4)
//!     .minimum_calls(4)
//!     .failure_rate_threshold(50.0)
//!     .wait_in_open(Duration::from_secs(10))
//!     .permitted_calls_in_half_open(1)
//!     .build()?;
//! let breaker = Arc::new(Breaker::new(config));
//! let clock = ManualClock::new();
//! let now = || clock.now();
//!
//! for outcome in [Outcome::Success, Outcome::Failure, Outcome::Success, Outcome::Failure] {
//!     breaker.acquire(now).expect("closed").record(outcome, now);
//! }
//! assert_eq!(breaker.state(), State::Open); // 2 of 4 failed: 50 % >= 50 %
//! let rejected = breaker.acquire(now).unwrap_err();
//! assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));
//!
//! clock.advance(Duration::from_secs(10));
//! let probe = breaker.acquire(now).expect("the first call after the wait probes");
//! assert_eq!(breaker.state(), State::HalfOpen);
//! probe.record(Outcome::Success, now);
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), buttress_core::ConfigError>(())
//! ```
//!
//! ## Memory orderings
//!
//! The state word is the only thing decisions are made on; it is loaded with `Acquire`
//! and replaced by `AcqRel` compare-and-swaps, so that a thread acting on a new state
//! also sees what the thread that made the transition did before it. The deadline word
//! is keyed by generation (see [`Breaker`]): a reader that finds another generation's
//! deadline treats the deadline as not published yet. Its writer publishes it with a
//! compare-and-swap that re-checks the state word's generation, so that a late writer
//! never replaces the deadline of a later transition (see `publish_deadline`). The
//! windows' counters are statistics and mostly `Relaxed`; each word of a window carries
//! the generation it belongs to, so an outcome that raced a transition is not written
//! into a later generation's window (see the `window` module).

mod config;
mod state;
mod window;

pub use config::{BreakerConfig, BreakerConfigBuilder, WindowKind};
pub use state::{State, generation_is_after};

use crate::Nanos;
use crate::sync::Padded;
use crate::sync::{AtomicU64, Ordering};
use state::{GEN_MASK, Word};
use std::fmt;
use std::hash::BuildHasher;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;
use window::{CountWindow, Counts, TimeWindow, Window};

/// The verdict on one call, as reported to [`Permit::record`] (and given by the
/// `buttress` crate's classifiers, which use this same type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed: it counts against the backend.
    Failure,
    /// The call is not counted either way (a client error, a cancellation, a refusal
    /// by a layer inside the breaker); a half-open probe slot it held is given back.
    Ignored,
}

/// A state transition, as given to the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<'a> {
    /// The breaker's name, if it was given one.
    pub name: Option<&'a str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// When, on the clock the breaker is driven by.
    pub at: Nanos,
    /// The generation entered (24 bits, wrapping).
    pub generation: u32,
}

/// A callback run on every state transition, on the thread that made it.
pub type Listener = Arc<dyn Fn(&Transition<'_>) + Send + Sync>;

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    retry_after: Option<Nanos>,
    /// The generation of the state word the rejection was decided on.
    generation: u32,
}

/// What a call made now would meet, as [`Breaker::peek`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Admitted (perhaps through a transition that [`Breaker::acquire`] makes).
    Admit,
    /// Rejected, with nothing to change: [`Breaker::reject_peeked`] confirms it
    /// without reading the clock again.
    Reject(Rejected),
    /// Rejected, but only after a transition that [`Breaker::acquire`] makes (the
    /// half-open probes are overdue and the breaker re-opens).
    RejectAfterTransition,
}

impl Rejected {
    /// How long until a probe may go, when known (open: the rest of the wait; forced
    /// open or half-open with every probe slot taken: unknown).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after.map(Nanos::as_duration)
    }
}

/// A snapshot of the breaker's window and counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// The state.
    pub state: State,
    /// Outcomes in the window.
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them.
    pub slow_calls: u64,
    /// `failures / calls` in percent (0 for an empty window).
    pub failure_rate: f64,
    /// `slow_calls / calls` in percent (0 for an empty window).
    pub slow_call_rate: f64,
    /// Calls rejected since the breaker was made.
    pub not_permitted: u64,
    /// The current generation.
    pub generation: u32,
}

/// The time, read at most once, and only if asked for.
struct LazyNow<F> {
    f: Option<F>,
    at: Nanos,
}

impl<F: FnOnce() -> Nanos> LazyNow<F> {
    #[inline]
    fn new(f: F) -> Self {
        LazyNow {
            f: Some(f),
            at: Nanos::ZERO,
        }
    }

    #[inline]
    fn get(&mut self) -> Nanos {
        if let Some(f) = self.f.take() {
            self.at = f();
        }
        self.at
    }
}

/// Deadline word layout: `generation & 0xffff` in bits 48..64, the deadline in whole
/// microseconds (rounded up, saturating at 2^48 - 1, about 8.9 years after the clock's
/// origin, which is read as "never") in bits 0..48. In `Open` it is when the first probe may go; in `HalfOpen` when unreported
/// probes stop blocking a re-open.
const DEADLINE_BITS: u32 = 48;
const DEADLINE_MASK: u64 = (1 << DEADLINE_BITS) - 1;

fn pack_deadline(generation: u32, at: Nanos) -> u64 {
    let micros = at.as_u64().div_ceil(1_000).min(DEADLINE_MASK);
    ((generation as u64 & 0xffff) << DEADLINE_BITS) | micros
}

/// What an acquire attempt decided for one observed state word.
enum Step {
    Admit,
    Reject(Option<Nanos>),
    /// Swap in the new word; the call is admitted (as a probe) when the new word is
    /// `HalfOpen`, rejected when it is `Open` again.
    Move {
        next: Word,
    },
}

/// The circuit breaker's shared state: one per breaker, behind an `Arc`.
///
/// Two atomic words: the state word (layout at `state::Word`) and a deadline word
/// (layout at `DEADLINE_BITS`), written by the thread that made the transition right
/// after its CAS, unless the breaker has moved on by then. Plus the window and a
/// rejection counter.
///
/// **Time.** Give it a clock that counts from about when the breaker was made (as
/// every clock of the layers does), not from a far origin such as the Unix epoch: an
/// open or half-open deadline is kept in whole microseconds in 48 bits, so one falling
/// more than about 8.9 years after the clock's origin saturates and reads as "never"
/// (the breaker would then stay open until reset).
///
/// `X` is an extension the breaker carries for its user without reading it (the layer
/// keeps its metric handles there): reachable from every [`Permit`] through the `Arc`
/// the permit already holds, so a response future needs no second reference.
pub struct Breaker<X = ()> {
    /// Read on every call, written on transitions only: on lines of their own, away
    /// from the counters written on every call (and from the `Arc`'s counts).
    state: Padded<AtomicU64>,
    deadline: AtomicU64,
    window: Window,
    not_permitted: Padded<AtomicU64>,
    config: BreakerConfig,
    name: Option<Arc<str>>,
    listener: Option<Listener>,
    seed: u64,
    ext: X,
}

impl<X> fmt::Debug for Breaker<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("config", &self.config)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker with an empty window.
    pub fn new(config: BreakerConfig) -> Self {
        let window = match config.window {
            WindowKind::Count { calls } => Window::Count(CountWindow::new(calls)),
            WindowKind::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets))
            }
        };
        Breaker {
            state: Padded(AtomicU64::new(Word::INITIAL.0)),
            deadline: AtomicU64::new(0),
            window,
            not_permitted: Padded(AtomicU64::new(0)),
            config,
            name: None,
            listener: None,
            // A per-breaker random seed for the open-wait jitter, from std's hasher keys.
            seed: std::collections::hash_map::RandomState::new().hash_one(0x6a09_e667_u64),
            ext: (),
        }
    }
}

impl<X> Breaker<X> {
    /// The same breaker carrying `ext` (in place of its extension so far), to be read
    /// back with [`extension`](Self::extension), also through [`Permit::breaker`].
    pub fn with_extension<Y>(self, ext: Y) -> Breaker<Y> {
        Breaker {
            state: self.state,
            deadline: self.deadline,
            window: self.window,
            not_permitted: self.not_permitted,
            config: self.config,
            name: self.name,
            listener: self.listener,
            seed: self.seed,
            ext,
        }
    }

    /// The extension given with [`with_extension`](Self::with_extension).
    #[inline]
    pub fn extension(&self) -> &X {
        &self.ext
    }

    /// Names the breaker (for the listener, logs and metrics).
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Calls `listener` on every transition, on the thread that made it. Without one,
    /// a transition costs nothing more than its compare-and-swap.
    pub fn with_listener(mut self, listener: Listener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Fixes the jitter seed (for reproducible tests).
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Whether [`acquire`](Self::acquire) needs the time even in the closed state
    /// (slow calls are tracked, so the permit remembers when the call started).
    pub fn times_calls(&self) -> bool {
        self.config.slow_call_duration.is_some()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.load().state()
    }

    /// Whether the breaker is closed: one load, for a caller's fast path (a closed
    /// breaker admits every call, without reading the clock).
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.load().is_closed()
    }

    #[inline]
    fn load(&self) -> Word {
        // Acquire: see the module docs (pairs with the AcqRel CAS of each transition).
        Word(self.state.load(Ordering::Acquire))
    }

    /// Asks to make a call. `now` is called at most once: when slow calls are tracked,
    /// or when the breaker is open, or half-open with a `max_wait_in_half_open`.
    #[inline]
    pub fn acquire<F: FnOnce() -> Nanos>(self: &Arc<Self>, now: F) -> Result<Permit<X>, Rejected> {
        self.acquire_via(self, now)
    }

    /// [`acquire`](Self::acquire), with the permit holding a clone of `owner` to reach
    /// the breaker: a caller's own [`BreakerRef`] to this breaker, such as one of
    /// several handles that spread the reference counts of many threads over many
    /// cache lines. The decision reads `self`; the permit clones `owner`.
    ///
    /// # Panics
    ///
    /// In debug builds, if `owner` does not lead to this breaker.
    #[inline]
    pub fn acquire_via<R, F>(&self, owner: &R, now: F) -> Result<Permit<X, R>, Rejected>
    where
        R: BreakerRef<Ext = X>,
        F: FnOnce() -> Nanos,
    {
        debug_assert!(
            std::ptr::eq(owner.breaker(), self),
            "a handle to another breaker"
        );
        let this = self;
        let mut now = LazyNow::new(now);
        let started_at = if this.times_calls() {
            now.get()
        } else {
            Nanos::ZERO
        };
        let mut cur = this.load();
        loop {
            let next = match this.decide_acquire(cur, &mut now) {
                Step::Admit => return Ok(permit(owner, cur.generation(), started_at, false)),
                Step::Reject(retry_after) => {
                    return Err(this.reject(retry_after, cur.generation()));
                }
                Step::Move { next, .. } => next,
            };
            // AcqRel: success publishes the new state (Release) after having read the
            // one it replaces (Acquire); failure re-reads with Acquire like `load`.
            match this.state.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // The probe's permit exists before the listener runs: should the
                    // listener panic, the permit's drop gives the slot back.
                    let probe = (next.state() == State::HalfOpen)
                        .then(|| permit(owner, next.generation(), started_at, true));
                    if next.generation() != cur.generation() {
                        this.after_transition(cur, next, now.get());
                    }
                    return match probe {
                        Some(probe) => Ok(probe),
                        None => Err(this.reject(
                            this.deadline_of(next).map(|d| d - now.get()),
                            next.generation(),
                        )),
                    };
                }
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// The pure part of acquire: what to do in state `cur` at time `now` (read lazily).
    #[inline]
    fn decide_acquire<F: FnOnce() -> Nanos>(&self, cur: Word, now: &mut LazyNow<F>) -> Step {
        if cur.is_closed() {
            return Step::Admit;
        }
        match cur.state() {
            State::Closed | State::Disabled => Step::Admit,
            State::ForcedOpen => Step::Reject(None),
            State::Open => match self.deadline_of(cur) {
                // The transition's deadline is not published yet: still waiting.
                None => Step::Reject(None),
                // `Nanos::MAX` is "never", even at the end of time.
                Some(d) if d == Nanos::MAX || now.get() < d => Step::Reject(Some(d - now.get())),
                Some(_) => Step::Move {
                    next: cur
                        .next(State::HalfOpen, cur.reopens())
                        .with_probes(1, 0, 0, 0),
                },
            },
            State::HalfOpen => {
                // Past `max_wait_in_half_open` without a decision, the test has failed,
                // whether its probes hang or were given up (a probe cancelled by an
                // outer timeout frees its slot, and the next call would only be
                // another probe to the same hung backend): open again. Without a limit
                // the deadline is "never" and the clock is not read.
                match self.deadline_of(cur) {
                    Some(d) if d != Nanos::MAX && now.get() >= d => Step::Move {
                        next: cur.next(State::Open, cur.reopens() + 1),
                    },
                    _ if cur.issued() < self.config.permitted_calls_in_half_open => Step::Move {
                        next: cur.with_probes(
                            cur.issued() + 1,
                            cur.done(),
                            cur.failed(),
                            cur.slow(),
                        ),
                    },
                    _ => Step::Reject(None),
                }
            }
        }
    }

    /// What a call made now would meet, without changing anything: what the layer's
    /// `poll_ready` asks before deciding whether to poll the inner service. One load
    /// of the state word (plus the deadline word, and `now` when open, or half-open
    /// with a `max_wait_in_half_open`).
    #[inline]
    pub fn peek<F: FnOnce() -> Nanos>(&self, now: F) -> Peek {
        let mut now = LazyNow::new(now);
        let cur = self.load();
        match self.decide_acquire(cur, &mut now) {
            Step::Admit => Peek::Admit,
            Step::Reject(retry_after) => Peek::Reject(Rejected {
                retry_after,
                generation: cur.generation(),
            }),
            Step::Move { next } if next.state() == State::HalfOpen => Peek::Admit,
            Step::Move { .. } => Peek::RejectAfterTransition,
        }
    }

    /// Whether a call made now would be rejected, without changing anything.
    #[inline]
    pub fn would_reject<F: FnOnce() -> Nanos>(&self, now: F) -> bool {
        self.peek(now) != Peek::Admit
    }

    /// Rejects a call that [`peek`](Self::peek) found rejected, if the breaker is
    /// still in the generation `peek` saw (then nothing can have changed the verdict
    /// but time, and the verdict stands as of the peek): counted like a rejection by
    /// [`acquire`](Self::acquire). `None` if the breaker has moved on since: ask
    /// `acquire`.
    #[inline]
    pub fn reject_peeked(&self, peeked: Rejected) -> Option<Rejected> {
        if self.load().generation() == peeked.generation {
            Some(self.reject(peeked.retry_after, peeked.generation))
        } else {
            None
        }
    }

    #[inline]
    fn reject(&self, retry_after: Option<Nanos>, generation: u32) -> Rejected {
        // Relaxed: a statistic, read only for metrics.
        self.not_permitted.fetch_add(1, Ordering::Relaxed);
        Rejected {
            retry_after,
            generation,
        }
    }

    /// The deadline published for `w`'s generation, if it is published yet.
    #[inline]
    fn deadline_of(&self, w: Word) -> Option<Nanos> {
        // Acquire pairs with the Release store in `after_transition`; the generation
        // key is what makes a stale value harmless.
        let d = self.deadline.load(Ordering::Acquire);
        if (d >> DEADLINE_BITS) as u32 != w.generation() & 0xffff {
            return None;
        }
        match d & DEADLINE_MASK {
            // Saturated: "never" (a wait past the field's 8.9 years).
            DEADLINE_MASK => Some(Nanos::MAX),
            micros => Some(Nanos::from_micros(micros)),
        }
    }

    /// Publishes `deadline` for `generation`, unless the breaker has left that
    /// generation: a thread preempted between its transition and this call must not
    /// replace the deadline of a later transition (the breaker would then find none for
    /// its generation, and an open one would reject every call, never to probe).
    fn publish_deadline(&self, generation: u32, deadline: Nanos) {
        let packed = pack_deadline(generation, deadline);
        // Acquire (here and on failure below): if `seen` is a later transition's
        // deadline, that transition's CAS of the state word, made before it published,
        // happens-before the state load that follows, which then shows the breaker has
        // left `generation`. So the exchange below succeeds only if no later
        // transition's deadline was published before it; one published after it
        // replaces it, as it should.
        let mut seen = self.deadline.load(Ordering::Acquire);
        while self.load().generation() == generation {
            // Release: pairs with the Acquire loads in `deadline_of` and above.
            match self.deadline.compare_exchange_weak(
                seen,
                packed,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => seen = actual,
            }
        }
    }

    /// The open wait for a breaker entering `Open` as `w`.
    fn open_wait(&self, w: Word) -> Nanos {
        if self.config.open_jitter == 0.0 {
            return self.config.open_wait(w.reopens());
        }
        // splitmix64 of the seed and the generation: a uniform draw in [0, 1).
        let mut z = self.seed ^ (w.generation() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.config.jittered_open_wait(w.reopens(), u)
    }

    /// Side effects of a transition won by this thread: the deadline, the window, the
    /// listener.
    #[cold]
    fn after_transition(&self, from: Word, to: Word, at: Nanos) {
        let deadline = match to.state() {
            State::Open => Some(at + self.open_wait(to)),
            State::HalfOpen => Some(match self.config.max_wait_in_half_open {
                Some(w) => at + w,
                None => Nanos::MAX,
            }),
            _ => None,
        };
        if let Some(d) = deadline {
            self.publish_deadline(to.generation(), d);
        }
        // Every transition re-stamps the window with the generation entered (leaving
        // Closed empties it: an open breaker's metrics show no calls; entering it
        // starts the new generation's window), so that no outcome of an earlier one
        // lands in it (see `window`), and a late clear of an older transition leaves a
        // newer generation's window alone. Also between Open and HalfOpen, where the
        // window is empty anyway: stamps are compared as generations wrap, within half
        // their range, and a stamp left at the trip while a failing backend's tests
        // went on for 2^23 generations would read as newer than the state, blinding
        // the window for good once the breaker closed.
        self.window.clear(to.generation());
        if let Some(listener) = &self.listener {
            listener(&Transition {
                name: self.name.as_deref(),
                from: from.state(),
                to: to.state(),
                at,
                generation: to.generation(),
            });
        }
    }

    /// Whether the window trips the breaker: at least `minimum_calls` outcomes, and a
    /// rate at or above its threshold.
    #[inline]
    fn trips(&self, c: Counts) -> bool {
        c.calls >= self.config.minimum_calls as u64 && self.rates_reach(c)
    }

    /// Whether a rate is at or above its threshold (thresholds are in hundredths of a
    /// percent, so the comparison is exact integer arithmetic). The slow rate only
    /// counts when slow calls are tracked.
    #[inline]
    fn rates_reach(&self, c: Counts) -> bool {
        c.failures * 10_000 >= self.config.failure_bp * c.calls
            || (self.times_calls() && c.slow * 10_000 >= self.config.slow_bp * c.calls)
    }

    #[inline]
    fn record<R>(&self, p: &Held<R>, outcome: Outcome, now: impl FnOnce() -> Nanos) {
        let cur = self.load();
        // The common case, decided with three loads and no write: a success while
        // closed in the permit's generation, into a count window full of successes,
        // with no slow calls to time (see `CountWindow::record`).
        if outcome == Outcome::Success
            && cur.is_closed_in(p.generation())
            && self.config.slow_call_duration.is_none()
            && self.window.is_count_of_successes()
        {
            return;
        }
        self.record_from(cur, p, outcome, now);
    }

    /// [`record`](Self::record) past its common case.
    #[inline(never)]
    fn record_from<R>(
        &self,
        cur: Word,
        p: &Held<R>,
        outcome: Outcome,
        now: impl FnOnce() -> Nanos,
    ) {
        let mut now = LazyNow::new(now);
        if cur.generation() != p.generation() {
            // Fenced: the permit belongs to an earlier generation.
            return;
        }
        if outcome == Outcome::Ignored {
            if p.is_probe() {
                self.release_probe(p.generation());
            }
            return;
        }
        let failed = outcome == Outcome::Failure;
        let slow = match self.config.slow_call_duration {
            Some(limit) => now.get().saturating_sub(p.started_at) >= limit,
            None => false,
        };
        if cur.is_closed() {
            let at = if self.window.needs_time() {
                now.get()
            } else {
                Nanos::ZERO
            };
            // The window only takes it while it is this generation's (see `window`): the
            // state may have moved on since `cur` was loaded.
            if let Some(counts) = self.window.record(failed, slow, at, p.generation()) {
                if self.trips(counts) {
                    self.trip(p.generation(), &mut now);
                }
            }
        } else if cur.state() == State::HalfOpen {
            self.record_probe(p.generation(), failed, slow, &mut now);
        }
        // Disabled counts nothing; Open and ForcedOpen never issue permits.
    }

    #[cold]
    fn trip<F: FnOnce() -> Nanos>(&self, generation: u32, now: &mut LazyNow<F>) {
        let mut cur = self.load();
        while cur.state() == State::Closed && cur.generation() == generation {
            let next = cur.next(State::Open, 0);
            // AcqRel / Acquire: as in `acquire`.
            match self.state.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.after_transition(cur, next, now.get()),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    fn record_probe<F: FnOnce() -> Nanos>(
        &self,
        generation: u32,
        failed: bool,
        slow: bool,
        now: &mut LazyNow<F>,
    ) {
        let permitted = self.config.permitted_calls_in_half_open;
        let mut cur = self.load();
        while cur.state() == State::HalfOpen && cur.generation() == generation {
            let done = cur.done() + 1;
            let nf = cur.failed() + failed as u32;
            let ns = cur.slow() + slow as u32;
            let next = if done < permitted {
                cur.with_probes(cur.issued(), done, nf, ns)
            } else if self.rates_reach(Counts {
                calls: done as u64,
                failures: nf as u64,
                slow: ns as u64,
            }) {
                cur.next(State::Open, cur.reopens() + 1)
            } else {
                cur.next(State::Closed, 0)
            };
            // AcqRel / Acquire: as in `acquire`.
            match self.state.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next.generation() != cur.generation() {
                        self.after_transition(cur, next, now.get());
                    }
                    return;
                }
                Err(actual) => cur = Word(actual),
            }
        }
    }

    fn release_probe(&self, generation: u32) {
        let mut cur = self.load();
        while cur.state() == State::HalfOpen
            && cur.generation() == generation
            && cur.issued() > cur.done()
        {
            let next = cur.with_probes(cur.issued() - 1, cur.done(), cur.failed(), cur.slow());
            // AcqRel / Acquire: as in `acquire`.
            match self.state.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// Moves to `to` from any state, as a manual control (a no-op when already in `to`,
    /// except that `reset` always starts a fresh closed generation).
    fn force(&self, to: State, at: Nanos) {
        let mut cur = self.load();
        loop {
            if cur.state() == to && to != State::Closed {
                return;
            }
            let next = cur.next(to, 0);
            // AcqRel / Acquire: as in `acquire`.
            match self.state.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // `after_transition` clears the window when leaving or entering Closed.
                Ok(_) => return self.after_transition(cur, next, at),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// Opens the breaker until [`reset`](Self::reset) or [`disable`](Self::disable):
    /// every call is rejected, with no `retry_after`.
    pub fn force_open(&self, now: Nanos) {
        self.force(State::ForcedOpen, now)
    }

    /// Switches the breaker off: every call passes and nothing is recorded, until
    /// [`reset`](Self::reset) or [`force_open`](Self::force_open).
    pub fn disable(&self, now: Nanos) {
        self.force(State::Disabled, now)
    }

    /// Closes the breaker with an empty window and the first open wait, from any state
    /// (a new generation, even when already closed).
    pub fn reset(&self, now: Nanos) {
        self.force(State::Closed, now)
    }

    /// A snapshot of the state, the window and the rejection count. `now` moves a time
    /// window forward before it is read.
    pub fn metrics(&self, now: Nanos) -> Metrics {
        let w = self.load();
        let c = self.window.counts(now);
        let rate = |n: u64| {
            if c.calls == 0 {
                0.0
            } else {
                (n.min(c.calls) as f64) * 100.0 / c.calls as f64
            }
        };
        Metrics {
            state: w.state(),
            calls: c.calls,
            failures: c.failures,
            slow_calls: c.slow,
            failure_rate: rate(c.failures),
            slow_call_rate: rate(c.slow),
            // Relaxed: a statistic.
            not_permitted: self.not_permitted.load(Ordering::Relaxed),
            generation: w.generation() & GEN_MASK,
        }
    }
}

/// How a [`Permit`] holds on to its breaker: an `Arc<Breaker<X>>` by default
/// ([`Breaker::acquire`]), or a caller's own shared handle to one
/// ([`Breaker::acquire_via`]). A permit clones it once when issued and drops it once.
pub trait BreakerRef: Clone {
    /// The breaker's extension type.
    type Ext;

    /// The breaker.
    fn breaker(&self) -> &Breaker<Self::Ext>;
}

impl<X> BreakerRef for Arc<Breaker<X>> {
    type Ext = X;

    #[inline]
    fn breaker(&self) -> &Breaker<X> {
        self
    }
}

/// The permit of an admitted call, reaching its breaker through `owner`.
#[inline]
fn permit<R: BreakerRef>(
    owner: &R,
    generation: u32,
    started_at: Nanos,
    probe: bool,
) -> Permit<R::Ext, R> {
    Permit {
        held: ManuallyDrop::new(Some(Held {
            owner: owner.clone(),
            started_at,
            meta: generation as u64 | if probe { PROBE } else { 0 },
        })),
    }
}

/// Leave to make one call, from [`Breaker::acquire`] (or
/// [`acquire_via`](Breaker::acquire_via), holding `R`). Report its outcome with
/// [`record`](Permit::record); dropping it unreported counts nothing and gives back the
/// half-open probe slot it may hold.
pub struct Permit<X = (), R: BreakerRef<Ext = X> = Arc<Breaker<X>>> {
    /// `None` once reported. (An `Option` rather than a flag: taking it is one
    /// whole-word store, which keeps moves of the permit cheap.) In a `ManuallyDrop`
    /// so that the permit's drop is its own one check, small enough to inline
    /// wherever a permit is dropped: what it holds is dropped out of line.
    held: ManuallyDrop<Option<Held<R>>>,
}

struct Held<R> {
    owner: R,
    started_at: Nanos,
    /// The generation in bits 0..24, and [`PROBE`].
    meta: u64,
}

/// The permit holds a half-open probe slot.
const PROBE: u64 = 1 << 32;

impl<R> Held<R> {
    #[inline]
    fn generation(&self) -> u32 {
        self.meta as u32 & GEN_MASK
    }

    #[inline]
    fn is_probe(&self) -> bool {
        self.meta & PROBE != 0
    }
}

impl<X, R: BreakerRef<Ext = X>> fmt::Debug for Permit<X, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation())
            .field("started_at", &self.started_at())
            .field("probe", &self.is_probe())
            .finish_non_exhaustive()
    }
}

impl<X, R: BreakerRef<Ext = X>> Permit<X, R> {
    /// Reports the call's outcome. `now` is called at most once: when slow calls are
    /// tracked, with a time window, or when the outcome causes a transition.
    #[inline]
    pub fn record(mut self, outcome: Outcome, now: impl FnOnce() -> Nanos) {
        self.record_once(outcome, now);
    }

    /// Reports the call's outcome, like [`record`](Self::record), through a
    /// reference: for a permit kept in place (in a pinned future). Only the first
    /// report counts; later ones, and the drop, do nothing.
    #[inline]
    pub fn record_once(&mut self, outcome: Outcome, now: impl FnOnce() -> Nanos) {
        // Read in place, then cleared: moving the held fields out in one wide copy
        // would load what the caller has just stored field by field, which the
        // processor cannot forward from its store buffer (a stall of several ns).
        if let Some(held) = &*self.held {
            held.owner.breaker().record(held, outcome, now);
            *self.held = None;
        }
    }

    /// Like [`record_once`](Self::record_once), with `now` given the breaker's
    /// [`extension`](Breaker::extension) (where a layer may keep its clock).
    #[inline]
    pub fn record_once_with(&mut self, outcome: Outcome, now: impl FnOnce(&X) -> Nanos) {
        // In place, as in `record_once`.
        if let Some(held) = &*self.held {
            let breaker = held.owner.breaker();
            breaker.record(held, outcome, || now(breaker.extension()));
            *self.held = None;
        }
    }

    /// Whether the outcome is still to be reported.
    #[inline]
    pub fn is_unreported(&self) -> bool {
        self.held.is_some()
    }

    /// The breaker that issued the permit (and its [`extension`](Breaker::extension)),
    /// until the outcome is reported.
    #[inline]
    pub fn breaker(&self) -> Option<&Breaker<X>> {
        self.held.as_ref().map(|h| h.owner.breaker())
    }

    /// The generation the permit was issued in.
    pub fn generation(&self) -> u32 {
        self.held.as_ref().map_or(0, Held::generation)
    }

    /// Whether this permit holds a half-open probe slot.
    pub fn is_probe(&self) -> bool {
        self.held.as_ref().is_some_and(Held::is_probe)
    }

    /// When the call started (zero unless slow calls are tracked).
    pub fn started_at(&self) -> Nanos {
        self.held.as_ref().map_or(Nanos::ZERO, |h| h.started_at)
    }
}

impl<X, R: BreakerRef<Ext = X>> Drop for Permit<X, R> {
    #[inline]
    fn drop(&mut self) {
        // Reported (the common case): nothing is left to drop.
        if self.held.is_some() {
            self.drop_unreported();
        }
    }
}

impl<X, R: BreakerRef<Ext = X>> Permit<X, R> {
    /// Dropped unreported: gives back a probe slot, and drops the reference.
    #[cold]
    #[inline(never)]
    fn drop_unreported(&mut self) {
        if let Some(held) = self.held.take() {
            if held.is_probe() {
                held.owner.breaker().release_probe(held.generation());
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn tripped(jitter: f64, seed: u64) -> (Arc<Breaker>, Rejected) {
        let config = BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .wait_in_open(Duration::from_secs(10))
            .open_jitter(jitter)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config).with_jitter_seed(seed));
        b.acquire(|| Nanos::ZERO)
            .unwrap()
            .record(Outcome::Failure, || Nanos::ZERO);
        let r = b.acquire(|| Nanos::ZERO).unwrap_err();
        (b, r)
    }

    #[test]
    fn jitter_shortens_the_open_wait_within_its_fraction() {
        let mut waits = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let (_, r) = tripped(0.5, seed);
            let w = r.retry_after().unwrap();
            assert!(
                w >= Duration::from_secs(5) && w <= Duration::from_secs(10),
                "{w:?}"
            );
            waits.insert(w);
        }
        assert!(waits.len() > 16, "seeds spread the waits: {waits:?}");
        let (_, r) = tripped(0.0, 7);
        assert_eq!(r.retry_after(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn a_permit_through_another_handle_reports_to_the_same_breaker() {
        // A handle of the caller's own: an `Arc` of its own around an `Arc` of the
        // breaker.
        struct Inner(Arc<Breaker>);
        #[derive(Clone)]
        struct Handle(Arc<Inner>);
        impl BreakerRef for Handle {
            type Ext = ();
            fn breaker(&self) -> &Breaker {
                &self.0.0
            }
        }
        let config = BreakerConfig::builder()
            .count_window(2)
            .minimum_calls(2)
            .build()
            .expect("valid config");
        let breaker = Arc::new(Breaker::new(config));
        let handle = Handle(Arc::new(Inner(Arc::clone(&breaker))));
        for _ in 0..2 {
            let permit = breaker
                .acquire_via(&handle, || Nanos::ZERO)
                .expect("closed");
            assert_eq!(
                Arc::strong_count(&handle.0),
                2,
                "the permit holds the handle"
            );
            permit.record(Outcome::Failure, || Nanos::ZERO);
            assert_eq!(Arc::strong_count(&handle.0), 1, "and lets it go");
        }
        assert_eq!(breaker.state(), State::Open);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a handle to another breaker")]
    fn a_handle_to_another_breaker_is_refused() {
        let one = Arc::new(Breaker::new(
            BreakerConfig::builder().build().expect("valid"),
        ));
        let other = Arc::new(Breaker::new(
            BreakerConfig::builder().build().expect("valid"),
        ));
        let _ = one.acquire_via(&other, || Nanos::ZERO);
    }

    #[test]
    fn a_peeked_rejection_stands_only_in_its_generation() {
        let (b, _) = tripped(0.0, 1);
        let Peek::Reject(r) = b.peek(|| Nanos::from_secs(4)) else {
            panic!("open")
        };
        assert_eq!(r.retry_after(), Some(Duration::from_secs(6)));
        let before = b.metrics(Nanos::ZERO).not_permitted;
        assert_eq!(b.reject_peeked(r), Some(r));
        assert_eq!(b.metrics(Nanos::ZERO).not_permitted, before + 1);
        b.reset(Nanos::from_secs(5));
        assert_eq!(b.peek(|| unreachable!("closed: no clock")), Peek::Admit);
        assert_eq!(b.reject_peeked(r), None, "moved on: ask acquire");
        assert_eq!(b.metrics(Nanos::ZERO).not_permitted, before + 1);
    }

    #[test]
    fn deadlines_round_up_to_the_microsecond_and_saturate() {
        assert_eq!(pack_deadline(0, Nanos::new(1)) & DEADLINE_MASK, 1);
        assert_eq!(pack_deadline(0, Nanos::new(1_000)) & DEADLINE_MASK, 1);
        assert_eq!(pack_deadline(0, Nanos::MAX) & DEADLINE_MASK, DEADLINE_MASK);
        assert_eq!(
            pack_deadline(0x1_2345, Nanos::ZERO) >> DEADLINE_BITS,
            0x2345
        );
    }

    /// A breaker with a window of the last `n` calls (`None`: 1 s in 2 buckets),
    /// tripping on `min` calls at 50 %, no open wait, one probe.
    fn racing(n: Option<u32>, min: u32) -> Arc<Breaker> {
        let config = match n {
            Some(n) => BreakerConfig::builder().count_window(n),
            None => BreakerConfig::builder().time_window(Duration::from_secs(1), 2),
        };
        let config = config
            .minimum_calls(min)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::ZERO)
            .permitted_calls_in_half_open(1)
            .build()
            .unwrap();
        Arc::new(Breaker::new(config))
    }

    /// What `Permit::record` hands the breaker.
    fn held(p: &Permit) -> &Held<Arc<Breaker>> {
        (*p.held).as_ref().expect("unreported")
    }

    #[test]
    fn a_failure_racing_the_trip_is_not_counted_once_closed_again() {
        for n in [Some(2), None] {
            let b = racing(n, 1);
            // W: a call of generation 0 whose `record` loads the state word ...
            let w = b.acquire(|| Nanos::ZERO).unwrap();
            let seen = b.load();
            // ... then T trips the breaker (clearing the window) ...
            b.acquire(|| Nanos::ZERO)
                .unwrap()
                .record(Outcome::Failure, || Nanos::ZERO);
            assert_eq!(b.state(), State::Open);
            // ... and W writes its failure on the state it loaded before the trip.
            b.record_from(seen, held(&w), Outcome::Failure, || Nanos::ZERO);
            // Open -> HalfOpen -> Closed: a new closed generation.
            b.acquire(|| Nanos::ZERO)
                .unwrap()
                .record(Outcome::Success, || Nanos::ZERO);
            assert_eq!(b.state(), State::Closed);
            let m = b.metrics(Nanos::ZERO);
            assert_eq!((m.calls, m.failures), (0, 0), "{n:?}: W is not counted");
            b.acquire(|| Nanos::ZERO)
                .unwrap()
                .record(Outcome::Success, || Nanos::ZERO);
            assert_eq!(b.state(), State::Closed, "{n:?}: 0 of 1 failed");
        }
    }

    #[test]
    fn a_failure_racing_a_reset_is_not_counted_after_it() {
        for n in [Some(2), None] {
            let b = racing(n, 2);
            let w = b.acquire(|| Nanos::ZERO).unwrap();
            let seen = b.load();
            b.reset(Nanos::ZERO);
            b.record_from(seen, held(&w), Outcome::Failure, || Nanos::ZERO);
            let m = b.metrics(Nanos::ZERO);
            assert_eq!((m.state, m.generation), (State::Closed, 1));
            assert_eq!((m.calls, m.failures), (0, 0), "{n:?}: W is not counted");
            // A success of the new generation alone does not trip it.
            b.acquire(|| Nanos::ZERO)
                .unwrap()
                .record(Outcome::Success, || Nanos::ZERO);
            assert_eq!(b.state(), State::Closed, "{n:?}");
        }
    }

    #[test]
    fn a_late_open_deadline_does_not_hide_a_newer_one() {
        // T trips the breaker (Closed 0 -> Open 1) and is preempted before it
        // publishes its deadline ...
        let (b, _) = tripped(0.0, 1);
        let open = b.load();
        let closed = Word::INITIAL;
        assert_eq!(open, closed.next(State::Open, 0));
        // ... an operator resets it (Closed 2), failures trip it again (Open 3) ...
        b.reset(Nanos::ZERO);
        b.acquire(|| Nanos::ZERO)
            .unwrap()
            .record(Outcome::Failure, || Nanos::from_secs(1));
        assert_eq!(b.metrics(Nanos::ZERO).generation, 3);
        // ... and T resumes: the deadline of generation 1 comes last.
        b.after_transition(closed, open, Nanos::ZERO);
        assert_eq!(b.state(), State::Open);
        let r = b.acquire(|| Nanos::from_secs(2)).unwrap_err();
        assert_eq!(r.retry_after(), Some(Duration::from_secs(9)));
        let probe = b
            .acquire(|| Nanos::from_secs(11))
            .expect("the wait is over");
        assert!(probe.is_probe());
    }

    #[test]
    fn a_forever_open_wait_does_not_overflow() {
        let config = BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .wait_in_open(Duration::MAX)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        let late = Nanos::MAX - Nanos::from_secs(1);
        b.acquire(|| late)
            .unwrap()
            .record(Outcome::Failure, || late);
        assert_eq!(b.state(), State::Open);
        assert!(b.acquire(|| Nanos::MAX).is_err());
        assert_eq!(b.state(), State::Open);
    }
}

/// A breaker that fails its half-open test over and over, for longer than half the
/// generations' range, still counts outcomes once it closes: the window is re-stamped
/// at every transition, so its stamp never falls behind the state word by the half
/// range after which "older" reads as "newer".
#[cfg(all(test, not(loom)))]
#[test]
fn the_window_counts_again_after_half_the_generations_of_failed_tests() {
    let config = BreakerConfig::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::ZERO)
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let b = Arc::new(Breaker::new(config));
    let at = || Nanos::ZERO;
    for _ in 0..2 {
        b.acquire(at).unwrap().record(Outcome::Failure, at);
    }
    assert_eq!(b.state(), State::Open);
    // Each failed test is two transitions (to half-open, back to open).
    let tests = GEN_MASK / 4 + 2;
    for _ in 0..tests {
        b.acquire(at).unwrap().record(Outcome::Failure, at);
    }
    assert_eq!(b.state(), State::Open);
    b.acquire(at).unwrap().record(Outcome::Success, at);
    assert_eq!(b.state(), State::Closed);
    assert!(
        b.metrics(Nanos::ZERO).generation > GEN_MASK / 2,
        "past half the range"
    );
    // Closed again: the window counts, and trips.
    b.acquire(at).unwrap().record(Outcome::Failure, at);
    assert_eq!(b.metrics(Nanos::ZERO).calls, 1, "counted");
    b.acquire(at).unwrap().record(Outcome::Failure, at);
    assert_eq!(b.state(), State::Open, "tripped");
}

/// A listener that panics on the move to half-open does not keep the probe slot: the
/// probe's permit is made before the listener runs, and unwinding drops it.
#[cfg(all(test, not(loom)))]
#[test]
fn a_listener_panicking_on_half_open_does_not_keep_the_probe_slot() {
    let config = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .max_wait_in_half_open(None)
        .build()
        .unwrap();
    let listener: Listener = Arc::new(|t: &Transition<'_>| {
        assert!(t.to != State::HalfOpen, "the listener fails");
    });
    let b = Arc::new(Breaker::new(config).with_listener(listener));
    let at = |s| move || Nanos::from_secs(s);
    b.acquire(at(0)).unwrap().record(Outcome::Failure, at(0));
    assert_eq!(b.state(), State::Open);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(b.acquire(at(1)));
    }));
    assert!(panicked.is_err());
    assert_eq!(b.state(), State::HalfOpen);
    // The slot is free: the next call is the probe, and it closes the breaker.
    let probe = b.acquire(at(2)).expect("the probe slot is free");
    probe.record(Outcome::Success, at(2));
    assert_eq!(b.state(), State::Closed);
}
