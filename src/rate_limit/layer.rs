//! The rate limiters' configuration.

use super::service::{KeyedRateLimit, RateLimit};
use crate::ConfigError;
use crate::clock::{Clock, MonotonicClock, Nanos, TokioClock};
use crate::observe::RateLimitObs;
use buttress_core::gcra::{Gcra, Quota};
use buttress_core::keyed::KeyedGcra;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower_layer::Layer;

/// A [`Clock`] the waiting mode can sleep on: it turns a reading into a tokio deadline.
pub trait SleepClock: Clock + Clone {
    /// The tokio instant at which this clock will read `at` (or a later one).
    ///
    /// By default it reads the clock again (only calls that must wait get here) and
    /// puts what is left after tokio's now, rounding late, never early: right for any
    /// clock that runs at the pace of real time. [`TokioClock`] maps its reading
    /// exactly instead, so that paused time drives the wait.
    fn deadline(&self, at: Nanos) -> tokio::time::Instant {
        let left = at.saturating_sub(self.now()).as_duration();
        let now = tokio::time::Instant::now();
        now.checked_add(left).unwrap_or(now)
    }
}

impl SleepClock for TokioClock {
    #[inline]
    fn deadline(&self, at: Nanos) -> tokio::time::Instant {
        self.instant_at(at)
    }
}

impl SleepClock for MonotonicClock {}

#[cfg(feature = "quanta")]
impl SleepClock for crate::clock::QuantaClock {}

/// Configuration shared by [`RateLimitLayer`] and [`KeyedRateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitBuilder<C = TokioClock> {
    rate: Option<u64>,
    period: Duration,
    burst: Option<u32>,
    max_wait: Option<Duration>,
    clock: C,
    name: Option<Arc<str>>,
}

impl Default for RateLimitBuilder {
    fn default() -> Self {
        RateLimitBuilder {
            rate: None,
            period: Duration::from_secs(1),
            burst: None,
            max_wait: None,
            clock: TokioClock::new(),
            name: None,
        }
    }
}

impl<C: SleepClock> RateLimitBuilder<C> {
    /// Calls allowed per [`period`](Self::period) (required, at least 1).
    pub fn rate(mut self, rate: u64) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The period the rate is counted over (default one second).
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// Calls allowed at once after an idle period (required, at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Over the limit, wait up to `max_wait` for a slot (reserved at once, then slept
    /// for, to tokio's millisecond tick: see the [module docs](super)) instead of
    /// rejecting; a call that would wait longer is rejected.
    ///
    /// The slot is spent when it is reserved: a waiting call that is dropped (an outer
    /// timeout shorter than `max_wait`, a client gone) does not give it back, as an
    /// admitted call that is cancelled does not. `max_wait` bounds what that can
    /// cost. While it waits, a call keeps the inner service that was made ready for it.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// The clock to read (default [`TokioClock`], driven by paused tokio time).
    pub fn clock<C2: SleepClock>(self, clock: C2) -> RateLimitBuilder<C2> {
        RateLimitBuilder {
            rate: self.rate,
            period: self.period,
            burst: self.burst,
            max_wait: self.max_wait,
            clock,
            name: self.name,
        }
    }

    /// Names the limiter for its metrics and tracing events (see
    /// [`observe`](crate::observe)); unnamed, it takes the name of the pipeline it is
    /// put in.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The validated quota, wait, clock, instruments and name.
    #[allow(clippy::type_complexity)]
    fn parts(self) -> Result<(Quota, Nanos, C, RateLimitObs, Option<Arc<str>>), ConfigError> {
        let rate = self
            .rate
            .ok_or_else(|| ConfigError::new("rate", "is required"))?;
        let burst = self
            .burst
            .ok_or_else(|| ConfigError::new("burst", "is required"))?;
        let quota = Quota::new(rate, self.period, burst)?;
        let max_wait = self
            .max_wait
            .map(Nanos::from_duration)
            .unwrap_or(Nanos::ZERO);
        // The wait counter and histogram exist only when calls may wait.
        let obs = RateLimitObs::new(self.name.as_ref(), !max_wait.is_zero());
        Ok((quota, max_wait, self.clock, obs, self.name))
    }

