//! What counts as a success, a failure, or neither.
//!
//! A layer that keeps score (the circuit breaker) or decides on a result (fallback, and
//! the HTTP and gRPC integrations) asks a [`Classify`] policy about the whole
//! `Result` of a call, not only its `Err`: a `503` response is an `Ok` at the tower
//! level and still a failure of the backend.
//!
//! [`DefaultClassifier`] counts every `Err` as a failure and every `Ok` as a success.
//! Any `Fn(&Result<T, E>) -> Outcome` closure is a classifier too:
//!
//! ```
//! use buttress::classify::{Classify, DefaultClassifier, Outcome};
//!
//! let default = DefaultClassifier;
//! assert_eq!(default.classify(&Ok::<u16, ()>(200)), Outcome::Success);
//! assert_eq!(default.classify(&Err::<u16, ()>(())), Outcome::Failure);
//!
//! // Status-like responses: 5xx fail, 404 is the caller's problem and is not counted.
//! let by_status = |r: &Result<u16, std::io::Error>| match r {
//!     Ok(s) if *s >= 500 => Outcome::Failure,
//!     Ok(404) => Outcome::Ignored,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! };
//! assert_eq!(by_status.classify(&Ok(503)), Outcome::Failure);
//! assert_eq!(by_status.classify(&Ok(404)), Outcome::Ignored);
//! ```

/// The verdict on one call: success, failure, or not counted. The core's type, so the
/// circuit breaker records a classifier's verdict as it is.
pub use buttress_core::breaker::Outcome;

/// A policy that classifies the whole result of a call.
pub trait Classify<T, E> {
    /// The verdict on `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

/// `Err` is a failure, `Ok` a success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}
