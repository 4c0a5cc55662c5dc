//! The timeout layer.

pub mod error;
