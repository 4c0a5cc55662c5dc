//! Errors of the retry layer.

use crate::error::{BoxError, Rejection, RejectionKind};
use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The retry budget refused a retry: too many retries relative to recent requests.
///
/// Returned in place of the last error when the budget (not the policy) stopped the
/// retries; that error is its [`source`](Error::source). The budget protects a backend
/// in an outage, so adapters map this to 503 / `UNAVAILABLE`.
#[derive(Debug, Default)]
pub struct BudgetExhausted {
    attempts: u32,
    source: Option<BoxError>,
}

impl BudgetExhausted {
    /// The error, with no attempt count or source.
    pub fn new() -> Self {
        BudgetExhausted {
            attempts: 0,
            source: None,
        }
    }

    /// The error after `attempts` attempts, the last of which failed with `source`.
    pub fn after(attempts: u32, source: BoxError) -> Self {
        BudgetExhausted {
            attempts,
            source: Some(source),
        }
    }

    /// The error after `attempts` attempts, when the budget refused a retry that had
    /// waited longer than its `ttl` (its withdrawal had aged out and could not be
    /// renewed): the last attempt's error was let go when the wait began.
    pub(crate) fn after_waiting(attempts: u32) -> Self {
        BudgetExhausted {
            attempts,
            source: None,
        }
    }

    /// How many attempts were made (the first call counts) before the budget refused
    /// another; `0` if unknown.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("retry budget exhausted")?;
        if self.attempts > 0 {
            write!(f, " after {} attempt(s)", self.attempts)?;
        }
        Ok(())
    }
}

impl Error for BudgetExhausted {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl Rejection for BudgetExhausted {
    fn kind(&self) -> RejectionKind {
        RejectionKind::BudgetExhausted
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The call failed after more than one attempt: how many, and the last error.
///
/// The last error is the [`source`](Error::source), so
/// [`rejection`](crate::error::rejection) still finds a rejection from an inner layer
/// through it. An error on the first attempt that is not retried at all is returned
/// unchanged, not wrapped.
#[derive(Debug)]
pub struct RetriesExhausted {
    attempts: u32,
    source: BoxError,
}

impl RetriesExhausted {
    /// The error after `attempts` attempts, the last of which failed with `source`.
    pub fn new(attempts: u32, source: BoxError) -> Self {
        RetriesExhausted { attempts, source }
    }

    /// How many attempts were made, the first call included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn last_error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The last attempt's error, owned.
    pub fn into_last_error(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for RetriesExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed after {} attempts", self.attempts)
    }
}

impl Error for RetriesExhausted {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
