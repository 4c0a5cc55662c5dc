//! Timeout: fail a call with [`Elapsed`](error::Elapsed) when it takes too long.
//!
//! [`TimeoutLayer`] limits each call to a fixed duration ([`TimeoutLayer::new`]) or to
//! one computed from the request ([`TimeoutLayer::per_request`]). When the time is up
//! the inner future is dropped, which cancels the call, and the error is
//! [`Elapsed`](error::Elapsed), a [`Rejection`](crate::error::Rejection) that adapters
//! map to 504 / `DEADLINE_EXCEEDED`.
//!
//! Put one outside the retry layer for an overall limit, and one inside it for a
//! per-attempt limit: the retry layer's default policy retries `Elapsed`.
//!
//! # Cost
//!
//! The timer is armed lazily: the response future polls the inner future first, and
//! only if it is not ready reads the clock and creates the timer. A call that is ready
//! at once costs no clock read, no timer and no allocation. The limit counts from the
//! first poll, which for a future awaited as soon as it is made is the call itself.
//! Measured (`cargo bench -p buttress-benches --bench timeout`, which times the same
//! layer arming its timer in `call` beside it): a call ready at once costs +4.1 ns
//! over the bare service armed lazily, +40.2 ns armed in `call` (a clock read and a
//! timer entry), as tower's `Timeout` costs +40.6.
//!
//! With the `metrics` feature a cut call counts in `buttress_timeout_elapsed_total`
//! (and `buttress_rejections_total`); with `tracing` it is a `DEBUG` event. Name the
//! layer with [`TimeoutLayer::name`]; see [`observe`](crate::observe). With either
//! feature on, the response future holds a reference to the instance's instruments
//! (one `Arc` clone per call): the timeout has no shared state of its own to reach them
//! through.
//!
//! ```
//! use buttress::timeout::TimeoutLayer;
//! use buttress::error::{rejection, RejectionKind};
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! let slow = service_fn(|req: u32| async move {
//!     tokio::time::sleep(Duration::from_secs(req.into())).await;
//!     Ok::<_, buttress::BoxError>(req)
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(2))?)
//!     .service(slow);
//! assert_eq!(svc.clone().oneshot(1).await?, 1);
//! let err = svc.oneshot(5).await.unwrap_err();
//! assert_eq!(rejection(&*err).unwrap().kind(), RejectionKind::Elapsed);
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;

pub use layer::{Fixed, TimeoutFor, TimeoutLayer};
pub use service::Timeout;
