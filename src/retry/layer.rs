//! The retry layer's configuration.

use super::policy::{ByClone, DefaultPolicy, NoListener};
use super::service::Retry;
use crate::clock::TokioClock;
use crate::observe::RetryObs;
use buttress_core::backoff::Backoff;
use buttress_core::budget::RetryBudget;
use buttress_core::{ConfigError, Nanos};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_layer::Layer;

/// The settings every service of one layer shares, copied by value into each response
/// future (they are plain data).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_wait: Nanos,
    /// The overall deadline, from the call, if any.
    pub(crate) deadline: Option<Nanos>,
    /// How long an attempt needs at least: none starts unless this fits before the
    /// deadline.
    pub(crate) min_attempt_time: Nanos,
    pub(crate) clock: TokioClock,
    /// Whether a call must read the clock (for the deadline; the budget's deposit
    /// does not need one).
    pub(crate) needs_clock: bool,
}

/// What a service made by the layer shares with its clones and with its calls'
/// futures, with its per-thread handles (see [`crate::shard`]): every call's future
/// holds one handle, picked by the calling thread, and reads the config, the budget and
/// the instruments through it when it retries (copying the config into every future
/// would cost more than the reference).
pub(crate) type Shards<S> = crate::shard::Shards<Proto<S>>;

/// The layer's shared state, and the service as the layer wrapped it.
///
/// Retries are sent through clones of this prototype, made when a retry is about to be
/// sent, so a call that is not retried clones no service: the stack below a retry is
/// often several layers (a breaker, a limiter, a bulkhead), each of whose clones
/// counts a reference to shared state. The lock is taken only to clone it for a retry;
/// it keeps the futures `Send` for services that are `Send` but not `Sync` (a boxed
/// service).
pub(crate) struct Proto<S> {
    pub(crate) shared: Arc<Shared>,
    service: Mutex<S>,
}

impl<S> Proto<S> {
    pub(crate) fn new(shared: Arc<Shared>, service: S) -> Self {
        Proto {
            shared,
            service: Mutex::new(service),
        }
    }

    /// A clone of the prototype, to send a retry through.
    pub(crate) fn service(&self) -> S
    where
        S: Clone,
    {
        // A panic in another clone leaves the service as it was: cloning takes `&S`.
        self.service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<S> fmt::Debug for Proto<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

/// What the services of one layer share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) budget: Option<Arc<RetryBudget>>,
    /// Metrics and tracing (zero-sized without those features).
    pub(crate) obs: RetryObs,
    seed: u64,
    streams: AtomicU64,
}

impl Shared {
    /// The jitter seed of a call's first retry: the `k`-th call of the layer's services
    /// to retry gets `seed + k * STREAM_GAP`, so the first draws from `seed`. Taken at
    /// the first retry, so that a call that is not retried carries no seed.
    pub(crate) fn next_seed(&self) -> u64 {
        // Relaxed: only uniqueness matters, which a read-modify-write gives.
        let k = self.streams.fetch_add(1, Ordering::Relaxed);
        self.seed.wrapping_add(k.wrapping_mul(STREAM_GAP))
    }
}

/// Spacing between the seed streams of calls (an odd constant, so that streams do not
/// meet for 2^64 calls).
const STREAM_GAP: u64 = 0xD1B5_4A32_D192_ED03;

/// Retries failed calls with backoff, jitter, pushback and a retry budget.
///
/// Built with [`RetryLayer::builder`]; see the [module docs](super) for the behaviour.
/// Every service the layer makes, and every clone of those, shares the layer's budget.
pub struct RetryLayer<P = DefaultPolicy, C = ByClone, L = NoListener> {
    shared: Arc<Shared>,
    policy: P,
    cloner: C,
    listener: L,
}

impl<P: Clone, C: Clone, L: Clone> Clone for RetryLayer<P, C, L> {
    fn clone(&self) -> Self {
        RetryLayer {
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            cloner: self.cloner.clone(),
            listener: self.listener.clone(),
        }
    }
}

impl<P: fmt::Debug, C: fmt::Debug, L> fmt::Debug for RetryLayer<P, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.shared.config)
            .field("budget", &self.shared.budget)
            .field("policy", &self.policy)
            .field("clone_request", &self.cloner)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A builder with the defaults: 3 attempts, exponential backoff from 50 ms doubling
    /// up to 5 s with full jitter, the default budget (20% of requests plus 10 retries
    /// per second over 10 s), no deadline, waits of at most 30 s, [`DefaultPolicy`],
    /// requests copied with `Clone`.
    pub fn builder() -> RetryLayerBuilder {
        RetryLayerBuilder {
            settings: Settings {
                max_attempts: 3,
                backoff: None,
                budget: BudgetChoice::Default,
                deadline: None,
                min_attempt_time: Duration::ZERO,
                max_wait: Duration::from_secs(30),
                seed: None,
                name: None,
            },
            policy: DefaultPolicy,
            cloner: ByClone,
            listener: NoListener,
        }
    }
}

