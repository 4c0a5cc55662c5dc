//! Classifying gRPC results by status code.

use crate::classify::{Classify, Outcome};
use http::StatusCode;
use std::fmt;
use tonic::{Code, Status};

/// Every gRPC code, in numeric order.
pub(crate) const ALL_CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// The bit of `code` in a code set (codes are 0..=16): the one encoding of the
/// classifier's and the retry policy's code sets.
#[inline]
pub(super) fn bit(code: Code) -> u32 {
    1u32 << (i32::from(code) as u32 & 31)
}

/// Classifies gRPC results by [`tonic::Code`].
///
/// By default `UNKNOWN`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`,
/// `UNAVAILABLE` and `DATA_LOSS` are failures (the server or the path to it is in
/// trouble), `CANCELLED` is ignored (the caller gave up: it says nothing about the
/// server), and every other code, `OK` included, is a success: `NOT_FOUND` or
/// `INVALID_ARGUMENT` is a healthy server's answer to a bad request.
///
/// It classifies two kinds of result:
///
/// - `Result<tonic::Response<T>, tonic::Status>`, what a generated client returns:
///   `Ok` is a success, an `Err` is classified by its code.
/// - `Result<http::Response<B>, E>`, what a tower layer around a tonic `Channel` or a
///   tonic server sees: the `grpc-status` header of a trailers-only response (which is
///   how a server sends an error that comes before any message) decides; with no such
///   header, a non-`200` HTTP status is mapped to a code as the gRPC spec says (`503` is
///   `UNAVAILABLE`, ...), and a `200` is a success (the real status, if any, comes in the
///   trailers, after the layer has let the response go). An `Err` (no response: the
///   connection failed) is a failure.
///
/// ```
/// use buttress::classify::{Classify, Outcome};
/// use buttress::grpc::GrpcClassifier;
/// use tonic::{Code, Status};
///
/// let classifier = GrpcClassifier::new().success(Code::ResourceExhausted);
/// let call = |s: Status| Err::<tonic::Response<()>, _>(s);
/// assert_eq!(classifier.classify(&call(Status::unavailable("down"))), Outcome::Failure);
/// assert_eq!(classifier.classify(&call(Status::resource_exhausted("quota"))), Outcome::Success);
/// assert_eq!(classifier.classify(&call(Status::not_found("no such user"))), Outcome::Success);
/// assert_eq!(classifier.classify(&call(Status::cancelled("gone"))), Outcome::Ignored);
///
/// // A trailers-only error response, as a tower layer around a server sees it.
/// let res = http::Response::builder()
///     .header("grpc-status", "14")
///     .body(())
///     .unwrap();
/// assert_eq!(classifier.classify(&Ok::<_, ()>(res)), Outcome::Failure);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    /// Bit `n` set: code `n` is a failure.
    failures: u32,
    /// Bit `n` set: code `n` is ignored.
    ignored: u32,
}

impl GrpcClassifier {
    /// The default classification described above.
    pub fn new() -> Self {
        GrpcClassifier {
            failures: bit(Code::Unknown)
                | bit(Code::DeadlineExceeded)
                | bit(Code::ResourceExhausted)
                | bit(Code::Internal)
                | bit(Code::Unavailable)
                | bit(Code::DataLoss),
            ignored: bit(Code::Cancelled),
        }
    }

    /// Exactly `codes` are failures, every other code a success (none ignored).
    pub fn with_failures<I>(codes: I) -> Self
    where
        I: IntoIterator<Item = Code>,
    {
        GrpcClassifier {
            failures: codes.into_iter().fold(0, |acc, c| acc | bit(c)),
            ignored: 0,
        }
    }

    /// Counts `code` as a failure.
    pub fn failure(mut self, code: Code) -> Self {
        self.ignored &= !bit(code);
        self.failures |= bit(code);
        self
    }

    /// Counts `code` as a success.
    pub fn success(mut self, code: Code) -> Self {
        self.ignored &= !bit(code);
        self.failures &= !bit(code);
        self
    }

    /// Counts `code` neither way.
    pub fn ignore(mut self, code: Code) -> Self {
        self.failures &= !bit(code);
        self.ignored |= bit(code);
        self
    }

    /// The verdict on a call that ended with `code`.
    #[inline]
    pub fn classify_code(&self, code: Code) -> Outcome {
        let b = bit(code);
        if self.failures & b != 0 {
            Outcome::Failure
        } else if self.ignored & b != 0 {
            Outcome::Ignored
        } else {
            Outcome::Success
        }
    }
}

/// A code set (bit `n`: code `n`) that prints as the set of its codes.
pub(super) struct Codes(pub(super) u32);

impl fmt::Debug for Codes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(ALL_CODES.iter().filter(|&&c| self.0 & bit(c) != 0))
            .finish()
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        GrpcClassifier::new()
    }
}

impl fmt::Debug for GrpcClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClassifier")
            .field("failures", &Codes(self.failures))
            .field("ignored", &Codes(self.ignored))
            .finish()
    }
}

impl<T> Classify<tonic::Response<T>, Status> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<tonic::Response<T>, Status>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(status) => self.classify_code(status.code()),
        }
    }
}

/// For layers that see boxed errors (the circuit breaker classifies after boxing): the
/// first [`Status`] in the error's chain decides; an error without one is a failure.
impl<T> Classify<tonic::Response<T>, crate::error::BoxError> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<tonic::Response<T>, crate::error::BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => crate::error::chain(&**e)
                .find_map(|e| e.downcast_ref::<Status>())
                .map_or(Outcome::Failure, |status| self.classify_code(status.code())),
        }
    }
}

