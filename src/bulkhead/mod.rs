//! The bulkhead layer.

pub mod error;
