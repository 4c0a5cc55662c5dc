//! The fallback service.

use super::future::ResponseFuture;
use super::handler::{Recover, Save};
use crate::BoxError;
use crate::classify::Classify;
use crate::observe::FallbackObs;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service that answers its failures from a fallback; made by
/// [`FallbackLayer`](super::FallbackLayer).
#[derive(Debug, Clone)]
pub struct Fallback<S, H, P> {
    inner: S,
    handler: H,
    policy: P,
    obs: FallbackObs,
}

impl<S, H, P> Fallback<S, H, P> {
    pub(super) fn new(inner: S, handler: H, policy: P, obs: FallbackObs) -> Self {
        Fallback {
            inner,
            handler,
            policy,
            obs,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, H, P, Req> Service<Req> for Fallback<S, H, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    H: Save<Req> + Recover<H::Saved, S::Response, S::Error> + Clone,
    P: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, H::Future, H, P, H::Saved>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let saved = self.handler.save(&req);
        ResponseFuture::new(
            self.inner.call(req),
            self.handler.clone(),
            self.policy.clone(),
            saved,
            self.obs.clone(),
        )
    }
}
