//! The buttress layers' handles as [`HealthSource`]s.
//!
//! Register a layer's handle and the registry reads its state at each probe, a few
//! atomic loads, no locks:
//!
//! | handle | healthy | degraded | unhealthy |
//! |---|---|---|---|
//! | [`CircuitBreakerHandle`] | closed, disabled | half-open; open with its wait over | open and waiting, forced open |
//! | [`BulkheadHandle`] | a slot free, nobody waiting | full, or calls waiting | never |
//! | [`RateLimitHandle`] | no rejection recently | rejections recently (10 s by default) | never |
//!
//! (The same table, and why an open breaker whose wait is over is degraded, is in the
//! `health` module's docs.) A circuit breaker reports what a call made now would meet,
//! read with `peek`, which changes nothing: an open breaker only half-opens when a call
//! arrives, and an unready instance gets none.
//!
//! A rate limiter's status is "rejected calls recently": a probe that finds rejections
//! the previous probe had not seen opens a window (10 s unless set with
//! [`RateLimitHandle::degraded_for`]) during which every probe reports degraded, so
//! that `/health` and `/ready` probing one registry agree (the limiter itself only does
//! one relaxed add per rejection).
//!
//! An unnamed layer reports under its kind (`"circuit_breaker"`, `"bulkhead"`,
//! `"rate_limiter"`); name each layer that a registry holds (its builder's `name`, or
//! `named` on its handle), since names must be unique there.

use super::{HealthSource, HealthStatus};
use crate::bulkhead::BulkheadHandle;
use crate::circuit_breaker::CircuitBreakerHandle;
use crate::rate_limit::RateLimitHandle;
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
            // The wait is over: the next call probes. Reported as half-open, so that a
            // critical breaker lets readiness pass and traffic (the probe) come back.
            // (`would_admit` reads the state again: had it moved on in between, it is
            // half-open or closed by now, or open again and then rejecting.)
            State::Open if self.would_admit() => HealthStatus::Degraded,
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

impl HealthSource for BulkheadHandle {
    fn name(&self) -> &str {
        BulkheadHandle::name(self).unwrap_or("bulkhead")
    }

    fn kind(&self) -> &'static str {
        "bulkhead"
    }

    fn status(&self) -> HealthStatus {
        if self.available() == 0 || self.waiting() > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("in_flight".into(), self.in_flight().into());
        d.insert("waiting".into(), self.waiting().into());
        d.insert("max_concurrent".into(), self.max_concurrent().into());
        d
    }
}

impl HealthSource for RateLimitHandle {
    fn name(&self) -> &str {
        RateLimitHandle::name(self).unwrap_or("rate_limiter")
    }

    fn kind(&self) -> &'static str {
        "rate_limiter"
    }

    fn status(&self) -> HealthStatus {
        if self.recently_rejected() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("rejected".into(), self.rejected().into());
        d
    }
}