    /// A direct (one limiter for every call) rate-limit layer.
    pub fn build(self) -> Result<RateLimitLayer<C>, ConfigError> {
        let (quota, max_wait, clock, obs, name) = self.parts()?;
        Ok(RateLimitLayer {
            shared: Arc::new(Direct {
                gcra: Gcra::new(quota),
                clock,
                max_wait,
                rejected: Arc::default(),
                obs,
                name,
            }),
        })
    }

    /// A keyed layer: one limiter per key that `key` extracts from the request, at most
    /// `max_keys` keys held at once (idle keys are evicted by the store itself).
    ///
    /// Keys are hashed with std's `RandomState` (SipHash-1-3 with a random key), which
    /// resists hash flooding: keys such as client IPs or tenant ids come from the
    /// network, and an attacker who could choose colliding keys would otherwise turn
    /// every lookup into a long probe. For keys no client can choose (a route, a small
    /// fixed set) a faster hasher fits: see [`keyed_with_hasher`](Self::keyed_with_hasher).
    pub fn keyed<Req, K, F>(
        self,
        max_keys: usize,
        key: F,
    ) -> Result<KeyedRateLimitLayer<K, F, C>, ConfigError>
    where
        K: Hash + Eq,
        F: Fn(&Req) -> K,
    {
        self.keyed_with_hasher(max_keys, key, RandomState::new())
    }

    /// As [`keyed`](Self::keyed), hashing keys with `hasher` (for example
    /// `foldhash::fast::RandomState`, several times faster than SipHash on small keys
    /// but without its resistance to chosen-key flooding: use it for keys clients
    /// cannot pick).
    pub fn keyed_with_hasher<Req, K, F, H>(
        self,
        max_keys: usize,
        key: F,
        hasher: H,
    ) -> Result<KeyedRateLimitLayer<K, F, C, H>, ConfigError>
    where
        K: Hash + Eq,
        F: Fn(&Req) -> K,
        H: BuildHasher,
    {
        let (quota, max_wait, clock, obs, name) = self.parts()?;
        Ok(KeyedRateLimitLayer {
            shared: Arc::new(Keyed {
                store: KeyedGcra::with_hasher(quota, max_keys, hasher)?,
                key,
                clock,
                max_wait,
                rejected: Arc::default(),
                obs,
                name,
            }),
        })
    }
}

/// The state of a direct limiter, shared by its layer, services and clones.
pub(super) struct Direct<C> {
    pub(super) gcra: Gcra,
    pub(super) clock: C,
    /// Zero: reject at once.
    pub(super) max_wait: Nanos,
    /// Calls refused so far, shared with the handles; counted on the reject path only.
    pub(super) rejected: Arc<AtomicU64>,
    /// Metrics and tracing (zero-sized without those features).
    pub(super) obs: RateLimitObs,
    /// The builder's name, which the handles report under by default.
    pub(super) name: Option<Arc<str>>,
}

/// The state of a keyed limiter.
pub(super) struct Keyed<K, F, C, H = RandomState> {
    pub(super) store: KeyedGcra<K, H>,
    pub(super) key: F,
    pub(super) clock: C,
    pub(super) max_wait: Nanos,
    /// Calls refused so far, shared with the handles; counted on the reject path only.
    pub(super) rejected: Arc<AtomicU64>,
    /// Metrics and tracing (zero-sized without those features).
    pub(super) obs: RateLimitObs,
    /// The builder's name, which the handles report under by default.
    pub(super) name: Option<Arc<str>>,
}

/// A [`Layer`] that limits calls to a rate with bursts (GCRA), one limiter for every
/// service it makes and their clones.
#[derive(Clone)]
pub struct RateLimitLayer<C = TokioClock> {
    shared: Arc<Direct<C>>,
}

impl<C> fmt::Debug for RateLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("gcra", &self.shared.gcra)
            .field("max_wait", &self.shared.max_wait)
            .finish()
    }
}

