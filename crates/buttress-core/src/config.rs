//! The one error every configuration builder returns.
//!
//! Configuration is validated when it is built, never on the hot path, and bad input is
//! an error that names the field, never a panic:
//!
//! ```
//! use buttress_core::ConfigError;
//!
//! let err = ConfigError::new("failure_rate_threshold", "must be in (0, 100], got 150");
//! assert_eq!(err.field(), "failure_rate_threshold");
//! assert_eq!(
//!     err.to_string(),
//!     "invalid `failure_rate_threshold`: must be in (0, 100], got 150"
//! );
//! ```

use std::borrow::Cow;
use std::fmt;

/// A configuration value was refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    problem: Cow<'static, str>,
}

impl ConfigError {
    /// An error for `field`, explained by `problem` (lowercase, no trailing period).
    pub fn new(field: &'static str, problem: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            field,
            problem: problem.into(),
        }
    }

    /// The name of the refused field, as the builder method that sets it is named.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was refused.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}
