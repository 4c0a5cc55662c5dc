//! The timeout layer's configuration.

use super::service::Timeout;
use crate::observe::TimeoutObs;
use buttress_core::ConfigError;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// How long a request may take: a fixed duration, or one computed per request.
///
/// Any `Fn(&Req) -> Option<Duration>` is one (`None`: no timeout for that request).
pub trait TimeoutFor<Req> {
    /// The time `req` may take, or `None` for no limit.
    fn timeout_for(&self, req: &Req) -> Option<Duration>;

    /// Whether the time runs from the call itself rather than from the first poll
    /// that finds the call not ready. The default, `false`, reads no clock for a call
    /// that is ready at once; `true` reads one at every call, for a limit that must
    /// end at an instant fixed outside (a client's deadline, which other timers started
    /// at the same call also enforce).
    #[inline]
    fn counts_from_call(&self) -> bool {
        false
    }
}

/// The same duration for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed(Duration);

impl Fixed {
    /// The duration.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl<Req> TimeoutFor<Req> for Fixed {
    #[inline]
    fn timeout_for(&self, _req: &Req) -> Option<Duration> {
        Some(self.0)
    }
}

impl<Req, F> TimeoutFor<Req> for F
where
    F: Fn(&Req) -> Option<Duration>,
{
    #[inline]
    fn timeout_for(&self, req: &Req) -> Option<Duration> {
        self(req)
    }
}

/// Fails a call with [`Elapsed`](super::error::Elapsed) when it takes too long, and
/// drops (cancels) it.
#[derive(Debug, Clone)]
pub struct TimeoutLayer<T = Fixed> {
    timeout: T,
    obs: TimeoutObs,
}

impl TimeoutLayer {
    /// Every call may take at most `timeout` (greater than zero).
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(TimeoutLayer {
            timeout: Fixed(timeout),
            obs: TimeoutObs::new(None, ()),
        })
    }
}

impl<T> TimeoutLayer<T> {
    /// Each call may take what `timeout` computes from its request (`None`: no limit).
    /// A zero duration lets through only a call that is ready at once.
    pub fn per_request(timeout: T) -> Self {
        TimeoutLayer {
            timeout,
            obs: TimeoutObs::new(None, ()),
        }
    }

    /// Names the timeout for its metrics and tracing events (see
    /// [`observe`](crate::observe)); unnamed, it takes the name of the pipeline it is
    /// put in.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.obs = TimeoutObs::new(Some(&name.into()), ());
        self
    }

    /// Takes `name` for metrics and tracing unless named already.
    pub(crate) fn adopt_name(&self, name: &Arc<str>) {
        self.obs.adopt(name);
    }
}

impl<S, T: Clone> Layer<S> for TimeoutLayer<T> {
    type Service = Timeout<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        self.obs.ensure();
        Timeout::new(inner, self.timeout.clone(), self.obs.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero() {
        assert_eq!(
            TimeoutLayer::new(Duration::ZERO).unwrap_err().field(),
            "timeout"
        );
        let l = TimeoutLayer::new(Duration::from_secs(1)).unwrap();
        assert_eq!(
            TimeoutFor::<()>::timeout_for(&l.timeout, &()),
            Some(Duration::from_secs(1))
        );
    }
}