impl<P, C, L> RetryLayer<P, C, L> {
    /// The budget the layer's services spend, if any (to observe it; its time is the
    /// layer's clock, which started when the layer was built).
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.shared.budget.as_ref()
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.shared.obs.adopt(name);
    }
}

impl<S: Clone, P: Clone, C: Clone, L: Clone> Layer<S> for RetryLayer<P, C, L> {
    type Service = Retry<S, P, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        self.shared.obs.ensure();
        Retry::new(
            inner,
            self.shared.clone(),
            self.policy.clone(),
            self.cloner.clone(),
            self.listener.clone(),
        )
    }
}

/// The builder's settings that do not change its type, moved as one by the setters
/// that do (`policy`, `clone_request`, `listener`).
#[derive(Debug)]
struct Settings {
    max_attempts: u32,
    backoff: Option<Backoff>,
    budget: BudgetChoice,
    deadline: Option<Duration>,
    min_attempt_time: Duration,
    max_wait: Duration,
    seed: Option<u64>,
    name: Option<Arc<str>>,
}

#[derive(Debug)]
enum BudgetChoice {
    Default,
    None,
    Given(Arc<RetryBudget>),
}

/// Configures a [`RetryLayer`]; [`build`](Self::build) validates it.
pub struct RetryLayerBuilder<P = DefaultPolicy, C = ByClone, L = NoListener> {
    settings: Settings,
    policy: P,
    cloner: C,
    listener: L,
}

impl<P: fmt::Debug, C: fmt::Debug, L> fmt::Debug for RetryLayerBuilder<P, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayerBuilder")
            .field("max_attempts", &self.settings.max_attempts)
            .field("backoff", &self.settings.backoff)
            .field("budget", &self.settings.budget)
            .field("deadline", &self.settings.deadline)
            .field("max_wait", &self.settings.max_wait)
            .field("name", &self.settings.name)
            .field("policy", &self.policy)
            .field("clone_request", &self.cloner)
            .finish_non_exhaustive()
    }
}

