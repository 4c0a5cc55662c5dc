//! The registry, the reporting trait, and the reports.

use crate::ConfigError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// How one component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally (a closed breaker, a bulkhead with room).
    Healthy,
    /// Working, but under strain or recovering (a half-open breaker, a full bulkhead,
    /// a limiter rejecting calls).
    Degraded,
    /// Not working (an open breaker).
    Unhealthy,
}

/// A component that reports its health: a circuit breaker's, bulkhead's or rate
/// limiter's handle, or anything of the application's own.
///
/// Each method is called once per probe, from the probe's task: it should read a few
/// atomics, not do I/O.
pub trait HealthSource: Send + Sync + 'static {
    /// The component's name, unique in a registry (`"payments-api"`).
    fn name(&self) -> &str;

    /// What kind of component it is (`"circuit_breaker"`, `"bulkhead"`,
    /// `"rate_limiter"`, `"database"`...).
    fn kind(&self) -> &'static str;

    /// How it is doing now.
    fn status(&self) -> HealthStatus;

    /// Anything else worth showing (a breaker's state and failure rate, a bulkhead's
    /// load); omitted from the report when empty, which is the default.
    fn details(&self) -> Map<String, Value> {
        Map::new()
    }
}

impl<T: HealthSource + ?Sized> HealthSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn status(&self) -> HealthStatus {
        (**self).status()
    }
    fn details(&self) -> Map<String, Value> {
        (**self).details()
    }
}

impl<T: HealthSource + ?Sized> HealthSource for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn status(&self) -> HealthStatus {
        (**self).status()
    }
    fn details(&self) -> Map<String, Value> {
        (**self).details()
    }
}

/// A [`HealthSource`] from a name, a kind and a function giving the status: for the
/// application's own components.
///
/// ```
/// use buttress::health::{source_fn, HealthRegistry, HealthStatus};
///
/// let registry = HealthRegistry::new();
/// registry
///     .register_critical(source_fn("config", "file", || HealthStatus::Healthy))
///     .unwrap();
/// assert!(registry.readiness().is_passing());
/// ```
pub fn source_fn<F>(name: impl Into<String>, kind: &'static str, status: F) -> FnSource<F>
where
    F: Fn() -> HealthStatus + Send + Sync + 'static,
{
    FnSource {
        name: name.into(),
        kind,
        status,
    }
}

/// A [`HealthSource`] made by [`source_fn`].
pub struct FnSource<F> {
    name: String,
    kind: &'static str,
    status: F,
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<F> HealthSource for FnSource<F>
where
    F: Fn() -> HealthStatus + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn status(&self) -> HealthStatus {
        (self.status)()
    }
}

struct Entry {
    source: Arc<dyn HealthSource>,
    critical: bool,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            source: Arc::clone(&self.source),
            critical: self.critical,
        }
    }
}

struct Inner {
    /// Registration order is report order. A lock is fine here: registration is rare
    /// and probes come a few times a minute; no call path ever touches it.
    entries: RwLock<Vec<Entry>>,
    draining: AtomicBool,
}

/// Named components, each critical or not, answering liveness and readiness probes.
///
/// Cloning gives another handle to the same registry.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

impl HealthRegistry {
    /// An empty registry: live and ready.
    pub fn new() -> Self {
        HealthRegistry {
            inner: Arc::new(Inner {
                entries: RwLock::new(Vec::new()),
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// Adds a component that is reported but does not decide readiness.
    ///
    /// Refused, naming the field `name`, if a component of that name is registered.
    pub fn register<S: HealthSource>(&self, source: S) -> Result<(), ConfigError> {
        self.insert(Arc::new(source), false)
    }

    /// Adds a component whose being [`Unhealthy`](HealthStatus::Unhealthy) makes the
    /// instance not ready.
    ///
    /// Refused, naming the field `name`, if a component of that name is registered.
    pub fn register_critical<S: HealthSource>(&self, source: S) -> Result<(), ConfigError> {
        self.insert(Arc::new(source), true)
    }

    fn insert(&self, source: Arc<dyn HealthSource>, critical: bool) -> Result<(), ConfigError> {
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|e| e.source.name() == source.name()) {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a component named {:?} is already registered",
                    source.name()
                ),
            ));
        }
        entries.push(Entry { source, critical });
        Ok(())
    }

