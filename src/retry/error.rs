//! Errors of the retry layer.

use crate::error::{Rejection, RejectionKind};
use std::fmt;
use std::time::Duration;

/// The retry budget refused a retry: too many retries relative to recent requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetExhausted {
    _priv: (),
}

impl BudgetExhausted {
    /// The error.
    pub fn new() -> Self {
        BudgetExhausted { _priv: () }
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("retry budget exhausted")
    }
}

impl std::error::Error for BudgetExhausted {}

impl Rejection for BudgetExhausted {
    fn kind(&self) -> RejectionKind {
        RejectionKind::BudgetExhausted
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
