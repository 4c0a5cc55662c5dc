//! Health: what each named component reports, turned into liveness and readiness.
//!
//! Components (circuit breakers, bulkheads, rate limiters, or anything of the
//! application's own) report through [`HealthSource`]: a name, a kind, a
//! [`HealthStatus`] and free-form JSON details. A [`HealthRegistry`] holds them, each
//! marked critical or not, and answers the two questions an orchestrator asks:
//!
//! - **Liveness** ([`HealthRegistry::liveness`], `/health`): is the process alive? Always
//!   `200` while it can answer at all; the body lists every component, and its `status`
//!   is `"up"`, or `"degraded"` when any component is not healthy. A dependency's
//!   outage must not fail liveness: Kubernetes would restart a healthy process for
//!   someone else's fault.
//! - **Readiness** ([`HealthRegistry::readiness`], `/ready`): should this instance get
//!   traffic? `503` with `"status": "down"` when a *critical* component is unhealthy
//!   (say its breaker is open and still waiting) or the instance is
//!   [draining](HealthRegistry::set_draining); `200` otherwise (`"degraded"` when a
//!   component is degraded, or unhealthy but not critical). A breaker whose open wait is
//!   over reports degraded, as a half-open one does, so that readiness lets back the
//!   traffic its probe needs (see [below](#the-buttress-handles)).
//!
//! ```
//! use buttress::health::{HealthRegistry, HealthSource, HealthStatus};
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! /// The application's own view of its database.
//! struct Database(Arc<AtomicBool>);
//! impl HealthSource for Database {
//!     fn name(&self) -> &str { "postgres" }
//!     fn kind(&self) -> &'static str { "database" }
//!     fn status(&self) -> HealthStatus {
//!         if self.0.load(Ordering::Relaxed) { HealthStatus::Healthy } else { HealthStatus::Unhealthy }
//!     }
//! }
//!
//! let up = Arc::new(AtomicBool::new(true));
//! let registry = HealthRegistry::new();
//! registry.register_critical(Database(up.clone())).unwrap();
//!
//! assert_eq!(registry.readiness().status_code(), 200);
//! up.store(false, Ordering::Relaxed);
//! let ready = registry.readiness();
//! assert_eq!(ready.status_code(), 503);
//! assert_eq!(registry.liveness().status_code(), 200); // still alive
//! assert_eq!(
//!     ready.to_json(),
//!     r#"{"status":"down","components":[{"name":"postgres","kind":"database","status":"unhealthy","critical":true}]}"#
//! );
//! ```
//!
//! ## The buttress handles
//!
//! A circuit breaker's, bulkhead's or rate limiter's handle is a [`HealthSource`]
//! itself; each probe reads it with a few atomic loads:
//!
//! | handle | healthy | degraded | unhealthy |
//! |---|---|---|---|
//! | [`CircuitBreakerHandle`](crate::circuit_breaker::CircuitBreakerHandle) | closed, disabled | half-open; open with its wait over | open and waiting, forced open |
//! | [`BulkheadHandle`](crate::bulkhead::BulkheadHandle) | a slot free, nobody waiting | full, or calls waiting | never |
//! | [`RateLimitHandle`](crate::rate_limit::RateLimitHandle) | no rejection recently | rejections recently (10 s by default) | never |
//!
//! A circuit breaker reports what a call made now would meet. An open breaker moves to
//! half-open only when a call arrives after its wait (there is no background task),
//! and an instance that is not ready gets no calls: were an open *critical* breaker
//! unhealthy until it half-opened, readiness would fail for good. So once its wait is
//! over (the next call would be a probe) it reports degraded, as half-open does:
//! readiness passes, traffic comes back, and the probe decides. Reading it changes
//! nothing; the breaker stays open until that call. A breaker that lets no probe
//! through by itself, forced open or open with a wait that never ends
//! (`wait_in_open(Duration::MAX)`), stays unhealthy until it is reset.
//!
//! With the `http` feature too, a [`HealthCheck`] is an axum `IntoResponse` and an
//! `http::Response`, and [`HealthRegistry::liveness_service`] and
//! [`HealthRegistry::readiness_service`] are `tower::Service`s to mount at `/health` and
//! `/ready` (axum's `Router::route_service`).

#[cfg(feature = "http")]
mod http;
mod registry;
mod sources;

#[cfg(feature = "http")]
pub use self::http::HealthService;
pub use registry::{
    ComponentReport, FnSource, HealthCheck, HealthRegistry, HealthReport, HealthSource,
    HealthStatus, OverallStatus, Probe, source_fn,
};
