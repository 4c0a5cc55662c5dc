//! Errors of the timeout.

use crate::error::{Rejection, RejectionKind};
use std::fmt;
use std::time::Duration;

/// The call did not finish in time; the inner future was dropped (cancelled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elapsed {
    _priv: (),
}

impl Elapsed {
    /// The error.
    pub fn new() -> Self {
        Elapsed { _priv: () }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request timed out")
    }
}

impl std::error::Error for Elapsed {}

impl Rejection for Elapsed {
    fn kind(&self) -> RejectionKind {
        RejectionKind::Elapsed
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The caller's deadline had already passed when the call was to be sent, so it was
/// not sent: the refusal of the gRPC deadline layer (`PropagateDeadlineLayer`, feature
/// `grpc`) for a request whose `Deadline` has no time left.
///
/// Unlike [`Elapsed`], the backend was never asked: a circuit breaker does not count
/// it, and the default retry policy does not retry it (no later attempt could meet a
/// deadline already gone). It maps to 504 and `DEADLINE_EXCEEDED`, as `Elapsed` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadlinePassed {
    _priv: (),
}

impl DeadlinePassed {
    /// The error.
    pub fn new() -> Self {
        DeadlinePassed { _priv: () }
    }
}

impl fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline passed before the request was sent")
    }
}

impl std::error::Error for DeadlinePassed {}

impl Rejection for DeadlinePassed {
    fn kind(&self) -> RejectionKind {
        RejectionKind::DeadlinePassed
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
