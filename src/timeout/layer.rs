//! The timeout layer's configuration.

use super::service::Timeout;
use buttress_core::ConfigError;
use std::time::Duration;
use tower_layer::Layer;

/// How long a request may take: a fixed duration, or one computed per request.
///
/// Any `Fn(&Req) -> Option<Duration>` is one (`None`: no timeout for that request).
pub trait TimeoutFor<Req> {
    /// The time `req` may take, or `None` for no limit.
    fn timeout_for(&self, req: &Req) -> Option<Duration>;
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
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer<T = Fixed> {
    timeout: T,
}

impl TimeoutLayer {
    /// Every call may take at most `timeout` (greater than zero).
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(TimeoutLayer {
            timeout: Fixed(timeout),
        })
    }
}

impl<T> TimeoutLayer<T> {
    /// Each call may take what `timeout` computes from its request (`None`: no limit).
    /// A zero duration lets through only a call that is ready at once.
    pub fn per_request(timeout: T) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S, T: Clone> Layer<S> for TimeoutLayer<T> {
    type Service = Timeout<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.timeout.clone())
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