    /// Removes the component named `name`; whether there was one.
    pub fn deregister(&self, name: &str) -> bool {
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|e| e.source.name() != name);
        entries.len() != before
    }

    /// The names of the registered components, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .map(|e| e.source.name().to_owned())
            .collect()
    }

    /// Marks the instance as draining (shutting down): readiness fails from now on,
    /// so that the orchestrator stops sending traffic before the process stops.
    /// `false` undoes it.
    pub fn set_draining(&self, draining: bool) {
        // Relaxed: a lone flag; no other memory is published through it.
        self.inner.draining.store(draining, Ordering::Relaxed);
    }

    /// Whether the instance is draining.
    pub fn is_draining(&self) -> bool {
        // Relaxed: see `set_draining`.
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// The liveness answer: always passing; the report says how every component is.
    pub fn liveness(&self) -> HealthCheck {
        let components = self.components();
        let status = if components.iter().all(|c| c.status == HealthStatus::Healthy) {
            OverallStatus::Up
        } else {
            OverallStatus::Degraded
        };
        HealthCheck {
            probe: Probe::Liveness,
            report: HealthReport { status, components },
        }
    }

    /// The readiness answer: failing while a critical component is unhealthy or the
    /// instance is draining.
    pub fn readiness(&self) -> HealthCheck {
        let components = self.components();
        let status = if self.is_draining()
            || components
                .iter()
                .any(|c| c.critical && c.status == HealthStatus::Unhealthy)
        {
            OverallStatus::Down
        } else if components.iter().all(|c| c.status == HealthStatus::Healthy) {
            OverallStatus::Up
        } else {
            OverallStatus::Degraded
        };
        HealthCheck {
            probe: Probe::Readiness,
            report: HealthReport { status, components },
        }
    }

    /// The answer to `probe`.
    pub fn check(&self, probe: Probe) -> HealthCheck {
        match probe {
            Probe::Liveness => self.liveness(),
            Probe::Readiness => self.readiness(),
        }
    }

    /// The registered entries, copied out so that no source runs under the lock.
    fn snapshot(&self) -> Vec<Entry> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn components(&self) -> Vec<ComponentReport> {
        self.snapshot()
            .into_iter()
            .map(|e| ComponentReport {
                name: e.source.name().to_owned(),
                kind: e.source.kind(),
                status: e.source.status(),
                critical: e.critical,
                details: e.source.details(),
            })
            .collect()
    }
}

impl Default for HealthRegistry {
    fn default() -> Self {
        HealthRegistry::new()
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("components", &self.names())
            .field("draining", &self.is_draining())
            .finish()
    }
}

/// Which question a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Is the process alive (`/health`)?
    Liveness,
    /// Should the instance get traffic (`/ready`)?
    Readiness,
}

/// The overall answer in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    /// Everything healthy.
    Up,
    /// Passing, with some component not healthy.
    Degraded,
    /// Failing (readiness only).
    Down,
}

/// One component in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// How it is doing.
    pub status: HealthStatus,
    /// Whether it decides readiness.
    pub critical: bool,
    /// What else it reported.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

/// Every component's state and the overall answer, as served in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The overall answer.
    pub status: OverallStatus,
    /// Each component, in registration order.
    pub components: Vec<ComponentReport>,
}

/// The answer to one probe: passing or failing, and the report behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    probe: Probe,
    report: HealthReport,
}

impl HealthCheck {
    /// The probe this answers.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// Whether the probe passes.
    pub fn is_passing(&self) -> bool {
        self.report.status != OverallStatus::Down
    }

    /// The HTTP status a probe endpoint answers: `200` passing, `503` failing.
    pub fn status_code(&self) -> u16 {
        if self.is_passing() { 200 } else { 503 }
    }

    /// The report.
    pub fn report(&self) -> &HealthReport {
        &self.report
    }

    /// The report as compact JSON.
    pub fn to_json(&self) -> String {
        // Serializing strings, booleans, enums and `serde_json` maps cannot fail; should
        // it ever, the status still speaks for itself.
        serde_json::to_string(&self.report).unwrap_or_else(|_| match self.report.status {
            OverallStatus::Up => r#"{"status":"up"}"#.to_owned(),
            OverallStatus::Degraded => r#"{"status":"degraded"}"#.to_owned(),
            OverallStatus::Down => r#"{"status":"down"}"#.to_owned(),
        })
    }
}
