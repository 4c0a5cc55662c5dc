//! [`PropagateDeadline`]: `poll_ready` and `call`.

use super::Deadline;
use super::future::ResponseFuture;
use crate::error::BoxError;
use crate::grpc::{grpc_timeout, set_grpc_timeout};
use http::Request;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// Sets `grpc-timeout` on each request from its [`Deadline`] and the per-call timeout;
/// made by [`PropagateDeadlineLayer`](super::PropagateDeadlineLayer).
#[derive(Debug, Clone)]
pub struct PropagateDeadline<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> PropagateDeadline<S> {
    pub(super) fn new(inner: S, timeout: Option<Duration>) -> Self {
        PropagateDeadline { inner, timeout }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, owned.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateDeadline<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let mut limit = self.timeout;
        if let Some(deadline) = req.extensions().get::<Deadline>() {
            // The one clock read, for a request that carries a deadline.
            let left = deadline.remaining();
            if left.is_zero() {
                // Nothing left: the server would only refuse it. The request is dropped
                // unsent; the inner service stays ready for the next call. Its error
                // is final: a retry could not meet the deadline either, and a breaker
                // does not count it (the backend was not asked).
                return ResponseFuture::passed();
            }
            limit = Some(limit.map_or(left, |t| t.min(left)));
        }
        if let Some(limit) = limit {
            // Never lengthen a deadline the request already carries (it is kept as it
            // is when it is no longer); a malformed one is replaced.
            let keep = matches!(grpc_timeout(req.headers()), Ok(Some(already)) if already <= limit);
            if !keep {
                set_grpc_timeout(req.headers_mut(), limit);
            }
        }
        ResponseFuture::calling(self.inner.call(req))
    }
}
