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
