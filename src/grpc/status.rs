//! Turning errors, buttress rejections first, into `tonic::Status`, and reading the
//! server's retry pushback back out of one.

use crate::error::{BoxError, RejectionKind, rejection};
use std::error::Error;
use std::time::Duration;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// The metadata key a server uses to tell a client when to retry, in milliseconds
/// (gRPC's retry design, A6).
pub const RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// The largest pushback written, in milliseconds: gRPC's retry design (A6) reads the
/// value as a signed 32-bit integer, so anything above `i32::MAX` (about 24.8 days)
/// would be malformed to a peer. `Retry-After` is capped at the same span (see
/// `crate::http::ErrorResponse`).
const MAX_PUSHBACK_MS: u64 = i32::MAX as u64;

/// The gRPC code a rejection maps to.
///
/// | rejection | code |
/// |---|---|
/// | [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) | `UNAVAILABLE` |
/// | [`BudgetExhausted`](crate::retry::error::BudgetExhausted) | `UNAVAILABLE` |
/// | [`BulkheadFull`](crate::bulkhead::error::BulkheadFull) | `RESOURCE_EXHAUSTED` |
/// | [`RateLimited`](crate::rate_limit::error::RateLimited) | `RESOURCE_EXHAUSTED` |
/// | [`Elapsed`](crate::timeout::error::Elapsed) | `DEADLINE_EXCEEDED` |
/// | [`DeadlinePassed`](crate::timeout::error::DeadlinePassed) | `DEADLINE_EXCEEDED` |
pub fn rejection_code(kind: RejectionKind) -> Code {
    match kind {
        RejectionKind::CircuitOpen | RejectionKind::BudgetExhausted => Code::Unavailable,
        RejectionKind::BulkheadFull | RejectionKind::RateLimited => Code::ResourceExhausted,
        RejectionKind::Elapsed | RejectionKind::DeadlinePassed => Code::DeadlineExceeded,
    }
}

/// The [`Status`] for an error of a buttress stack.
///
/// - A buttress rejection anywhere in the [`source`](Error::source) chain becomes its
///   code (see [`rejection_code`]) with its message (`"circuit open"`, ...) and, where its
///   `retry_after` is known, `grpc-retry-pushback-ms` metadata (milliseconds, rounded up,
///   at most `2147483647`: see [`set_retry_pushback`]).
/// - A `Status` anywhere in the chain is passed on as it is.
/// - Any other error becomes `INTERNAL` with the message `"internal error"`: nothing of
///   the error's own message reaches the client.
///
/// ```
/// use buttress::grpc::status_from_error;
/// use buttress::circuit_breaker::error::CircuitOpen;
/// use std::time::Duration;
/// use tonic::Code;
///
/// let status = status_from_error(&CircuitOpen::new(Some(Duration::from_millis(2500))));
/// assert_eq!(status.code(), Code::Unavailable);
/// assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "2500");
/// ```
pub fn status_from_error(err: &(dyn Error + 'static)) -> Status {
    if let Some(r) = rejection(err) {
        let mut status = Status::new(rejection_code(r.kind()), r.to_string());
        if let Some(after) = r.retry_after() {
            set_retry_pushback(status.metadata_mut(), after);
        }
        return status;
    }
    crate::error::chain(err)
        .find_map(|e| e.downcast_ref::<Status>())
        .map_or_else(|| Status::internal("internal error"), Status::clone)
}

/// [`status_from_error`] for an owned [`BoxError`]: the function for a
/// `tower::util::MapErrLayer` in a tonic server's stack, so that every rejection reaches
/// the client as a `Status` rather than a reset stream.
///
/// A boxed `Status` is unboxed without a copy.
pub fn into_status(err: BoxError) -> Status {
    match err.downcast::<Status>() {
        Ok(status) => *status,
        Err(err) => status_from_error(&*err),
    }
}

/// Sets `grpc-retry-pushback-ms` to `after` in whole milliseconds, rounded up, replacing
/// any value there was.
///
/// The value is capped at `2147483647` (`i32::MAX` milliseconds, about 24.8 days): gRPC's
/// retry design (A6) reads the pushback as a signed 32-bit integer, so a larger value
/// would be malformed to a peer. A longer `after` is sent as the cap rather than left
/// out: a circuit breaker whose open wait never ends (`wait_in_open(Duration::MAX)`)
/// rejects with a `retry_after` of centuries, and the cap tells the client "not for
/// weeks", where no pushback at all would let it retry on its own schedule.
///
/// ```
/// use buttress::grpc::{set_retry_pushback, RETRY_PUSHBACK_MS};
/// use std::time::Duration;
/// use tonic::metadata::MetadataMap;
///
/// let mut md = MetadataMap::new();
/// set_retry_pushback(&mut md, Duration::from_micros(2_500_001));
/// assert_eq!(md.get(RETRY_PUSHBACK_MS).unwrap(), "2501");
/// set_retry_pushback(&mut md, Duration::MAX);
/// assert_eq!(md.get(RETRY_PUSHBACK_MS).unwrap(), "2147483647");
/// ```
pub fn set_retry_pushback(metadata: &mut MetadataMap, after: Duration) {
    metadata.insert(RETRY_PUSHBACK_MS, MetadataValue::from(pushback_ms(after)));
}

/// `after` in whole milliseconds, rounded up, at most [`MAX_PUSHBACK_MS`].
fn pushback_ms(after: Duration) -> u64 {
    let ms = after.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).map_or(MAX_PUSHBACK_MS, |ms| ms.min(MAX_PUSHBACK_MS))
}

