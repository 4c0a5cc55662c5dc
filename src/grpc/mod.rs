//! gRPC integration through [tonic](https://docs.rs/tonic).
//!
//! - **Classifying calls** ([`GrpcClassifier`]) by [`tonic::Code`]: `UNAVAILABLE`,
//!   `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN` and `DATA_LOSS`
//!   are failures by default, on a generated client's `Result<Response<T>, Status>` as
//!   on the `http::Response` a tower layer around a `Channel` or a server sees (where a
//!   trailers-only response's `grpc-status` header carries the code).
//! - **Answering rejections** ([`into_status`], [`status_from_error`]): a buttress
//!   rejection becomes a [`tonic::Status`] (`CircuitOpen` and `BudgetExhausted`
//!   `UNAVAILABLE`, `BulkheadFull` and `RateLimited` `RESOURCE_EXHAUSTED`, `Elapsed`
//!   `DEADLINE_EXCEEDED`) with `grpc-retry-pushback-ms` metadata where the layer knows
//!   when to come back; [`Pushback`] reads it back on the client side.
//! - **Deadlines** ([`grpc_timeout`], [`parse_grpc_timeout`], [`format_grpc_timeout`],
//!   [`set_grpc_timeout`]): the `grpc-timeout` header, read on the server side to bound
//!   the work, written on the client side to propagate what is left of a deadline.
//!   Malformed values are errors, never panics.
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
//! In a tonic server, put `tower::util::MapErrLayer::new(buttress::grpc::into_status)`
//! outside the buttress layers, so that a rejection reaches the client as a `Status`
//! (tonic turns a `Status` error into a trailers-only response; any other error resets
//! the stream).

mod classify;
mod deadline;
mod status;

pub use classify::{GrpcClassifier, response_code};
pub use deadline::{
    GRPC_TIMEOUT, InvalidGrpcTimeout, format_grpc_timeout, grpc_timeout, parse_grpc_timeout,
    set_grpc_timeout,
};
pub use status::{
    Pushback, RETRY_PUSHBACK_MS, into_status, rejection_code, set_retry_pushback, status_from_error,
};
