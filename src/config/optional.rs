//! A part of a configured pipeline that may have been left out.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// One part of a [`ConfiguredResilience`](super::ConfiguredResilience)'s service: the
/// layer's service when its section is in the configuration, the inner service as is
/// when it was left out.
///
/// Which one is fixed when the service is made; a call costs one match on it. Errors
/// are boxed ([`BoxError`]) either way, as every buttress layer's are.
#[derive(Debug, Clone)]
pub enum OptionalService<L, S> {
    /// The layer's service, wrapping the inner one.
    Layered(L),
    /// The inner service alone: the configuration has no such section.
    Bare(S),
}

impl<L, S> OptionalService<L, S> {
    /// `inner` wrapped by `layer`, or alone when there is none.
    pub(super) fn new<Ly: Layer<S, Service = L>>(layer: Option<&Ly>, inner: S) -> Self {
        match layer {
            Some(layer) => OptionalService::Layered(layer.layer(inner)),
            None => OptionalService::Bare(inner),
        }
    }
}

impl<L, S, Req> Service<Req> for OptionalService<L, S>
where
    L: Service<Req>,
    L::Error: Into<BoxError>,
    S: Service<Req, Response = L::Response>,
    S::Error: Into<BoxError>,
{
    type Response = L::Response;
    type Error = BoxError;
    type Future = OptionalFuture<L::Future, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            OptionalService::Layered(svc) => svc.poll_ready(cx).map_err(Into::into),
            OptionalService::Bare(svc) => svc.poll_ready(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let inner = match self {
            OptionalService::Layered(svc) => Either::Layered {
                future: svc.call(req),
            },
            OptionalService::Bare(svc) => Either::Bare {
                future: svc.call(req),
            },
        };
        OptionalFuture { inner }
    }
}

pin_project! {
    /// The response future of an [`OptionalService`].
    pub struct OptionalFuture<A, B> {
        #[pin]
        inner: Either<A, B>,
    }
}

pin_project! {
    #[project = EitherProj]
    enum Either<A, B> {
        Layered { #[pin] future: A },
        Bare { #[pin] future: B },
    }
}

impl<A, B> fmt::Debug for OptionalFuture<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layered = matches!(self.inner, Either::Layered { .. });
        f.debug_struct("OptionalFuture")
            .field("layered", &layered)
            .finish_non_exhaustive()
    }
}

impl<A, B, T, EA, EB> Future for OptionalFuture<A, B>
where
    A: Future<Output = Result<T, EA>>,
    EA: Into<BoxError>,
    B: Future<Output = Result<T, EB>>,
    EB: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            EitherProj::Layered { future } => future.poll(cx).map_err(Into::into),
            EitherProj::Bare { future } => future.poll(cx).map_err(Into::into),
        }
    }
}
