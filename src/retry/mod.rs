//! The retry layer.

pub mod error;
