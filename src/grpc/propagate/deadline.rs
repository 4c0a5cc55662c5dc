//! [`Deadline`]: the instant a call must be done by, carried in request extensions.

use std::time::Duration;
use tokio::time::Instant;

/// The instant by which a call must be done, as a request extension.
///
/// [`PropagateDeadline`](super::PropagateDeadline) sends what is left of it as
/// `grpc-timeout`. The instant is a `tokio::time::Instant`, so paused test time moves it
/// like every other buttress timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline `timeout` from now (saturating: a timeout too long to represent is
    /// about thirty years away rather than a panic).
    pub fn after(timeout: Duration) -> Self {
        Deadline(crate::clock::instant_after(Instant::now(), timeout))
    }

    /// The instant.
    pub fn instant(&self) -> Instant {
        self.0
    }

    /// The time left from `now`, zero once the deadline has passed.
    pub fn remaining_at(&self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// The time left from now, zero once the deadline has passed.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }
}
