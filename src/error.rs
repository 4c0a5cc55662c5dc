//! Errors shared by every layer, and the one trait that recognises a rejection.
//!
//! Every buttress service returns [`BoxError`] so that layers stack in any order. When a
//! layer refuses a call itself (rather than passing on the inner service's error) its
//! error is a small type of its own that implements [`Rejection`]:
//!
//! | error | layer | `retry_after` |
//! |---|---|---|
//! | [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) | circuit breaker | time left until a probe may go |
//! | [`BulkheadFull`](crate::bulkhead::error::BulkheadFull) | bulkhead | none |
//! | [`RateLimited`](crate::rate_limit::error::RateLimited) | rate limiter | time until a slot frees |
//! | [`Elapsed`](crate::timeout::error::Elapsed) | timeout | none |
//! | [`BudgetExhausted`](crate::retry::error::BudgetExhausted) | retry | none |
//! | [`DeadlinePassed`](crate::timeout::error::DeadlinePassed) | gRPC deadline | none |
//!
//! [`rejection`] finds one in a boxed error, looking through wrappers via
//! [`std::error::Error::source`], so that retry policies and the HTTP and gRPC adapters
//! can map any of them to a status (503, 429, 504 with `Retry-After`; `UNAVAILABLE`,
//! `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED` with `grpc-retry-pushback-ms`).
//!
//! ```
//! use buttress::error::{rejection, BoxError, RejectionKind};
//! use buttress::circuit_breaker::error::CircuitOpen;
//! use std::time::Duration;
//!
//! let err: BoxError = Box::new(CircuitOpen::new(Some(Duration::from_secs(3))));
//! let r = rejection(&*err).expect("a buttress rejection");
//! assert_eq!(r.kind(), RejectionKind::CircuitOpen);
//! assert_eq!(r.retry_after(), Some(Duration::from_secs(3)));
//! assert_eq!(err.to_string(), "circuit open");
//! ```

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The error type of every buttress service: the inner error or a rejection, boxed.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Which layer refused a call, and so which status it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The circuit breaker is open (or forced open): 503, `UNAVAILABLE`.
    CircuitOpen,
    /// The bulkhead has no free slot: 503, `RESOURCE_EXHAUSTED`.
    BulkheadFull,
    /// The rate limiter refused the call: 429, `RESOURCE_EXHAUSTED`.
    RateLimited,
    /// The call did not finish in time: 504, `DEADLINE_EXCEEDED`.
    Elapsed,
    /// The retry budget refused a retry: 503, `UNAVAILABLE`.
    BudgetExhausted,
    /// The caller's deadline had passed before the call was sent: 504,
    /// `DEADLINE_EXCEEDED`. Final: not retried, not counted by a breaker.
    DeadlinePassed,
}

impl RejectionKind {
    /// A short lowercase name, stable for metrics labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectionKind::CircuitOpen => "circuit_open",
            RejectionKind::BulkheadFull => "bulkhead_full",
            RejectionKind::RateLimited => "rate_limited",
            RejectionKind::Elapsed => "elapsed",
            RejectionKind::BudgetExhausted => "budget_exhausted",
            RejectionKind::DeadlinePassed => "deadline_passed",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call refused by a buttress layer itself, not failed by the inner service.
pub trait Rejection: Error + Send + Sync + 'static {
    /// Which kind of rejection this is.
    fn kind(&self) -> RejectionKind;

    /// How long to wait before the same call could be admitted, where the layer knows.
    fn retry_after(&self) -> Option<Duration>;
}

/// The first buttress [`Rejection`] in `err` or its chain of
/// [`source`](Error::source)s, if any.
pub fn rejection<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a dyn Rejection> {
    chain(err).find_map(as_rejection)
}

/// `err` and then each of its [`source`](Error::source)s, outermost first: the one walk
/// of an error chain that every lookup (a rejection, a gRPC `Status`) goes through.
pub(crate) fn chain<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source())
}

pub(crate) fn as_rejection<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a dyn Rejection> {
    use crate::{bulkhead, circuit_breaker, rate_limit, retry, timeout};
    macro_rules! try_as {
        ($($t:ty),* $(,)?) => {
            $(if let Some(r) = e.downcast_ref::<$t>() { return Some(r); })*
        };
    }
    try_as!(
        circuit_breaker::error::CircuitOpen,
        bulkhead::error::BulkheadFull,
        rate_limit::error::RateLimited,
        timeout::error::Elapsed,
        retry::error::BudgetExhausted,
        timeout::error::DeadlinePassed,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(BoxError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn finds_rejection_through_sources() {
        let inner: BoxError = Box::new(crate::timeout::error::Elapsed::new());
        let outer: BoxError = Box::new(Wrapper(inner));
        let r = rejection(&*outer).expect("found through source");
        assert_eq!(r.kind(), RejectionKind::Elapsed);
        assert_eq!(r.retry_after(), None);
    }

    #[test]
    fn plain_errors_are_not_rejections() {
        let e: BoxError = "boom".into();
        assert!(rejection(&*e).is_none());
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(RejectionKind::RateLimited.to_string(), "rate_limited");
        assert_eq!(RejectionKind::BulkheadFull.as_str(), "bulkhead_full");
    }
}
