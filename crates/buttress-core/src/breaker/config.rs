//! The breaker's configuration and its validating builder.

use crate::{ConfigError, Nanos};
use std::time::Duration;

/// Which outcomes the breaker's failure and slow rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `calls` recorded outcomes: when a new one enters, the oldest leaves.
    Count {
        /// How many outcomes the window holds (1..=1_048_576).
        calls: u32,
    },
    /// The outcomes of the last `duration`, kept in `buckets` buckets of
    /// `duration / buckets` each; a whole bucket leaves the window when it expires.
    Time {
        /// The span the window covers.
        duration: Nanos,
        /// How many buckets it is cut into (1..=4096).
        buckets: u32,
    },
}

/// A validated breaker configuration. Build one with [`BreakerConfig::builder`].
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(crate) window: WindowKind,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Nanos>,
    pub(crate) wait_in_open: Nanos,
    pub(crate) open_backoff_multiplier: f64,
    pub(crate) max_wait_in_open: Nanos,
    pub(crate) open_jitter: f64,
    pub(crate) permitted_calls_in_half_open: u32,
    pub(crate) max_wait_in_half_open: Option<Nanos>,
    /// Thresholds in hundredths of a percent, for integer comparisons on the hot path.
    pub(crate) failure_bp: u64,
    pub(crate) slow_bp: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfigBuilder::default()
            .build()
            .expect("the defaults are valid")
    }
}

impl BreakerConfig {
    /// A builder holding every default (see [`BreakerConfigBuilder`]).
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// The window the rates are computed over.
    pub fn window(&self) -> WindowKind {
        self.window
    }
    /// Outcomes the window must hold before the breaker may trip.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// Failure rate, in percent (above 0, at most 100), at or above which the breaker
    /// trips.
    pub fn failure_rate_threshold(&self) -> f64 {
        self.failure_rate_threshold
    }
    /// Slow-call rate, in percent (above 0, at most 100), at or above which the breaker
    /// trips.
    pub fn slow_call_rate_threshold(&self) -> f64 {
        self.slow_call_rate_threshold
    }
    /// The duration from which a call counts as slow; `None`: slow calls are not tracked.
    pub fn slow_call_duration(&self) -> Option<Nanos> {
        self.slow_call_duration
    }
    /// The first open wait.
    pub fn wait_in_open(&self) -> Nanos {
        self.wait_in_open
    }
    /// The factor the open wait grows by with each consecutive re-open.
    pub fn open_backoff_multiplier(&self) -> f64 {
        self.open_backoff_multiplier
    }
    /// The cap on the open wait, applied before jitter.
    pub fn max_wait_in_open(&self) -> Nanos {
        self.max_wait_in_open
    }
    /// The fraction (0..=1) of the open wait that jitter may take off.
    pub fn open_jitter(&self) -> f64 {
        self.open_jitter
    }
    /// How many probes the half-open state admits.
    pub fn permitted_calls_in_half_open(&self) -> u32 {
        self.permitted_calls_in_half_open
    }
    /// How long the half-open state waits for its probes before opening again.
    pub fn max_wait_in_half_open(&self) -> Option<Nanos> {
        self.max_wait_in_half_open
    }

    /// The open wait before jitter after `reopens` consecutive re-opens:
    /// `wait_in_open * multiplier^reopens`, capped at `max_wait_in_open`, saturating.
    pub fn open_wait(&self, reopens: u32) -> Nanos {
        let base = self.wait_in_open.as_u64() as f64;
        let grown = base * self.open_backoff_multiplier.powi(reopens as i32);
        let cap = self.max_wait_in_open;
        if !grown.is_finite() || grown >= cap.as_u64() as f64 {
            cap
        } else {
            // In range: 0 <= grown < cap <= u64::MAX.
            Nanos::new(grown as u64).min_of(cap)
        }
    }