impl RateLimitLayer {
    /// `rate` calls per `period`, bursts of up to `burst`; over the limit, reject at once
    /// with [`RateLimited`](super::error::RateLimited).
    pub fn new(rate: u64, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        Self::builder()
            .rate(rate)
            .period(period)
            .burst(burst)
            .build()
    }

    /// A builder for the waiting mode, a custom clock, or the keyed variant.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder::default()
    }
}

impl<C> RateLimitLayer<C> {
    /// The quota the limiter enforces.
    pub fn quota(&self) -> &Quota {
        self.shared.gcra.quota()
    }

    /// A handle counting this limiter's rejections, for metrics and health checks.
    pub fn handle(&self) -> RateLimitHandle {
        RateLimitHandle::new(Arc::clone(&self.shared.rejected), self.shared.name.clone())
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.shared.obs.adopt(name);
    }
}

impl<S, C> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimit<S, C>;

    fn layer(&self, inner: S) -> RateLimit<S, C> {
        self.shared.obs.ensure();
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

/// A [`Layer`] with one GCRA limiter per key extracted from the request (client IP,
/// tenant, route), at most `max_keys` keys at once. Built by
/// [`RateLimitBuilder::keyed`].
pub struct KeyedRateLimitLayer<K, F, C = TokioClock, H = RandomState> {
    shared: Arc<Keyed<K, F, C, H>>,
}

impl<K, F, C, H> Clone for KeyedRateLimitLayer<K, F, C, H> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, F, C, H> fmt::Debug for KeyedRateLimitLayer<K, F, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("store", &self.shared.store)
            .field("max_wait", &self.shared.max_wait)
            .finish()
    }
}

impl<K: Hash + Eq, F, C, H: BuildHasher> KeyedRateLimitLayer<K, F, C, H> {
    /// Keys held right now.
    pub fn keys(&self) -> usize {
        self.shared.store.len()
    }
}

impl<K, F, C, H> KeyedRateLimitLayer<K, F, C, H> {
    /// A handle counting this limiter's rejections (over every key), for metrics and
    /// health checks.
    pub fn handle(&self) -> RateLimitHandle {
        RateLimitHandle::new(Arc::clone(&self.shared.rejected), self.shared.name.clone())
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.shared.obs.adopt(name);
    }
}

impl<S, K, F, C, H> Layer<S> for KeyedRateLimitLayer<K, F, C, H> {
    type Service = KeyedRateLimit<S, K, F, C, H>;

    fn layer(&self, inner: S) -> Self::Service {
        self.shared.obs.ensure();
        KeyedRateLimit::new(inner, Arc::clone(&self.shared))
    }
}

/// A cheap view of one rate limiter's rejections (direct or keyed), from
/// [`RateLimitLayer::handle`] or [`KeyedRateLimitLayer::handle`].
///
/// The limiter counts a rejection with one relaxed atomic add, on the reject path only.
/// With the `health` feature the handle is a health source: **degraded while the
/// limiter has rejected calls recently**, healthy otherwise. "Recently" is measured from
/// the probes: a probe that finds rejections the previous one had not seen starts a
/// window ([`degraded_for`](Self::degraded_for), 10 s by default, the default period
/// of a Kubernetes probe) during which every probe reports degraded, so that liveness
/// and readiness probes reading one handle agree. The window follows tokio's clock
/// (paused time included).
#[derive(Debug)]
pub struct RateLimitHandle {
    rejected: Arc<AtomicU64>,
    /// The rejection count at the previous [`rejected_since_last_read`] call.
    ///
    /// [`rejected_since_last_read`]: RateLimitHandle::rejected_since_last_read
    seen: AtomicU64,
    /// What the health status reads: the count at the previous probe, and when a probe
    /// last found it grown.
    #[cfg(feature = "health")]
    probes: ProbeWindow,
    name: Option<Arc<str>>,
}

