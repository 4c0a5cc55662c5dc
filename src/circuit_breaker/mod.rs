//! The circuit_breaker layer.

pub mod error;
