//! Client side deadlines: the time a call has left, sent to the server as
//! `grpc-timeout`.
//!
//! A gRPC server learns how long its client will wait from the request's `grpc-timeout`
//! header, and stops working for a client that has gone (see
//! [`deadline_timeout`](super::deadline_timeout) for the server side). A client that
//! calls other services while serving a request of its own should pass on what is left
//! of that request's deadline, not start a fresh one: otherwise a chain of calls keeps
//! working long after the first caller gave up.
//!
//! [`PropagateDeadlineLayer`] sets `grpc-timeout` on every outgoing request to the
//! shortest of:
//!
//! - the time left until the request's [`Deadline`] extension, if it has one (put it on
//!   a `tonic::Request` with `extensions_mut().insert(..)`; tonic moves extensions into
//!   the `http::Request` a `Channel` sees);
//! - the layer's per-call timeout, if it has one ([`PropagateDeadlineLayer::with_timeout`]);
//! - a valid `grpc-timeout` the request already carries (tonic's
//!   `Request::set_timeout`): a deadline is never lengthened.
//!
//! A request whose deadline has already passed is not sent: its future fails at once with
//! [`DeadlinePassed`](crate::timeout::error::DeadlinePassed), which is final: a retry
//! around this layer does not retry it (it would only fail the same way, after using
//! the retry budget), and a circuit breaker does not count it (the backend was not
//! asked, so it says nothing of the backend's health). Otherwise the layer only writes the
//! header; to also stop waiting locally, put a timeout layer around the call (the server
//! answers `DEADLINE_EXCEEDED` when its own bound fires).
//!
//! The layer reads the clock (`tokio::time::Instant`, so paused test time drives it) once
//! per call, and only for a request that carries a [`Deadline`]. Writing the header
//! costs what inserting any header costs: its value (at most 9 bytes) is one
//! allocation, plus the header map's first storage if the request had no header yet.
//!
//! ```
//! use buttress::grpc::{Deadline, PropagateDeadlineLayer};
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! // Stands in for a tonic `Channel`: answers with the grpc-timeout it was sent.
//! let channel = service_fn(|req: http::Request<()>| async move {
//!     Ok::<_, buttress::BoxError>(req.headers().get("grpc-timeout").cloned())
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(PropagateDeadlineLayer::with_timeout(Duration::from_secs(5))?)
//!     .service(channel);
//!
//! // The request being served has 250 ms left: that is what the next hop gets.
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(Deadline::after(Duration::from_millis(250)));
//! let sent = client.ready().await?.call(req).await?;
//! assert_eq!(sent.unwrap(), "250000u");
//!
//! // Without a deadline, the per-call timeout.
//! let sent = client.ready().await?.call(http::Request::new(())).await?;
//! assert_eq!(sent.unwrap(), "5000000u");
//!
//! // A deadline that has passed: the call is not made.
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(Deadline::after(Duration::ZERO));
//! assert!(client.ready().await?.call(req).await.is_err());
//! # Ok(())
//! # }
//! ```

mod deadline;
pub mod future;
mod layer;
mod service;

pub use deadline::Deadline;
pub use layer::PropagateDeadlineLayer;
pub use service::PropagateDeadline;
