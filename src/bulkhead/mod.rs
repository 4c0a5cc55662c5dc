//! The bulkhead: at most `max_concurrent` calls in flight.
//!
//! A bulkhead keeps one slow dependency from taking every worker, connection or buffer
//! with it: calls beyond `max_concurrent` are refused with [`BulkheadFull`] at once, or,
//! with [`max_wait`](BulkheadBuilder::max_wait), wait in a bounded first-come
//! first-served queue (`max_waiting`, a full queue rejects at once) until a slot frees or
//! their wait runs out.
//!
//! - **The slot is taken with the call**, in `call`/the response future, not in
//!   `poll_ready`: a connection that polls readiness and idles pins nothing. For
//!   tower-style backpressure (not ready while full), opt in with
//!   [`backpressure(true)`](BulkheadBuilder::backpressure).
//! - **A slot is a guard** dropped with the response future, so completion, errors,
//!   cancellation and panics all give it back.
//! - **One bulkhead per layer value**: every service the layer makes, and every clone,
//!   shares its slots. [`BulkheadHandle`] reports in-flight and waiting counts.
//! - The reject-at-once mode takes a slot with one compare-and-swap on the core's
//!   [`Permits`](buttress_core::permits::Permits) counter and gives it back with one
//!   `fetch_sub`, lock-free and allocation-free, and nothing else atomic (no reference
//!   count per call: the counter's word lives in a pooled cell of its own); admission
//!   is exact (a call is refused only when every slot is held, never because another
//!   caller raced it for the last one). The waiting and backpressure modes
//!   keep their slots in tokio's fair semaphore, whose queue hands a freed slot to the
//!   oldest waiter: its admit path is one compare-and-swap, but its release takes the
//!   semaphore's (uncontended) internal lock, and only a call that actually has to wait
//!   allocates: its queued wait, and the box that keeps it with the service and the
//!   request (so that an admitted call's future stays small whatever the service).
//! - The service must be `Clone`: a call that waits keeps the service that was made
//!   ready and leaves a clone behind.
//! - **Metrics and tracing**: with the `metrics` feature the bulkhead keeps an
//!   in-flight gauge (moved by one when a call takes and gives back its slot), counts
//!   rejections, and with `max_wait` a waiting gauge and a histogram of waits; with
//!   `tracing` a rejection is a `DEBUG` event. Name it with
//!   [`name`](BulkheadBuilder::name); see [`observe`](crate::observe). With either
//!   feature on, a call's permit holds its own reference to the instruments (one `Arc`
//!   clone per call).
//!
//! ```
//! use buttress::bulkhead::{BulkheadLayer, error::BulkheadFull};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! let layer = BulkheadLayer::builder()
//!     .max_concurrent(8)
//!     .max_wait(Duration::from_millis(50))
//!     .max_waiting(32)
//!     .build()?;
//! let handle = layer.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }));
//!
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! assert_eq!(handle.in_flight(), 0);
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;
mod shared;

pub use error::BulkheadFull;
pub use layer::{BulkheadBuilder, BulkheadHandle, BulkheadLayer};
pub use service::Bulkhead;