/// A health probe's view of the rejection count: degraded for `window` after a probe
/// finds it grown.
#[cfg(feature = "health")]
#[derive(Debug)]
struct ProbeWindow {
    /// The count at the previous probe.
    seen: AtomicU64,
    /// When a probe last found the count grown, in nanoseconds since `origin`;
    /// `u64::MAX` if none has.
    grown_at: AtomicU64,
    origin: tokio::time::Instant,
    window: std::time::Duration,
}

#[cfg(feature = "health")]
impl ProbeWindow {
    fn new(count: u64) -> Self {
        ProbeWindow {
            seen: AtomicU64::new(count),
            grown_at: AtomicU64::new(u64::MAX),
            origin: tokio::time::Instant::now(),
            window: std::time::Duration::from_secs(10),
        }
    }

    /// Whether the limiter rejected calls within the window, given its count now.
    fn recently_rejected(&self, count: u64) -> bool {
        // Relaxed throughout: reporting state of this handle's own, which publishes no
        // other memory. Probes racing each other may both record the growth; the later
        // instant stands, as it would have had they run one after the other.
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        if self.seen.swap(count, Ordering::Relaxed) != count {
            self.grown_at.store(now, Ordering::Relaxed);
            return true;
        }
        let at = self.grown_at.load(Ordering::Relaxed);
        at != u64::MAX && u128::from(now.saturating_sub(at)) < self.window.as_nanos()
    }
}

#[cfg(feature = "health")]
impl Clone for ProbeWindow {
    fn clone(&self) -> Self {
        ProbeWindow {
            // Relaxed: snapshots of this handle's own bookkeeping.
            seen: AtomicU64::new(self.seen.load(Ordering::Relaxed)),
            grown_at: AtomicU64::new(self.grown_at.load(Ordering::Relaxed)),
            origin: self.origin,
            window: self.window,
        }
    }
}

impl Clone for RateLimitHandle {
    fn clone(&self) -> Self {
        RateLimitHandle {
            rejected: Arc::clone(&self.rejected),
            // Relaxed: a snapshot of this handle's own bookkeeping.
            seen: AtomicU64::new(self.seen.load(Ordering::Relaxed)),
            #[cfg(feature = "health")]
            probes: self.probes.clone(),
            name: self.name.clone(),
        }
    }
}

impl RateLimitHandle {
    fn new(rejected: Arc<AtomicU64>, name: Option<Arc<str>>) -> Self {
        // Relaxed: counts only, they publish no other memory.
        let count = rejected.load(Ordering::Relaxed);
        RateLimitHandle {
            rejected,
            seen: AtomicU64::new(count),
            #[cfg(feature = "health")]
            probes: ProbeWindow::new(count),
            name,
        }
    }

    /// The same handle, reporting under `name` (health checks need unique names).
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same handle, reporting degraded for `window` after a probe finds new
    /// rejections (10 s unless set; see the [type's docs](Self)). Make it at least the
    /// probes' period, so that every probe in between sees it.
    #[cfg(feature = "health")]
    pub fn degraded_for(mut self, window: std::time::Duration) -> Self {
        self.probes.window = window;
        self
    }

    /// Whether the limiter has rejected calls recently, as the health status reads it
    /// (see the [type's docs](Self)).
    #[cfg(feature = "health")]
    pub(crate) fn recently_rejected(&self) -> bool {
        self.probes.recently_rejected(self.rejected())
    }

    /// The name given with [`named`](Self::named), else the limiter's own (its
    /// builder's [`name`](RateLimitBuilder::name)), if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Calls the limiter has refused since it was built.
    pub fn rejected(&self) -> u64 {
        // Relaxed: a count for reporting.
        self.rejected.load(Ordering::Relaxed)
    }

    /// Calls refused since the previous call of this method on this handle (since the
    /// handle was made, the first time).
    pub fn rejected_since_last_read(&self) -> u64 {
        let now = self.rejected();
        // Relaxed: the handle's own bookkeeping; concurrent readers each get a share
        // of the difference, never a count twice.
        let before = self.seen.swap(now, Ordering::Relaxed);
        now.saturating_sub(before)
    }
}
