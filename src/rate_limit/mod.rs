//! The rate_limit layer.

pub mod error;