    /// The open wait after jitter, `u` being a uniform draw in `[0, 1)`: jitter only
    /// shortens the wait, so it never exceeds the cap.
    pub fn jittered_open_wait(&self, reopens: u32, u: f64) -> Nanos {
        let wait = self.open_wait(reopens);
        if self.open_jitter == 0.0 {
            return wait;
        }
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cut = wait.as_u64() as f64 * self.open_jitter * u;
        wait.saturating_sub(Nanos::new(cut as u64))
    }
}

/// Builds a [`BreakerConfig`]; [`build`](BreakerConfigBuilder::build) checks every
/// field and names the first bad one.
///
/// | setting | default |
/// |---|---|
/// | window | the last 100 calls |
/// | `minimum_calls` | 10 |
/// | `failure_rate_threshold` | 50 % |
/// | `slow_call_rate_threshold` | 100 % |
/// | `slow_call_duration` | none: slow calls are not tracked |
/// | `wait_in_open` | 30 s |
/// | `open_backoff` | multiplier 2, capped at 5 min (or at `wait_in_open` if longer) |
/// | `open_jitter` | 0 (none) |
/// | `permitted_calls_in_half_open` | 5 |
/// | `max_wait_in_half_open` | 60 s |
#[derive(Debug, Clone)]
pub struct BreakerConfigBuilder {
    window: WindowKind,
    minimum_calls: u32,
    failure_rate_threshold: f64,
    slow_call_rate_threshold: f64,
    slow_call_duration: Option<Duration>,
    wait_in_open: Duration,
    open_backoff_multiplier: f64,
    max_wait_in_open: Option<Duration>,
    open_jitter: f64,
    permitted_calls_in_half_open: u32,
    max_wait_in_half_open: Option<Duration>,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        BreakerConfigBuilder {
            window: WindowKind::Count { calls: 100 },
            minimum_calls: 10,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: None,
            wait_in_open: Duration::from_secs(30),
            open_backoff_multiplier: 2.0,
            max_wait_in_open: None,
            open_jitter: 0.0,
            permitted_calls_in_half_open: 5,
            max_wait_in_half_open: Some(Duration::from_secs(60)),
        }
    }
}

/// The largest count window.
const MAX_COUNT_WINDOW: u32 = 1 << 20;
/// The most buckets a time window may have.
const MAX_BUCKETS: u32 = 4096;

/// A rate threshold in hundredths of a percent, from a percentage in `(0, 100]`.
///
/// 0 is refused: every window reaches a threshold of 0 (`failures * 10000 >= 0`), so
/// the breaker would trip on `minimum_calls` successes and could never close from
/// half-open. So is anything that rounds to 0 hundredths.
fn percent(field: &'static str, v: f64) -> Result<u64, ConfigError> {
    if v.is_nan() {
        return Err(ConfigError::new(
            field,
            "must be a number in (0, 100], got NaN",
        ));
    }
    // Not NaN, so this is `!(0 < v <= 100)`; `-0.0 <= 0.0` too.
    if v <= 0.0 || v > 100.0 {
        return Err(ConfigError::new(
            field,
            format!("must be in (0, 100], got {v}"),
        ));
    }
    // In range: 0 <= v * 100 <= 10_000.
    let bp = (v * 100.0).round() as u64;
    if bp == 0 {
        return Err(ConfigError::new(
            field,
            format!(
                "must round to at least 0.01 (thresholds are kept in hundredths of a percent), got {v}"
            ),
        ));
    }
    Ok(bp)
}

impl BreakerConfigBuilder {
    /// Rates over the last `calls` outcomes (a sliding window: the oldest leaves as a
    /// new one enters).
    pub fn count_window(mut self, calls: u32) -> Self {
        self.window = WindowKind::Count { calls };
        self
    }

