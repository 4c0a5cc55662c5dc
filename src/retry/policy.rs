//! What is retried, how a request is copied for a retry, and who hears about it.

use crate::error::{BoxError, RejectionKind, rejection};
use std::time::Duration;

/// A [`Policy`]'s verdict on one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand this result back to the caller: it is final.
    Return,
    /// Retry after the layer's backoff delay.
    Retry,
    /// Retry after exactly this wait, which the server (or an inner layer) asked for.
    /// A wait above the layer's `max_wait` is not waited: the result is returned.
    RetryAfter(Duration),
}

/// Decides, from the whole result of an attempt, whether to retry.
///
/// It sees the `Ok` response as well as the error, so an HTTP policy can retry a 503 or
/// a 429 and read `Retry-After` (with [`crate::pushback`]), and a gRPC policy can retry
/// `UNAVAILABLE` and read `grpc-retry-pushback-ms`, without any change to the retry
/// service. Errors reach the policy already converted to [`BoxError`].
///
/// Any `Fn(&Req, &Result<Res, BoxError>) -> Decision` is a policy.
pub trait Policy<Req, Res> {
    /// The verdict on `result`, the outcome of sending `req`.
    fn decide(&self, req: &Req, result: &Result<Res, BoxError>) -> Decision;
}

impl<Req, Res, F> Policy<Req, Res> for F
where
    F: Fn(&Req, &Result<Res, BoxError>) -> Decision,
{
    #[inline]
    fn decide(&self, req: &Req, result: &Result<Res, BoxError>) -> Decision {
        self(req, result)
    }
}

/// Retries errors, except rejections that say they are final.
///
/// - `Ok` is returned.
/// - An error that is no buttress [`Rejection`](crate::error::Rejection) is retried
///   with backoff.
/// - [`Elapsed`](crate::timeout::error::Elapsed) (an inner per-attempt timeout) is
///   retried like any error.
/// - Any other rejection (circuit open, rate limited, bulkhead full, budget exhausted)
///   is retried only after its `retry_after`, and not at all without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    /// The default verdict on an error, for policies that add their own rules for
    /// responses and fall back to this for errors.
    pub fn decide_error(err: &BoxError) -> Decision {
        match rejection(&**err) {
            None => Decision::Retry,
            Some(r) if r.kind() == RejectionKind::Elapsed => Decision::Retry,
            Some(r) => match r.retry_after() {
                Some(wait) => Decision::RetryAfter(wait),
                None => Decision::Return,
            },
        }
    }
}

impl<Req, Res> Policy<Req, Res> for DefaultPolicy {
    #[inline]
    fn decide(&self, _req: &Req, result: &Result<Res, BoxError>) -> Decision {
        match result {
            Ok(_) => Decision::Return,
            Err(e) => Self::decide_error(e),
        }
    }
}

/// Copies a request for a retry; `None` means "cannot", and the request is sent once.
///
/// Any `Fn(&Req) -> Option<Req>` is a `CloneRequest`.
pub trait CloneRequest<Req> {
    /// A copy of `req` for the next attempt, or `None` if it cannot be copied (a
    /// streaming body, say): then it is never retried.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with [`Clone`] (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Never copies: every request is sent once and never retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOnce;

impl<Req> CloneRequest<Req> for SendOnce {
    #[inline]
    fn clone_request(&self, _req: &Req) -> Option<Req> {
        None
    }
}

impl<Req, F> CloneRequest<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// Why a retry is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// The attempt failed with an error; the wait is the backoff delay.
    Error,
    /// The attempt returned a response the policy retries (a 503, say); the wait is the
    /// backoff delay.
    Response,
    /// The server or an inner layer asked for this wait.
    Pushback,
}

/// One retry about to be made: reported to a [`Listener`] before the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The number of the attempt about to be made (the first retry is attempt 2).
    pub attempt: u32,
    /// How long the layer waits before it.
    pub delay: Duration,
    /// Why.
    pub reason: RetryReason,
}

/// Hears about every retry (for logs and metrics). [`NoListener`], the default, costs
/// nothing. Any `Fn(&RetryEvent)` is a listener.
pub trait Listener {
    /// Called once per retry, before its wait.
    fn on_retry(&self, event: &RetryEvent);
}

/// The listener that does nothing (and is compiled away).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoListener;

impl Listener for NoListener {
    #[inline(always)]
    fn on_retry(&self, _event: &RetryEvent) {}
}

impl<F> Listener for F
where
    F: Fn(&RetryEvent),
{
    #[inline]
    fn on_retry(&self, event: &RetryEvent) {
        self(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::error::CircuitOpen;
    use crate::timeout::error::Elapsed;

    fn decide(e: BoxError) -> Decision {
        DefaultPolicy.decide(&(), &Err::<(), _>(e))
    }

    #[test]
    fn default_policy() {
        assert_eq!(
            DefaultPolicy.decide(&(), &Ok::<u8, BoxError>(1)),
            Decision::Return
        );
        assert_eq!(decide("boom".into()), Decision::Retry);
        assert_eq!(decide(Box::new(Elapsed::new())), Decision::Retry);
        assert_eq!(
            decide(Box::new(CircuitOpen::new(Some(Duration::from_secs(2))))),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(decide(Box::new(CircuitOpen::new(None))), Decision::Return);
        assert_eq!(
            decide(Box::new(crate::retry::error::BudgetExhausted::new())),
            Decision::Return
        );
    }

    #[test]
    fn cloners() {
        assert_eq!(ByClone.clone_request(&5u8), Some(5));
        assert_eq!(CloneRequest::<u8>::clone_request(&SendOnce, &5u8), None);
        let only_small = |r: &u8| (*r < 10).then_some(*r);
        assert_eq!(only_small.clone_request(&50), None);
    }
}
