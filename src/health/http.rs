//! Health probes over HTTP: responses, and a `tower::Service` per probe.

use super::{HealthCheck, HealthRegistry, Probe};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use tower_service::Service;

impl HealthCheck {
    /// The probe's answer as an `http::Response`: `200` or `503`, the JSON report, and
    /// `Cache-Control: no-store` so that no proxy answers a probe from a stale copy.
    pub fn into_http(self) -> Response<Full<Bytes>> {
        let status = if self.is_passing() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut res = Response::new(Full::new(Bytes::from(self.to_json())));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl From<HealthCheck> for Response<Full<Bytes>> {
    fn from(check: HealthCheck) -> Self {
        check.into_http()
    }
}

impl axum_core::response::IntoResponse for HealthCheck {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http().map(axum_core::body::Body::new)
    }
}

/// A `tower::Service` that answers every request with one probe of a registry: mount
/// [`HealthRegistry::liveness_service`] at `/health` and
/// [`HealthRegistry::readiness_service`] at `/ready`.
///
/// ```
/// use axum::Router;
/// use buttress::health::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// let app: Router = Router::new()
///     .route_service("/health", registry.liveness_service())
///     .route_service("/ready", registry.readiness_service());
/// # drop(app);
/// ```
#[derive(Debug, Clone)]
pub struct HealthService {
    registry: HealthRegistry,
    probe: Probe,
}

impl HealthService {
    /// A service answering `probe` from `registry`.
    pub fn new(registry: HealthRegistry, probe: Probe) -> Self {
        HealthService { registry, probe }
    }
}

impl HealthRegistry {
    /// A service answering the liveness probe, whatever the request.
    pub fn liveness_service(&self) -> HealthService {
        HealthService::new(self.clone(), Probe::Liveness)
    }

    /// A service answering the readiness probe, whatever the request.
    pub fn readiness_service(&self) -> HealthService {
        HealthService::new(self.clone(), Probe::Readiness)
    }
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(self.registry.check(self.probe).into_http()))
    }
}
