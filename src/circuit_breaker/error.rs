//! Errors of the circuit breaker.

use crate::error::{Rejection, RejectionKind};
use std::fmt;
use std::time::Duration;

/// The breaker refused the call without touching the inner service: it is open, forced
/// open, or half-open with every probe slot taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    /// A rejection that may be retried after `retry_after` (`None`: unknown, as when
    /// the breaker is forced open).
    pub fn new(retry_after: Option<Duration>) -> Self {
        CircuitOpen { retry_after }
    }

    /// Time left until the breaker lets a probe through, where it is known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit open")
    }
}

impl std::error::Error for CircuitOpen {}

impl Rejection for CircuitOpen {
    fn kind(&self) -> RejectionKind {
        RejectionKind::CircuitOpen
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
