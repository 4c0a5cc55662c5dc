//! Turning errors, buttress rejections first, into HTTP responses.

use crate::error::{BoxError, RejectionKind, rejection};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The HTTP answer to an error of a buttress stack.
///
/// | error | status | `Retry-After` |
/// |---|---|---|
/// | [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) | 503 Service Unavailable | when known |
/// | [`BulkheadFull`](crate::bulkhead::error::BulkheadFull) | 503 Service Unavailable | no |
/// | [`RateLimited`](crate::rate_limit::error::RateLimited) | 429 Too Many Requests | yes |
/// | [`Elapsed`](crate::timeout::error::Elapsed) | 504 Gateway Timeout | no |
/// | [`BudgetExhausted`](crate::retry::error::BudgetExhausted) | 503 Service Unavailable | no |
/// | [`DeadlinePassed`](crate::timeout::error::DeadlinePassed) | 504 Gateway Timeout | no |
/// | anything else | 500 Internal Server Error | no |
///
/// A rejection is found anywhere in the error's [`source`](Error::source) chain (see
/// [`rejection`](crate::error::rejection)). `Retry-After` is in whole seconds, rounded
/// up so that a client that honours it never comes back too early, and at most
/// `2147483` (the span of the largest gRPC pushback, `i32::MAX` milliseconds, about
/// 24.8 days), so that no peer is sent a value it may not parse. A longer `retry_after`
/// is sent as the cap, not left out: a circuit breaker whose open wait never ends
/// (`wait_in_open(Duration::MAX)`) rejects with a `retry_after` of centuries, and the cap
/// tells the client "not for weeks", where no `Retry-After` at all would let it retry on
/// its own schedule. The body is a small
/// JSON object naming the rejection, `{"error":"rate_limited","retry_after":2}`; any
/// other error becomes `{"error":"internal"}`, so that nothing of its message (paths,
/// addresses, upstream names) leaks to the client.
///
/// It implements axum's `IntoResponse`; [`ErrorResponse::into_http`] gives the plain
/// `http::Response` for hyper or any other server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse {
    kind: Option<RejectionKind>,
    retry_after: Option<Duration>,
}

impl ErrorResponse {
    /// The response for `err`.
    pub fn from_error(err: &(dyn Error + 'static)) -> Self {
        match rejection(err) {
            Some(r) => ErrorResponse {
                kind: Some(r.kind()),
                retry_after: r.retry_after(),
            },
            None => ErrorResponse {
                kind: None,
                retry_after: None,
            },
        }
    }

    /// The rejection this answers, or `None` for any other error (a 500).
    pub fn kind(&self) -> Option<RejectionKind> {
        self.kind
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Some(RejectionKind::CircuitOpen)
            | Some(RejectionKind::BulkheadFull)
            | Some(RejectionKind::BudgetExhausted) => StatusCode::SERVICE_UNAVAILABLE,
            Some(RejectionKind::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            Some(RejectionKind::Elapsed) | Some(RejectionKind::DeadlinePassed) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            None => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The rejection's `retry_after`, exactly, where it is known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The `Retry-After` value: `retry_after` in whole seconds, rounded up, at most
    /// `2147483` (see [`ErrorResponse`]).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|after| ceil_secs(after).min(MAX_RETRY_AFTER_SECS))
    }

    /// The response as a plain `http::Response` with a JSON body.
    pub fn into_http(self) -> Response<Full<Bytes>> {
        let secs = self.retry_after_secs();
        let name = match self.kind {
            Some(kind) => kind.as_str(),
            None => "internal",
        };
        let body = match secs {
            Some(secs) => Bytes::from(format!("{{\"error\":\"{name}\",\"retry_after\":{secs}}}")),
            None => Bytes::from(format!("{{\"error\":\"{name}\"}}")),
        };
        let mut res = Response::new(Full::new(body));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl fmt::Debug for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponse")
            .field("status", &self.status())
            .field("kind", &self.kind)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl From<BoxError> for ErrorResponse {
    fn from(err: BoxError) -> Self {
        ErrorResponse::from_error(&*err)
    }
}

impl From<&(dyn Error + 'static)> for ErrorResponse {
    fn from(err: &(dyn Error + 'static)) -> Self {
        ErrorResponse::from_error(err)
    }
}

impl From<ErrorResponse> for Response<Full<Bytes>> {
    fn from(res: ErrorResponse) -> Self {
        res.into_http()
    }
}

impl axum_core::response::IntoResponse for ErrorResponse {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http().map(axum_core::body::Body::new)
    }
}

/// The response for an error of a buttress stack: the function to give axum's
/// `HandleErrorLayer` (which wants an `async` function of the error).
///
/// ```
/// use axum::{Router, error_handling::HandleErrorLayer, routing::get};
/// use buttress::http::handle_error;
/// use tower::ServiceBuilder;
/// # use tower::util::MapErrLayer;
/// # let some_buttress_layer = MapErrLayer::new(|e: std::convert::Infallible| -> buttress::BoxError { match e {} });
///
/// let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
///     ServiceBuilder::new()
///         .layer(HandleErrorLayer::new(handle_error))
///         .layer(some_buttress_layer), // its error is a `BoxError`
/// );
/// # drop(app);
/// ```
pub async fn handle_error(err: BoxError) -> ErrorResponse {
    ErrorResponse::from_error(&*err)
}

/// The response for an error of a buttress stack, as a plain `http::Response`: for a
/// `tower::util::MapErr`-style adapter, hyper, or any server other than axum.
pub fn error_response(err: &(dyn Error + 'static)) -> Response<Full<Bytes>> {
    ErrorResponse::from_error(err).into_http()
}

/// The largest `Retry-After` written, in seconds: the span of the largest
/// `grpc-retry-pushback-ms` (`i32::MAX` milliseconds, which gRPC's retry design reads
/// as a signed 32-bit integer), in whole seconds. A peer storing either header in an
/// `i32` can take it.
const MAX_RETRY_AFTER_SECS: u64 = i32::MAX as u64 / 1_000;

/// `d` in whole seconds, rounded up, saturating.
fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_saturate() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn retry_after_is_capped_at_the_largest_grpc_pushback() {
        assert_eq!(MAX_RETRY_AFTER_SECS, 2_147_483);
        let secs = |after| {
            ErrorResponse {
                kind: Some(RejectionKind::CircuitOpen),
                retry_after: Some(after),
            }
            .retry_after_secs()
        };
        assert_eq!(secs(Duration::from_secs(2_147_482)), Some(2_147_482));
        assert_eq!(secs(Duration::from_millis(2_147_482_001)), Some(2_147_483));
        assert_eq!(secs(Duration::from_secs(2_147_483)), Some(2_147_483));
        assert_eq!(
            secs(Duration::from_millis(i32::MAX as u64)),
            Some(2_147_483)
        );
        assert_eq!(secs(Duration::MAX), Some(2_147_483));
    }
}
