//! The timeout service.

use super::future::ResponseFuture;
use super::layer::{Fixed, TimeoutFor};
use crate::error::BoxError;
use crate::observe::TimeoutObs;
use std::task::{Context, Poll};
use tower_service::Service;

/// Limits how long each call of `S` may take; made by
/// [`TimeoutLayer`](super::TimeoutLayer).
#[derive(Debug, Clone)]
pub struct Timeout<S, T = Fixed> {
    inner: S,
    timeout: T,
    obs: TimeoutObs,
}

impl<S, T> Timeout<S, T> {
    pub(crate) fn new(inner: S, timeout: T, obs: TimeoutObs) -> Self {
        Timeout {
            inner,
            timeout,
            obs,
        }
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

impl<S, Req, T> Service<Req> for Timeout<S, T>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: TimeoutFor<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is not timed: a service that is not ready holds nothing of ours.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let after = self.timeout.timeout_for(&req);
        let since =
            (after.is_some() && self.timeout.counts_from_call()).then(tokio::time::Instant::now);
        ResponseFuture::new(self.inner.call(req), after, since, self.obs.clone())
    }
}
