//! Errors of the rate limiter.

use crate::error::{Rejection, RejectionKind};
use std::fmt;
use std::time::Duration;

/// The rate limiter refused the call; a slot frees after [`retry_after`](Self::retry_after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    /// A rejection whose next slot frees after `retry_after`.
    pub fn new(retry_after: Duration) -> Self {
        RateLimited { retry_after }
    }

    /// Time until the limiter would admit this call.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate limited")
    }
}

impl std::error::Error for RateLimited {}

impl Rejection for RateLimited {
    fn kind(&self) -> RejectionKind {
        RejectionKind::RateLimited
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
}
