//! The fallback: answer a failed call from somewhere else.
//!
//! [`FallbackLayer`] watches the whole result of each call. When it is a failure (by
//! default any `Err`; with [`classify`](FallbackLayer::classify) any
//! [`Classify`](crate::classify::Classify) policy, so an `Ok` 503 can count; with
//! [`on_error`](FallbackLayer::on_error) only errors matching a predicate), the
//! response comes instead from:
//!
//! - a value: [`FallbackLayer::value`] (cloned per call, so keep it cheap);
//! - a closure given the failed result, so the original error reaches it:
//!   [`FallbackLayer::from_fn`];
//! - another service, called with a clone of the request:
//!   [`FallbackLayer::service`].
//!
//! The success path adds a classification and a branch, and no boxing (the response
//! future is an enum state machine, primary then fallback). The handler goes with each
//! call, so it is cloned per call: a value given to [`FallbackLayer::value`] should be
//! cheap to clone (`Copy`, a `&'static str`, an `Arc`), since a `String` there would be
//! allocated on every call, failed or not; [`FallbackLayer::from_fn`] builds its answer
//! only on a failure.
//! Outermost in the recommended stack, it turns every rejection of the layers below
//! (breaker open, rate limited, bulkhead full, timed out) into a degraded answer: those
//! all happen in the response future. An error from the inner service's `poll_ready`
//! is passed on as it is: there is no request yet to answer, and a service whose
//! readiness fails (a closed `Buffer`) is to be dropped, as tower's contract says.
//!
//! With the `metrics` feature each answer from the fallback counts in
//! `buttress_fallback_taken_total`; with `tracing` it is a `DEBUG` event. Name the
//! layer with [`FallbackLayer::name`]; see [`observe`](crate::observe). With either
//! feature on, the response future holds a reference to the instance's instruments
//! (one `Arc` clone per call).
//!
//! ```
//! use buttress::fallback::FallbackLayer;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! let flaky = service_fn(|x: u32| async move {
//!     if x % 2 == 0 { Ok(x) } else { Err(std::io::Error::other("odd")) }
//! });
//! let mut svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::from_fn(|failed: Result<u32, std::io::Error>| {
//!         let err = failed.unwrap_err();
//!         assert_eq!(err.to_string(), "odd");
//!         0
//!     }))
//!     .service(flaky);
//!
//! assert_eq!(svc.ready().await?.call(4).await?, 4);
//! assert_eq!(svc.ready().await?.call(3).await?, 0);
//! # Ok(())
//! # }
//! ```

pub mod future;
mod handler;
mod layer;
mod service;

pub use handler::{FromFn, NoWait, Oneshot, Recover, Recovery, Save, ToService, Value};
pub use layer::{FallbackLayer, OnError};
pub use service::Fallback;