/// What a server asked of a client's retries through `grpc-retry-pushback-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// Retry, but not before this long.
    RetryAfter(Duration),
    /// Do not retry: the value was negative or malformed, which gRPC's retry design
    /// reads as the server asking the client not to retry at all.
    DoNotRetry,
}

impl Pushback {
    /// The pushback in `metadata`, or `None` if there is none.
    ///
    /// ```
    /// use buttress::grpc::Pushback;
    /// use std::time::Duration;
    /// use tonic::metadata::MetadataMap;
    ///
    /// let mut md = MetadataMap::new();
    /// assert_eq!(Pushback::from_metadata(&md), None);
    /// md.insert("grpc-retry-pushback-ms", "150".parse().unwrap());
    /// assert_eq!(Pushback::from_metadata(&md), Some(Pushback::RetryAfter(Duration::from_millis(150))));
    /// md.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
    /// assert_eq!(Pushback::from_metadata(&md), Some(Pushback::DoNotRetry));
    /// ```
    pub fn from_metadata(metadata: &MetadataMap) -> Option<Pushback> {
        let value = metadata.get(RETRY_PUSHBACK_MS)?;
        Some(parse_pushback(value.as_encoded_bytes()))
    }

    /// The pushback a [`Status`] carries, or `None` if it carries none.
    pub fn from_status(status: &Status) -> Option<Pushback> {
        Pushback::from_metadata(status.metadata())
    }

    /// The pushback in the headers of a trailers-only response (where a server puts an
    /// error's metadata when it sends no message), or `None` if there is none.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Pushback> {
        let value = headers.get(RETRY_PUSHBACK_MS)?;
        Some(parse_pushback(value.as_bytes()))
    }
}

