//! gRPC integration through [tonic](https://docs.rs/tonic).
//!
//! - **Classifying calls** ([`GrpcClassifier`]) by [`tonic::Code`]: `UNAVAILABLE`,
//!   `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN` and `DATA_LOSS`
//!   are failures by default, on a generated client's `Result<Response<T>, Status>` as
//!   on the `http::Response` a tower layer around a `Channel` or a server sees (where a
//!   trailers-only response's `grpc-status` header carries the code).
//! - **Answering rejections** ([`into_status`], [`status_from_error`]): a buttress
//!   rejection becomes a [`tonic::Status`] (`CircuitOpen` and `BudgetExhausted`
//!   `UNAVAILABLE`, `BulkheadFull` and `RateLimited` `RESOURCE_EXHAUSTED`, `Elapsed` and
//!   `DeadlinePassed` `DEADLINE_EXCEEDED`) with `grpc-retry-pushback-ms` metadata where the layer knows
//!   when to come back (at most `2147483647` ms, the largest value A6 allows: see
//!   [`set_retry_pushback`]); [`Pushback`] reads it back on the client side.
//! - **Retrying calls** ([`GrpcRetryPolicy`]): `UNAVAILABLE` is retried, and
//!   `RESOURCE_EXHAUSTED` when the server sent `grpc-retry-pushback-ms` (gRPC's retry
//!   design, A6); a pushback sets the wait, a negative or malformed one stops the
//!   retries. The status is read from a `tonic::Status` error as from the `grpc-status`
//!   header of a trailers-only `http::Response` (a `Channel`).
//! - **Deadlines** ([`grpc_timeout`], [`parse_grpc_timeout`], [`format_grpc_timeout`],
//!   [`set_grpc_timeout`]): the `grpc-timeout` header. On the server side
//!   [`deadline_timeout`] bounds each call by it (and by a maximum of the server's);
//!   on the client side [`PropagateDeadlineLayer`] writes what is left of a request's
//!   [`Deadline`] (or a per-call timeout). Malformed values are errors, never panics.
//!
//! ```
//! use buttress::error::BoxError;
//! use buttress::grpc::{into_status, Pushback};
//! use buttress::rate_limit::error::RateLimited;
//! use std::time::Duration;
//! use tonic::Code;
//!
//! // A server's stack refused the call: the client sees RESOURCE_EXHAUSTED and when to
//! // come back.
//! let err: BoxError = Box::new(RateLimited::new(Duration::from_millis(120)));
//! let status = into_status(err);
//! assert_eq!(status.code(), Code::ResourceExhausted);
//! assert_eq!(
//!     Pushback::from_status(&status),
//!     Some(Pushback::RetryAfter(Duration::from_millis(120)))
//! );
//! ```
//!
//! A client stub call wrapped in a retry with this policy:
//!
//! ```
//! use buttress::grpc::GrpcRetryPolicy;
//! use buttress::retry::RetryLayer;
//! use tonic::{Request, Response, Status};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! // Stands in for `move |req| { let mut c = client.clone(); async move { c.say(req).await } }`.
//! let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let call = service_fn(move |req: Request<String>| {
//!     let first = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
//!     async move {
//!         if first {
//!             let mut s = Status::resource_exhausted("busy");
//!             s.metadata_mut().insert("grpc-retry-pushback-ms", "200".parse().unwrap());
//!             return Err(s);
//!         }
//!         Ok(Response::new(req.into_inner()))
//!     }
//! });
//! let retry = RetryLayer::builder()
//!     .policy(GrpcRetryPolicy::new())
//!     // `tonic::Request` is not `Clone`: copy its message, metadata and extensions.
//!     .clone_request(buttress::grpc::clone_request::<String>)
//!     .build()?;
//! let res = ServiceBuilder::new().layer(retry).service(call).oneshot(Request::new("hi".into())).await?;
//! assert_eq!(res.into_inner(), "hi"); // after the 200 ms the server asked for
//! # Ok(())
//! # }
//! ```
//!
//! In a tonic server, put `tower::util::MapErrLayer::new(buttress::grpc::into_status)`
//! outside the buttress layers, so that a rejection reaches the client as a `Status`
//! (tonic turns a `Status` error into a trailers-only response; any other error resets
//! the stream).

mod classify;
mod deadline;
pub mod propagate;
mod retry;
mod status;

pub use classify::{GrpcClassifier, response_code};
pub use deadline::{
    DEFAULT_MARGIN, GRPC_TIMEOUT, GrpcDeadline, InvalidGrpcTimeout, deadline_timeout,
    deadline_timeout_with_margin, format_grpc_timeout, grpc_timeout, parse_grpc_timeout,
    set_grpc_timeout,
};
pub use propagate::{Deadline, PropagateDeadline, PropagateDeadlineLayer};
pub use retry::{GrpcRetryPolicy, clone_request};
pub use status::{
    Pushback, RETRY_PUSHBACK_MS, into_status, rejection_code, set_retry_pushback, status_from_error,
};
