//! [`PropagateDeadlineLayer`]: configuration only.

use super::PropagateDeadline;
use buttress_core::ConfigError;
use std::time::Duration;
use tower_layer::Layer;

/// Sets `grpc-timeout` on outgoing requests from their [`Deadline`](super::Deadline) and
/// an optional per-call timeout; see the [module docs](super).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PropagateDeadlineLayer {
    timeout: Option<Duration>,
}

impl PropagateDeadlineLayer {
    /// Propagates the requests' [`Deadline`](super::Deadline) extensions only: a
    /// request without one goes as it is.
    pub const fn new() -> Self {
        PropagateDeadlineLayer { timeout: None }
    }

    /// Gives every call at most `timeout` (greater than zero), less when its
    /// [`Deadline`](super::Deadline) or its own `grpc-timeout` leaves less.
    pub fn with_timeout(timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(PropagateDeadlineLayer {
            timeout: Some(timeout),
        })
    }

    /// The per-call timeout, if any.
    pub const fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline::new(inner, self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_zero_timeout() {
        assert_eq!(
            PropagateDeadlineLayer::with_timeout(Duration::ZERO)
                .unwrap_err()
                .field(),
            "timeout"
        );
        assert_eq!(PropagateDeadlineLayer::new().timeout(), None);
    }
}