    /// Rates over the last `duration`, in `buckets` buckets (an expired bucket leaves
    /// the window whole).
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.window = WindowKind::Time {
            duration: Nanos::from_duration(duration),
            buckets,
        };
        self
    }

    /// Outcomes the window must hold before a rate can trip the breaker (at least 1;
    /// with a count window, at most its size).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Trip when the failure rate is at or above `percent`, in `(0, 100]` (kept to
    /// hundredths of a percent). 0 is refused: a window of successes alone would reach
    /// it, so the breaker would open on `minimum_calls` successes and never close.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Trip when the slow-call rate is at or above `percent`, in `(0, 100]` (kept to
    /// hundredths of a percent; 0 is refused, as for
    /// [`failure_rate_threshold`](Self::failure_rate_threshold)). Only used when
    /// [`slow_call_duration`](Self::slow_call_duration) is set.
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// A call taking at least `duration` counts as slow (as well as a success or a
    /// failure). Setting it makes the layer read the clock when a call starts and ends.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = Some(duration);
        self
    }

    /// How long the breaker stays open the first time before it lets a probe through.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait_in_open = wait;
        self
    }

    /// Each consecutive re-open (a failed half-open test) multiplies the open wait by
    /// `multiplier` (at least 1; 1 keeps it constant), up to `max_wait`. The wait goes
    /// back to [`wait_in_open`](Self::wait_in_open) once the breaker closes.
    pub fn open_backoff(mut self, multiplier: f64, max_wait: Duration) -> Self {
        self.open_backoff_multiplier = multiplier;
        self.max_wait_in_open = Some(max_wait);
        self
    }

    /// As [`open_backoff`](Self::open_backoff), keeping the cap: the one given there,
    /// else the default (5 min, or `wait_in_open` if longer, worked out when built).
    pub fn open_backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.open_backoff_multiplier = multiplier;
        self
    }

    /// Takes a random fraction of up to `fraction` (0..=1) off each open wait, after
    /// the cap, so that many clients do not probe in step.
    pub fn open_jitter(mut self, fraction: f64) -> Self {
        self.open_jitter = fraction;
        self
    }

    /// How many probes the half-open state admits (1..=255); the breaker decides once
    /// that many have reported.
    pub fn permitted_calls_in_half_open(mut self, calls: u32) -> Self {
        self.permitted_calls_in_half_open = calls;
        self
    }

    /// When no decision was reached within `wait` of entering half-open (probes that
    /// hang, or that were cancelled before they reported), the next call opens the
    /// breaker again instead of probing on forever. `None` waits for the probes however
    /// long they take.
    pub fn max_wait_in_half_open(mut self, wait: Option<Duration>) -> Self {
        self.max_wait_in_half_open = wait;
        self
    }

    /// Checks every field and builds the configuration.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        match self.window {
            WindowKind::Count { calls } => {
                if calls == 0 || calls > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        "count_window",
                        format!("must hold 1..={MAX_COUNT_WINDOW} calls, got {calls}"),
                    ));
                }
                if self.minimum_calls > calls {
                    return Err(ConfigError::new(
                        "minimum_calls",
                        format!(
                            "must not exceed the count window ({calls}), got {}",
                            self.minimum_calls
                        ),
                    ));
                }
            }
            WindowKind::Time { duration, buckets } => {
                if buckets == 0 || buckets > MAX_BUCKETS {
                    return Err(ConfigError::new(
                        "time_window",
                        format!("must have 1..={MAX_BUCKETS} buckets, got {buckets}"),
                    ));
                }
                if duration.as_u64() < buckets as u64 {
                    return Err(ConfigError::new(
                        "time_window",
                        format!(
                            "must last at least 1ns per bucket, got {duration} for {buckets} buckets"
                        ),
                    ));
                }
            }
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1"));
        }
        let failure_bp = percent("failure_rate_threshold", self.failure_rate_threshold)?;
        let slow_bp = percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.slow_call_duration == Some(Duration::ZERO) {
            return Err(ConfigError::new("slow_call_duration", "must be positive"));
        }
        let m = self.open_backoff_multiplier;
        if !m.is_finite() || m < 1.0 {
            return Err(ConfigError::new(
                "open_backoff",
                format!("the multiplier must be a finite number >= 1, got {m}"),
            ));
        }
        let max_wait_in_open = match self.max_wait_in_open {
            Some(max) if max < self.wait_in_open => {
                return Err(ConfigError::new(
                    "open_backoff",
                    format!(
                        "the maximum wait ({max:?}) must not be below wait_in_open ({:?})",
                        self.wait_in_open
                    ),
                ));
            }
            Some(max) => max,
            None => Duration::from_secs(300).max(self.wait_in_open),
        };
        let j = self.open_jitter;
        if !(0.0..=1.0).contains(&j) {
            return Err(ConfigError::new(
                "open_jitter",
                format!("must be a fraction in 0..=1, got {j}"),
            ));
        }
        let p = self.permitted_calls_in_half_open;
        if p == 0 || p > 255 {
            return Err(ConfigError::new(
                "permitted_calls_in_half_open",
                format!("must be in 1..=255, got {p}"),
            ));
        }
        if self.max_wait_in_half_open == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "max_wait_in_half_open",
                "must be positive (use None to wait for the probes forever)",
            ));
        }
        Ok(BreakerConfig {
            window: self.window,
            minimum_calls: self.minimum_calls,
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            slow_call_duration: self.slow_call_duration.map(Nanos::from_duration),
            wait_in_open: Nanos::from_duration(self.wait_in_open),
            open_backoff_multiplier: m,
            max_wait_in_open: Nanos::from_duration(max_wait_in_open),
            open_jitter: j,
            permitted_calls_in_half_open: p,
            max_wait_in_half_open: self.max_wait_in_half_open.map(Nanos::from_duration),
            failure_bp,
            slow_bp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(b: BreakerConfigBuilder) -> &'static str {
        b.build().expect_err("refused").field()
    }

    #[test]
    fn defaults_are_valid() {
        let c = BreakerConfig::default();
        assert_eq!(c.window(), WindowKind::Count { calls: 100 });
        assert_eq!(c.minimum_calls(), 10);
        assert_eq!(c.permitted_calls_in_half_open(), 5);
        assert_eq!(c.max_wait_in_open(), Nanos::from_secs(300));
        // A long first wait raises the default cap rather than being refused.
        let long = BreakerConfig::builder()
            .wait_in_open(Duration::from_secs(3600))
            .build()
            .unwrap();
        assert_eq!(long.max_wait_in_open(), Nanos::from_secs(3600));
    }

    #[test]
    fn bad_fields_are_named() {
        let b = BreakerConfig::builder;
        assert_eq!(field(b().count_window(0)), "count_window");
        assert_eq!(field(b().time_window(Duration::ZERO, 10)), "time_window");
        assert_eq!(
            field(b().time_window(Duration::from_secs(1), 0)),
            "time_window"
        );
        assert_eq!(field(b().minimum_calls(0)), "minimum_calls");
        assert_eq!(field(b().count_window(5).minimum_calls(6)), "minimum_calls");
        assert_eq!(
            field(b().failure_rate_threshold(f64::NAN)),
            "failure_rate_threshold"
        );
        assert_eq!(
            field(b().failure_rate_threshold(100.5)),
            "failure_rate_threshold"
        );
        assert_eq!(
            field(b().slow_call_rate_threshold(-1.0)),
            "slow_call_rate_threshold"
        );
        assert_eq!(
            field(b().slow_call_rate_threshold(100.5)),
            "slow_call_rate_threshold"
        );
        assert_eq!(
            field(b().slow_call_rate_threshold(f64::NAN)),
            "slow_call_rate_threshold"
        );
        assert_eq!(
            field(b().slow_call_duration(Duration::ZERO)),
            "slow_call_duration"
        );
        assert_eq!(
            field(b().open_backoff(0.5, Duration::from_secs(60))),
            "open_backoff"
        );
        assert_eq!(
            field(b().open_backoff(f64::INFINITY, Duration::from_secs(60))),
            "open_backoff"
        );
        assert_eq!(
            field(b().open_backoff(2.0, Duration::from_secs(1))),
            "open_backoff"
        );
        assert_eq!(field(b().open_jitter(1.5)), "open_jitter");
        assert_eq!(field(b().open_jitter(f64::NAN)), "open_jitter");
        assert_eq!(
            field(b().permitted_calls_in_half_open(0)),
            "permitted_calls_in_half_open"
        );
        assert_eq!(
            field(b().permitted_calls_in_half_open(256)),
            "permitted_calls_in_half_open"
        );
        assert_eq!(
            field(b().max_wait_in_half_open(Some(Duration::ZERO))),
            "max_wait_in_half_open"
        );
        let e = b().failure_rate_threshold(f64::NAN).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `failure_rate_threshold`: must be a number in (0, 100], got NaN"
        );
    }

    /// A threshold of 0 % is reached by every window (`failures * 10000 >= 0`): the
    /// breaker would trip on `minimum_calls` successes and never close from half-open.
    /// Refused, as is anything that rounds to 0 at the thresholds' resolution (0.01 %).
    #[test]
    fn zero_thresholds_are_refused() {
        let b = BreakerConfig::builder;
        for zero in [0.0, -0.0, 0.004] {
            assert_eq!(
                field(b().failure_rate_threshold(zero)),
                "failure_rate_threshold",
                "{zero}"
            );
            assert_eq!(
                field(b().slow_call_rate_threshold(zero)),
                "slow_call_rate_threshold",
                "{zero}"
            );
        }
        let e = b().failure_rate_threshold(0.0).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `failure_rate_threshold`: must be in (0, 100], got 0"
        );
        let e = b().slow_call_rate_threshold(0.001).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `slow_call_rate_threshold`: must round to at least 0.01 (thresholds are \
             kept in hundredths of a percent), got 0.001"
        );
        // The smallest accepted thresholds, and the largest.
        let c = b()
            .failure_rate_threshold(0.006)
            .slow_call_rate_threshold(0.01)
            .build()
            .expect("positive thresholds");
        assert_eq!((c.failure_bp, c.slow_bp), (1, 1));
        let c = b()
            .failure_rate_threshold(100.0)
            .slow_call_rate_threshold(100.0)
            .build()
            .expect("100 % is allowed");
        assert_eq!((c.failure_bp, c.slow_bp), (10_000, 10_000));
    }

    #[test]
    fn open_wait_grows_caps_and_saturates() {
        let c = BreakerConfig::builder()
            .wait_in_open(Duration::from_secs(1))
            .open_backoff(2.0, Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(c.open_wait(0), Nanos::from_secs(1));
        assert_eq!(c.open_wait(1), Nanos::from_secs(2));
        assert_eq!(c.open_wait(3), Nanos::from_secs(8));
        assert_eq!(c.open_wait(4), Nanos::from_secs(10));
        assert_eq!(c.open_wait(31), Nanos::from_secs(10));
        let huge = BreakerConfig::builder()
            .wait_in_open(Duration::MAX)
            .open_backoff(10.0, Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(huge.open_wait(31), Nanos::MAX);
    }

    #[test]
    fn jitter_only_shortens() {
        let c = BreakerConfig::builder()
            .wait_in_open(Duration::from_secs(10))
            .open_backoff(1.0, Duration::from_secs(10))
            .open_jitter(0.5)
            .build()
            .unwrap();
        assert_eq!(c.jittered_open_wait(0, 0.0), Nanos::from_secs(10));
        assert_eq!(c.jittered_open_wait(0, 0.5), Nanos::from_millis(7500));
        assert!(c.jittered_open_wait(0, 0.999_999) >= Nanos::from_secs(5));
        assert_eq!(c.jittered_open_wait(0, f64::NAN), Nanos::from_secs(10));
    }
}
