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
//! | [`DeadlinePassed`](crate::timeout::error::DeadlinePassed) | 504 |
//! | any other error | 500, body `{"error":"internal"}` |
//!
//! `Retry-After` is in whole seconds, rounded up, and at most `2147483` (about 24.8
//! days, the span of the largest gRPC pushback), whatever the layer's `retry_after`:
//! see [`ErrorResponse`].
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
//! requests may be sent again ([`is_idempotent`], [`clone_for_retry`], [`ReplayPolicy`]);
//! [`HttpRetryPolicy`] says which results are retried (`500`, `502`, `503`, `504`, `429`,
//! connection errors) and waits what `Retry-After` asks (seconds or an HTTP date; longer
//! than the retry's `max_wait`, negative or malformed: no retry). Both in one layer:
//!
//! ```
//! use buttress::http::HttpRetryPolicy;
//! use buttress::retry::RetryLayer;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! # let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! # let hyper_client = service_fn(move |_req: Request<buttress::http::ReplayBody<Full<Bytes>>>| {
//! #     let first = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
//! #     async move {
//! #         let status = if first { 503 } else { 200 };
//! #         Ok::<_, buttress::BoxError>(Response::builder().status(status).header("retry-after", "1").body(())?)
//! #     }
//! # });
//! // Bodies up to 64 KiB buffered and replayed; idempotent requests retried.
//! let retry = HttpRetryPolicy::new()
//!     .retry_layer(RetryLayer::builder().max_attempts(3).max_wait(Duration::from_secs(10)))?;
//! let client = ServiceBuilder::new().layer(retry).service(hyper_client);
//!
//! let res = client.oneshot(Request::get("/items/7").body(Full::new(Bytes::new()))?).await?;
//! assert_eq!(res.status(), 200); // after a 503 and the second it asked for
//! # Ok(())
//! # }
//! ```

mod classify;
pub mod replay;
mod response;
mod retry;

pub use classify::{HttpClassifier, StatusFn};
pub use replay::{
    BufferRequestBody, BufferRequestBodyLayer, ReplayBody, ReplayPolicy, clone_for_retry,
    clone_request, is_idempotent,
};
pub use response::{ErrorResponse, error_response, handle_error};
pub use retry::{HttpRetryLayer, HttpRetryPolicy};