impl<P, C, L> RetryLayerBuilder<P, C, L> {
    /// How many attempts at most, the first call included (default 3; at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = n;
        self
    }

    /// The delay schedule between attempts (default: exponential from 50 ms, doubling,
    /// capped at 5 s, full jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = Some(backoff);
        self
    }

    /// Spend this budget. It belongs to the layer: every service the layer (or a clone
    /// of it) makes spends it, and its time is the layer's clock. For one budget per
    /// backend, build one layer per backend and clone it.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = BudgetChoice::Given(Arc::new(budget));
        self
    }

    /// No budget: retries are limited only by `max_attempts` (and the deadline). Then a
    /// call reads no clock unless a deadline is set.
    pub fn no_budget(mut self) -> Self {
        self.settings.budget = BudgetChoice::None;
        self
    }

    /// An overall deadline, from the call: no attempt starts that cannot start (and
    /// have [`min_attempt_time`](Self::min_attempt_time)) before it. This is checked
    /// when a retry is scheduled and again when it is about to be sent, after the
    /// service has become ready (a reconnecting client can take any time): a call whose
    /// service is not ready by then ends with
    /// [`RetriesExhausted`](super::error::RetriesExhausted), whose source is
    /// [`Elapsed`](crate::timeout::error::Elapsed). The attempt in flight is not cut
    /// short: put a timeout outside the retry for that.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = Some(deadline);
        self
    }

    /// How long an attempt needs at least (default zero); with a deadline, a retry is
    /// not started unless its wait plus this ends before the deadline.
    pub fn min_attempt_time(mut self, d: Duration) -> Self {
        self.settings.min_attempt_time = d;
        self
    }

    /// The longest single wait (default 30 s): a pushback or delay longer than this
    /// ends the retries instead of being waited.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.settings.max_wait = d;
        self
    }

    /// Seeds the jitter. The first call to retry, of all the services the layer makes
    /// and their clones, draws its first delay from `rng = SmallRng::seed_from_u64(seed)`,
    /// and each next delay from `SmallRng::seed_from_u64(rng.next_u64())` of the one
    /// before; the `k`-th call to retry starts from a seed `k` steps further along a
    /// fixed sequence, so a test that retries its calls one at a time sees the same
    /// delays on every run. Without it the seed is random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// Names the retry for its metrics and tracing events (see
    /// [`observe`](crate::observe)); unnamed, it takes the name of the pipeline it is
    /// put in.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.settings.name = Some(name.into());
        self
    }

    /// What is retried (default [`DefaultPolicy`]).
    pub fn policy<P2>(self, policy: P2) -> RetryLayerBuilder<P2, C, L> {
        RetryLayerBuilder {
            settings: self.settings,
            policy,
            cloner: self.cloner,
            listener: self.listener,
        }
    }

    /// How a request is copied for a retry (default [`ByClone`]).
    pub fn clone_request<C2>(self, cloner: C2) -> RetryLayerBuilder<P, C2, L> {
        RetryLayerBuilder {
            settings: self.settings,
            policy: self.policy,
            cloner,
            listener: self.listener,
        }
    }

    /// Who hears about each retry (default [`NoListener`], which costs nothing).
    pub fn listener<L2>(self, listener: L2) -> RetryLayerBuilder<P, C, L2> {
        RetryLayerBuilder {
            settings: self.settings,
            policy: self.policy,
            cloner: self.cloner,
            listener,
        }
    }

    /// The layer, or the first refused field.
    pub fn build(self) -> Result<RetryLayer<P, C, L>, ConfigError> {
        if self.settings.max_attempts == 0 {
            return Err(ConfigError::new(
                "max_attempts",
                "must be at least 1 (the first call counts)",
            ));
        }
        if self.settings.deadline == Some(Duration::ZERO) {
            return Err(ConfigError::new("deadline", "must be greater than zero"));
        }
        if let Some(deadline) = self.settings.deadline {
            if self.settings.min_attempt_time >= deadline {
                return Err(ConfigError::new(
                    "min_attempt_time",
                    format!("must be shorter than the deadline ({deadline:?})"),
                ));
            }
        }
        let backoff = match self.settings.backoff {
            Some(b) => b,
            None => Backoff::exponential(Duration::from_millis(50), 2.0)?
                .with_cap(Duration::from_secs(5)),
        };
        let budget = match self.settings.budget {
            BudgetChoice::Default => Some(Arc::new(RetryBudget::builder().build()?)),
            BudgetChoice::None => None,
            BudgetChoice::Given(b) => Some(b),
        };
        let config = Config {
            max_attempts: self.settings.max_attempts,
            backoff,
            max_wait: Nanos::from_duration(self.settings.max_wait),
            deadline: self.settings.deadline.map(Nanos::from_duration),
            min_attempt_time: Nanos::from_duration(self.settings.min_attempt_time),
            clock: TokioClock::new(),
            needs_clock: self.settings.deadline.is_some(),
        };
        Ok(RetryLayer {
            shared: Arc::new(Shared {
                config,
                budget,
                obs: RetryObs::new(self.settings.name.as_ref(), ()),
                seed: self.settings.seed.unwrap_or_else(random_seed),
                streams: AtomicU64::new(0),
            }),
            policy: self.policy,
            cloner: self.cloner,
            listener: self.listener,
        })
    }
}

/// A seed from the operating system, or (should it fail) from the system time and the
/// address of a local: build time only, never on the hot path.
fn random_seed() -> u64 {
    use rand::{RngCore, SeedableRng};
    match rand::rngs::SmallRng::try_from_os_rng() {
        Ok(mut rng) => rng.next_u64(),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let local = 0u8;
            t ^ (&local as *const u8 as u64).rotate_left(32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_config() {
        let field = |b: RetryLayerBuilder| b.build().unwrap_err().field();
        assert_eq!(field(RetryLayer::builder().max_attempts(0)), "max_attempts");
        assert_eq!(
            field(RetryLayer::builder().deadline(Duration::ZERO)),
            "deadline"
        );
        assert_eq!(
            field(
                RetryLayer::builder()
                    .deadline(Duration::from_secs(1))
                    .min_attempt_time(Duration::from_secs(1))
            ),
            "min_attempt_time"
        );
        assert!(RetryLayer::builder().build().unwrap().budget().is_some());
        assert!(
            RetryLayer::builder()
                .no_budget()
                .build()
                .unwrap()
                .budget()
                .is_none()
        );
    }

    #[test]
    fn seeds_are_distinct_per_call() {
        let layer = RetryLayer::builder().seed(7).build().unwrap();
        assert_eq!(layer.shared.next_seed(), 7);
        assert_ne!(layer.shared.next_seed(), 7);
    }
}
