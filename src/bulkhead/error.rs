//! Errors of the bulkhead.

use crate::error::{Rejection, RejectionKind};
use std::fmt;
use std::time::Duration;

/// The bulkhead had no free slot (and no room or time left to wait for one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkheadFull {
    _priv: (),
}

impl BulkheadFull {
    /// The rejection.
    pub fn new() -> Self {
        BulkheadFull { _priv: () }
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bulkhead full")
    }
}

impl std::error::Error for BulkheadFull {}

impl Rejection for BulkheadFull {
    fn kind(&self) -> RejectionKind {
        RejectionKind::BulkheadFull
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
