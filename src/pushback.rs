//! Server pushback: how long the server asks the client to wait before retrying.
//!
//! The one place that parses `Retry-After` (HTTP) and `grpc-retry-pushback-ms` (gRPC)
//! header values, from the raw bytes of the value (no `http` dependency), so that the
//! HTTP and gRPC retry policies share it. Each parser answers `Ok(wait)` or an
//! [`InvalidPushback`]; the `*_bounded` forms also refuse a wait above a maximum and
//! return `None` for "do not retry", which is what a retry policy wants:
//!
//! - `Retry-After: 120` waits 120 s; `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT` waits
//!   until then, measured from the `now` given (a date in the past means "now").
//! - `grpc-retry-pushback-ms: 250` waits 250 ms; a negative or malformed value means the
//!   server does not want a retry at all.
//!
//! ```
//! use buttress::pushback::{grpc_retry_pushback_bounded, retry_after_bounded};
//! use std::time::{Duration, SystemTime};
//!
//! let max = Duration::from_secs(30);
//! let now = SystemTime::now();
//! assert_eq!(retry_after_bounded(b"7", now, max), Some(Duration::from_secs(7)));
//! assert_eq!(retry_after_bounded(b"3600", now, max), None, "longer than we wait");
//! assert_eq!(grpc_retry_pushback_bounded(b"250", max), Some(Duration::from_millis(250)));
//! assert_eq!(grpc_retry_pushback_bounded(b"-1", max), None, "do not retry");
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

/// A pushback header value that could not be read, or that says "do not retry".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidPushback {
    /// The value is empty (or only whitespace).
    Empty,
    /// The value is negative: gRPC's way of saying "do not retry".
    Negative,
    /// The value is neither a number nor (for `Retry-After`) an HTTP date.
    Malformed,
}

impl fmt::Display for InvalidPushback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidPushback::Empty => "empty pushback value",
            InvalidPushback::Negative => "negative pushback value",
            InvalidPushback::Malformed => "malformed pushback value",
        })
    }
}

impl std::error::Error for InvalidPushback {}

fn trim(value: &[u8]) -> &[u8] {
    // Optional whitespace around a field value (RFC 9110 OWS: space and tab).
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// A run of ASCII digits as a `u64`, saturating at `u64::MAX` (a longer wait than any
/// bound anyway). `None` if empty or anything else than digits.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parses a `Retry-After` value: delta-seconds (`120`) or an HTTP date, relative to
/// `now`. A date at or before `now` is a wait of zero.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Result<Duration, InvalidPushback> {
    let value = trim(value);
    if value.is_empty() {
        return Err(InvalidPushback::Empty);
    }
    if let Some(secs) = digits(value) {
        return Ok(Duration::from_secs(secs));
    }
    if value[0] == b'-' && digits(&value[1..]).is_some() {
        return Err(InvalidPushback::Negative);
    }
    let text = std::str::from_utf8(value).map_err(|_| InvalidPushback::Malformed)?;
    let at = httpdate::parse_http_date(text).map_err(|_| InvalidPushback::Malformed)?;
    Ok(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a `grpc-retry-pushback-ms` value: a non-negative integer of milliseconds.
pub fn parse_grpc_retry_pushback(value: &[u8]) -> Result<Duration, InvalidPushback> {
    let value = trim(value);
    if value.is_empty() {
        return Err(InvalidPushback::Empty);
    }
    if let Some(ms) = digits(value) {
        return Ok(Duration::from_millis(ms));
    }
    if value[0] == b'-' && digits(&value[1..]).is_some() {
        return Err(InvalidPushback::Negative);
    }
    Err(InvalidPushback::Malformed)
}

/// The wait a `Retry-After` value asks for, if it is valid and at most `max`; `None`
/// means do not retry.
pub fn retry_after_bounded(value: &[u8], now: SystemTime, max: Duration) -> Option<Duration> {
    parse_retry_after(value, now).ok().filter(|d| *d <= max)
}

/// The wait a `grpc-retry-pushback-ms` value asks for, if it is valid and at most `max`;
/// `None` means do not retry.
pub fn grpc_retry_pushback_bounded(value: &[u8], max: Duration) -> Option<Duration> {
    parse_grpc_retry_pushback(value).ok().filter(|d| *d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // Sun, 06 Nov 1994 08:49:37 GMT, the example of RFC 9110.
    const RFC_DATE: u64 = 784_111_777;

    #[test]
    fn retry_after_delta_seconds() {
        let now = at(RFC_DATE);
        assert_eq!(parse_retry_after(b"0", now), Ok(Duration::ZERO));
        assert_eq!(parse_retry_after(b"120", now), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after(b" \t42 ", now),
            Ok(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after(b"99999999999999999999999999", now),
            Ok(Duration::from_secs(u64::MAX)),
            "saturates instead of failing or overflowing"
        );
    }

    #[test]
    fn retry_after_http_dates() {
        let now = at(RFC_DATE - 30);
        for date in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(date, now), Ok(Duration::from_secs(30)));
        }
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", at(RFC_DATE + 5)),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_invalid() {
        let now = at(RFC_DATE);
        assert_eq!(parse_retry_after(b"", now), Err(InvalidPushback::Empty));
        assert_eq!(parse_retry_after(b"  ", now), Err(InvalidPushback::Empty));
        assert_eq!(
            parse_retry_after(b"-5", now),
            Err(InvalidPushback::Negative)
        );
        for bad in [
            &b"1.5"[..],
            b"+5",
            b"5s",
            b"soon",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"\xff\xfe",
            b"1 2",
        ] {
            assert_eq!(
                parse_retry_after(bad, now),
                Err(InvalidPushback::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn grpc_pushback() {
        assert_eq!(parse_grpc_retry_pushback(b"0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_grpc_retry_pushback(b"1500"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_grpc_retry_pushback(b" 7 "),
            Ok(Duration::from_millis(7))
        );
        assert_eq!(
            parse_grpc_retry_pushback(b"-1"),
            Err(InvalidPushback::Negative)
        );
        assert_eq!(parse_grpc_retry_pushback(b""), Err(InvalidPushback::Empty));
        for bad in [&b"1.0"[..], b"+1", b"abc", b"1e3", b"-", b"--1", b"0x10"] {
            assert_eq!(
                parse_grpc_retry_pushback(bad),
                Err(InvalidPushback::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_grpc_retry_pushback(b"18446744073709551616000"),
            Ok(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn bounds() {
        let max = Duration::from_secs(10);
        let now = at(RFC_DATE);
        assert_eq!(retry_after_bounded(b"10", now, max), Some(max));
        assert_eq!(retry_after_bounded(b"11", now, max), None);
        assert_eq!(retry_after_bounded(b"-1", now, max), None);
        assert_eq!(retry_after_bounded(b"x", now, max), None);
        assert_eq!(grpc_retry_pushback_bounded(b"10000", max), Some(max));
        assert_eq!(grpc_retry_pushback_bounded(b"10001", max), None);
        assert_eq!(grpc_retry_pushback_bounded(b"-0", max), None);
        assert_eq!(grpc_retry_pushback_bounded(b"oops", max), None);
    }

    #[test]
    fn errors_display_lowercase() {
        assert_eq!(
            InvalidPushback::Negative.to_string(),
            "negative pushback value"
        );
    }
}
