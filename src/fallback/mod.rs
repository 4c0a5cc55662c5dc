//! The fallback layer.