/// A non-negative decimal integer of milliseconds (read by [`crate::pushback`], the one
/// parser the retry policies share); anything else means do not retry.
fn parse_pushback(bytes: &[u8]) -> Pushback {
    match crate::pushback::parse_grpc_retry_pushback(bytes) {
        Ok(after) => Pushback::RetryAfter(after),
        Err(_) => Pushback::DoNotRetry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulkhead::error::BulkheadFull;
    use crate::circuit_breaker::error::CircuitOpen;
    use crate::rate_limit::error::RateLimited;
    use crate::retry::error::BudgetExhausted;
    use crate::timeout::error::Elapsed;
    use std::fmt;

    fn pushback_of(s: &Status) -> Option<&str> {
        s.metadata()
            .get(RETRY_PUSHBACK_MS)
            .map(|v| v.to_str().expect("ascii"))
    }

    #[test]
    fn every_rejection_maps_to_its_code_and_message() {
        let cases: Vec<(BoxError, Code, &str, Option<&str>)> = vec![
            (
                Box::new(CircuitOpen::new(Some(Duration::from_secs(3)))),
                Code::Unavailable,
                "circuit open",
                Some("3000"),
            ),
            (
                Box::new(CircuitOpen::new(None)),
                Code::Unavailable,
                "circuit open",
                None,
            ),
            (
                Box::new(BulkheadFull::new()),
                Code::ResourceExhausted,
                "bulkhead full",
                None,
            ),
            (
                Box::new(RateLimited::new(Duration::from_micros(1500))),
                Code::ResourceExhausted,
                "rate limited",
                Some("2"),
            ),
            (
                Box::new(Elapsed::new()),
                Code::DeadlineExceeded,
                "request timed out",
                None,
            ),
            (
                Box::new(BudgetExhausted::new()),
                Code::Unavailable,
                "retry budget exhausted",
                None,
            ),
        ];
        for (err, code, message, pushback) in cases {
            let s = status_from_error(&*err);
            assert_eq!(s.code(), code, "{err}");
            assert_eq!(s.message(), message);
            assert_eq!(pushback_of(&s), pushback, "{err}");
            let owned = into_status(err);
            assert_eq!(owned.code(), code);
            assert_eq!(pushback_of(&owned), pushback);
        }
    }

    #[derive(Debug)]
    struct Wrapped(BoxError);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "upstream 10.1.2.3 said: {}", self.0)
        }
    }
    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn rejections_and_statuses_are_found_through_sources() {
        let err: BoxError = Box::new(Wrapped(Box::new(RateLimited::new(Duration::from_millis(
            40,
        )))));
        let s = into_status(err);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(pushback_of(&s), Some("40"));

        let err: BoxError = Box::new(Wrapped(Box::new(Status::not_found("no such key"))));
        let s = into_status(err);
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "no such key");
    }

    #[test]
    fn a_boxed_status_passes_through() {
        let mut original = Status::aborted("conflict");
        original
            .metadata_mut()
            .insert("x-trace", "abc".parse().expect("ascii"));
        let s = into_status(Box::new(original));
        assert_eq!(s.code(), Code::Aborted);
        assert_eq!(s.message(), "conflict");
        assert_eq!(s.metadata().get("x-trace").expect("kept"), "abc");
    }

    #[test]
    fn other_errors_become_internal_and_leak_nothing() {
        let err: BoxError = "password rejected for db at 10.0.0.7".into();
        let s = into_status(err);
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "internal error");
        assert!(s.metadata().is_empty());
    }

    #[test]
    fn pushback_rounds_up_to_whole_milliseconds_and_is_capped_at_i32_max() {
        let mut md = MetadataMap::new();
        let max = Duration::from_millis(i32::MAX as u64);
        for (after, expect) in [
            (Duration::ZERO, "0"),
            (Duration::from_nanos(1), "1"),
            (Duration::from_millis(7), "7"),
            (Duration::from_nanos(7_000_001), "8"),
            (max - Duration::from_millis(1), "2147483646"),
            (max - Duration::from_nanos(999_999), "2147483647"),
            (max, "2147483647"),
            (max + Duration::from_nanos(1), "2147483647"),
            (Duration::from_secs(u64::MAX), "2147483647"),
            (Duration::MAX, "2147483647"),
        ] {
            set_retry_pushback(&mut md, after);
            assert_eq!(md.get(RETRY_PUSHBACK_MS).expect("set"), expect);
            assert_eq!(md.len(), 1, "replaced, not appended");
        }
    }

    #[test]
    fn pushback_parsing() {
        let ok = |ms| Pushback::RetryAfter(Duration::from_millis(ms));
        assert_eq!(parse_pushback(b"0"), ok(0));
        assert_eq!(parse_pushback(b"250"), ok(250));
        assert_eq!(parse_pushback(b"00250"), ok(250));
        assert_eq!(parse_pushback(b"99999999999999999999999"), ok(u64::MAX));
        // Whitespace around a field value is not part of it (RFC 9110 OWS).
        assert_eq!(parse_pushback(b" 5\t"), ok(5));
        for bad in [
            &b""[..],
            b"-1",
            b"-0",
            b"+5",
            b"1.5",
            b"5ms",
            b"abc",
            b"5 5",
        ] {
            assert_eq!(parse_pushback(bad), Pushback::DoNotRetry, "{bad:?}");
        }
    }

    #[test]
    fn pushback_round_trips_through_a_status() {
        let s = status_from_error(&RateLimited::new(Duration::from_millis(1234)));
        assert_eq!(
            Pushback::from_status(&s),
            Some(Pushback::RetryAfter(Duration::from_millis(1234)))
        );
        assert_eq!(Pushback::from_status(&Status::unavailable("x")), None);
    }
}
