//! The buttress layers' handles as [`HealthSource`]s.
//!
//! Register a layer's handle and the registry reads its state at each probe, a few
//! atomic loads, no locks:
//!
//! | handle | healthy | degraded | unhealthy |
//! |---|---|---|---|
//! | [`CircuitBreakerHandle`] | closed, disabled | half-open | open, forced open |
//!
//! An unnamed layer reports under its kind (`"circuit_breaker"`); name each layer that
//! a registry holds, since names must be unique there.

use super::{HealthSource, HealthStatus};
use crate::circuit_breaker::CircuitBreakerHandle;
use buttress_core::breaker::State;
use serde_json::{Map, Value};

impl HealthSource for CircuitBreakerHandle {
    fn name(&self) -> &str {
        CircuitBreakerHandle::name(self).unwrap_or("circuit_breaker")
    }

    fn kind(&self) -> &'static str {
        "circuit_breaker"
    }

    fn status(&self) -> HealthStatus {
        match self.state() {
            State::Closed | State::Disabled => HealthStatus::Healthy,
            State::HalfOpen => HealthStatus::Degraded,
            State::Open | State::ForcedOpen => HealthStatus::Unhealthy,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let m = self.metrics();
        let mut d = Map::new();
        d.insert("state".into(), m.state.as_str().into());
        d.insert("calls".into(), m.calls.into());
        d.insert("failures".into(), m.failures.into());
        d.insert("slow_calls".into(), m.slow_calls.into());
        d.insert("failure_rate".into(), m.failure_rate.into());
        d.insert("slow_call_rate".into(), m.slow_call_rate.into());
        d.insert("not_permitted".into(), m.not_permitted.into());
        d
    }
}