impl<B, E> Classify<http::Response<B>, E> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(res) => match response_code(res) {
                Some(code) => self.classify_code(code),
                None => Outcome::Success,
            },
            Err(_) => Outcome::Failure,
        }
    }
}

/// The gRPC code a response's headers carry, if they carry one.
///
/// The `grpc-status` header of a trailers-only response gives it (an unparsable value is
/// `UNKNOWN`, as tonic reads it). Without that header, a non-`200` HTTP status maps to a
/// code as the gRPC spec's HTTP-to-gRPC table says (`400` `INTERNAL`, `401`
/// `UNAUTHENTICATED`, `403` `PERMISSION_DENIED`, `404` `UNIMPLEMENTED`, `429`/`502`/`503`/
/// `504` `UNAVAILABLE`, any other `UNKNOWN`); a `200` without it gives `None`: the status
/// will come in the trailers.
pub fn response_code<B>(res: &http::Response<B>) -> Option<Code> {
    if let Some(v) = res.headers().get("grpc-status") {
        return Some(Code::from_bytes(v.as_bytes()));
    }
    match res.status() {
        StatusCode::OK => None,
        StatusCode::BAD_REQUEST => Some(Code::Internal),
        StatusCode::UNAUTHORIZED => Some(Code::Unauthenticated),
        StatusCode::FORBIDDEN => Some(Code::PermissionDenied),
        StatusCode::NOT_FOUND => Some(Code::Unimplemented),
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Some(Code::Unavailable),
        _ => Some(Code::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classification_of_every_code() {
        let c = GrpcClassifier::new();
        for code in ALL_CODES {
            let expected = match code {
                Code::Unknown
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss => Outcome::Failure,
                Code::Cancelled => Outcome::Ignored,
                _ => Outcome::Success,
            };
            assert_eq!(c.classify_code(code), expected, "{code:?}");
        }
    }

    #[test]
    fn codes_have_distinct_bits() {
        let all = ALL_CODES.iter().fold(0u32, |acc, &c| {
            assert_eq!(acc & bit(c), 0, "{c:?} shares a bit");
            acc | bit(c)
        });
        assert_eq!(all, (1 << 17) - 1);
    }

    #[test]
    fn with_failures_replaces_the_defaults() {
        let c = GrpcClassifier::with_failures([Code::Aborted]);
        for code in ALL_CODES {
            let expected = if code == Code::Aborted {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(c.classify_code(code), expected, "{code:?}");
        }
    }

    #[test]
    fn the_last_word_on_a_code_wins() {
        let c = GrpcClassifier::new()
            .ignore(Code::Unavailable)
            .failure(Code::Cancelled)
            .success(Code::Internal);
        assert_eq!(c.classify_code(Code::Unavailable), Outcome::Ignored);
        assert_eq!(c.classify_code(Code::Cancelled), Outcome::Failure);
        assert_eq!(c.classify_code(Code::Internal), Outcome::Success);
        assert_eq!(
            c.failure(Code::Unavailable)
                .classify_code(Code::Unavailable),
            Outcome::Failure
        );
    }

    fn response(status: u16, grpc_status: Option<&str>) -> http::Response<()> {
        let mut b = http::Response::builder().status(status);
        if let Some(g) = grpc_status {
            b = b.header("grpc-status", g);
        }
        b.body(()).expect("valid response")
    }

    #[test]
    fn response_code_reads_the_header_then_the_http_status() {
        assert_eq!(response_code(&response(200, Some("0"))), Some(Code::Ok));
        assert_eq!(
            response_code(&response(200, Some("8"))),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            response_code(&response(200, Some("16"))),
            Some(Code::Unauthenticated)
        );
        // Malformed or out of range: UNKNOWN, never a panic.
        for bad in ["17", "-1", "", "x", "014", "99999999999"] {
            assert_eq!(
                response_code(&response(200, Some(bad))),
                Some(Code::Unknown),
                "{bad:?}"
            );
        }
        // The header wins over the HTTP status.
        assert_eq!(response_code(&response(503, Some("0"))), Some(Code::Ok));
        assert_eq!(response_code(&response(200, None)), None);
        let table = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (418, Code::Unknown),
        ];
        for (http, code) in table {
            assert_eq!(response_code(&response(http, None)), Some(code), "{http}");
        }
    }

    #[test]
    fn http_results_use_the_response_code() {
        let c = GrpcClassifier::new();
        let ok = |r| Ok::<_, &str>(r);
        assert_eq!(c.classify(&ok(response(200, None))), Outcome::Success);
        assert_eq!(c.classify(&ok(response(200, Some("0")))), Outcome::Success);
        assert_eq!(c.classify(&ok(response(200, Some("14")))), Outcome::Failure);
        assert_eq!(c.classify(&ok(response(200, Some("1")))), Outcome::Ignored);
        assert_eq!(c.classify(&ok(response(200, Some("5")))), Outcome::Success);
        assert_eq!(c.classify(&ok(response(503, None))), Outcome::Failure);
        assert_eq!(c.classify(&ok(response(403, None))), Outcome::Success);
        let err: Result<http::Response<()>, &str> = Err("connection refused");
        assert_eq!(c.classify(&err), Outcome::Failure);
    }

    #[test]
    fn debug_names_the_codes() {
        let c = GrpcClassifier::with_failures([Code::Unavailable]).ignore(Code::Cancelled);
        assert_eq!(
            format!("{c:?}"),
            "GrpcClassifier { failures: {Unavailable}, ignored: {Cancelled} }"
        );
    }
}
