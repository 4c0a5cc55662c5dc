//! HTTP integration: what a response means, and what a rejection answers.
//!
//! Two halves, for the two sides of an HTTP service:
//!
//! - **Classifying responses** ([`HttpClassifier`]): a `503` is an `Ok` at the tower level
//!   and still a failure of the backend. By default `5xx` and `429` are failures, every
//!   other status a success, and every `Err` (no response at all: a refused connection,
//!   a reset) a failure; codes can be moved between outcomes, or a function of the status
//!   decides ([`HttpClassifier::from_fn`]).
//! - **Answering errors** ([`ErrorResponse`], [`handle_error`], [`error_response`]): a
//!   buttress rejection becomes the status a client knows how to handle, with
//!   `Retry-After` where the layer knows when to come back; any other error becomes a
//!   `500` that says nothing of its cause.
//!
//! | rejection | status |
//! |---|---|
//! | [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) | 503, `Retry-After` when known |
//! | [`BulkheadFull`](crate::bulkhead::error::BulkheadFull) | 503 |
//! | [`RateLimited`](crate::rate_limit::error::RateLimited) | 429, `Retry-After` |
//! | [`Elapsed`](crate::timeout::error::Elapsed) | 504 |
//! | [`BudgetExhausted`](crate::retry::error::BudgetExhausted) | 503 |
//! | any other error | 500, body `{"error":"internal"}` |
//!
//! ```
//! use buttress::error::BoxError;
//! use buttress::http::ErrorResponse;
//! use buttress::rate_limit::error::RateLimited;
//! use std::time::Duration;
//!
//! let err: BoxError = Box::new(RateLimited::new(Duration::from_millis(1500)));
//! let res = ErrorResponse::from(err).into_http();
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.headers()["retry-after"], "2"); // whole seconds, rounded up
//!
//! let err: BoxError = "db password rejected for 10.0.0.7".into();
//! let res = ErrorResponse::from(err).into_http();
//! assert_eq!(res.status(), 500); // and the body does not repeat the message
//! ```
//!
//! In axum, give [`handle_error`] to `HandleErrorLayer`; [`ErrorResponse`] implements
//! axum's `IntoResponse`.
//!
//! On the client side, [`replay`] makes request bodies replayable so that a retry can
//! send a request again ([`BufferRequestBodyLayer`], [`ReplayBody`]), and says which
//! requests may be sent again ([`is_idempotent`], [`clone_for_retry`], [`ReplayPolicy`]).

mod classify;
pub mod replay;
mod response;

pub use classify::{HttpClassifier, StatusFn};
pub use replay::{
    BufferRequestBody, BufferRequestBodyLayer, ReplayBody, ReplayPolicy, clone_for_retry,
    clone_request, is_idempotent,
};
pub use response::{ErrorResponse, error_response, handle_error};
