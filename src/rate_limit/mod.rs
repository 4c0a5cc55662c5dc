//! The rate limiter: GCRA (a rate and a burst) in one atomic word, direct or keyed.
//!
//! [`RateLimitLayer`] admits `rate` calls per `period`, with bursts of up to `burst`,
//! using the Generic Cell Rate Algorithm of [`buttress_core::gcra`]: its whole state is
//! one `AtomicU64` updated by a compare-and-swap, so the admit path takes no lock and
//! allocates nothing, and reads the clock once.
//!
//! Over the limit a call is rejected with [`RateLimited`], whose `retry_after` is exact:
//! the same call made that much later passes. With
//! [`max_wait`](RateLimitBuilder::max_wait) it instead *reserves* its slot at once and
//! sleeps until it (`tokio::time::sleep_until`), provided that is no longer than
//! `max_wait`; a call that would wait longer is rejected without reserving anything.
//! The reservation is exact to the nanosecond, but tokio's timer fires on whole
//! milliseconds: a waiting call goes on at the first tick at or after its slot, never
//! before. Above 1,000 calls per second, calls reserved within one millisecond so go on
//! together at its tick, up to about `rate / 1000` of them at once: the count over any
//! span from the start of the wait still stays within `burst + rate × elapsed`, but
//! the inner service sees them in millisecond steps, not evenly spread.
//!
//! [`KeyedRateLimitLayer`] keeps one limiter per key extracted from the request (client
//! IP, tenant, route), in a bounded lock-free store ([`buttress_core::keyed`]): at most
//! `max_keys` keys, idle keys evicted by the store itself, so spraying random keys
//! cannot exhaust memory, while the keys limited longest are kept (with a burst of one,
//! give it room for the keys a flood can bring in one interval: see
//! [`buttress_core::keyed`]).
//!
//! Every service a layer makes, and every clone, shares one limiter (unlike tower's
//! `RateLimit`, which limits each service separately). Limiting happens in `call`, not
//! `poll_ready`: readiness is the inner service's. The service must be `Clone` (a call
//! that waits keeps the service that was made ready). Time is [`TokioClock`]'s by
//! default, so `tokio::time::pause()` drives the limiter in tests; any [`SleepClock`]
//! can replace it.
//!
//! With the `metrics` feature the limiter counts rejections, and with `max_wait` the
//! delayed calls and a histogram of their waits (known when the slot is reserved: no
//! extra clock read); with `tracing` each is a `DEBUG` event. Name it with
//! [`name`](RateLimitBuilder::name); see [`observe`](crate::observe).
//!
//! [`TokioClock`]: crate::clock::TokioClock
//!
//! ```
//! use buttress::rate_limit::{RateLimitLayer, error::RateLimited};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! // 100 calls per second, bursts of 2.
//! let limit = RateLimitLayer::new(100, Duration::from_secs(1), 2)?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(limit)
//!     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
//!
//! assert_eq!(svc.ready().await?.call(1).await?, 1);
//! assert_eq!(svc.ready().await?.call(2).await?, 2);
//! let err = svc.ready().await?.call(3).await.unwrap_err();
//! let limited = err.downcast_ref::<RateLimited>().expect("rate limited");
//! assert!(limited.retry_after() <= Duration::from_millis(10));
//!
//! // Per client: one limiter per key, at most 10,000 keys held.
//! let per_client = RateLimitLayer::builder()
//!     .rate(10)
//!     .burst(5)
//!     .keyed(10_000, |req: &(u32, u64)| req.0)?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(per_client)
//!     .service(service_fn(|req: (u32, u64)| async move { Ok::<_, std::io::Error>(req.1) }));
//! assert_eq!(svc.ready().await?.call((7, 99)).await?, 99);
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;

pub use error::RateLimited;
pub use layer::{
    KeyedRateLimitLayer, RateLimitBuilder, RateLimitHandle, RateLimitLayer, SleepClock,
};
pub use service::{KeyedRateLimit, RateLimit};
