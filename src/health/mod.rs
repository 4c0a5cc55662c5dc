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
//!   (say its breaker is open) or the instance is [draining](HealthRegistry::set_draining);
//!   `200` otherwise (`"degraded"` when a component is degraded, or unhealthy but not
//!   critical).
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
