//! The `grpc-timeout` header: how long a client gives a call, sent with the request.

use crate::timeout::{TimeoutFor, TimeoutLayer};
use buttress_core::ConfigError;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use std::fmt;
use std::time::Duration;

/// The request header that carries a gRPC call's deadline.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The most digits a `grpc-timeout` value may have.
const MAX_DIGITS: usize = 8;
/// The largest `grpc-timeout` value.
const MAX_VALUE: u64 = 99_999_999;

/// The units, finest first, with their length in nanoseconds.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60 * 1_000_000_000),
    (b'H', 3_600 * 1_000_000_000),
];

/// A `grpc-timeout` value that is not the gRPC spec's format (1 to 8 digits, then one of
/// the units `H`, `M`, `S`, `m`, `u`, `n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidGrpcTimeout {
    _priv: (),
}

impl fmt::Display for InvalidGrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid grpc-timeout value")
    }
}

impl std::error::Error for InvalidGrpcTimeout {}

const INVALID: InvalidGrpcTimeout = InvalidGrpcTimeout { _priv: () };

/// Parses a `grpc-timeout` value, as the gRPC over HTTP/2 spec defines it: up to 8
/// ASCII digits then a unit, `H` (hours), `M` (minutes), `S` (seconds), `m`
/// (milliseconds), `u` (microseconds) or `n` (nanoseconds). No sign, no spaces.
///
/// ```
/// use buttress::grpc::parse_grpc_timeout;
/// use std::time::Duration;
///
/// assert_eq!(parse_grpc_timeout(b"250m"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(b"3S"), Ok(Duration::from_secs(3)));
/// assert!(parse_grpc_timeout(b"123456789m").is_err()); // nine digits
/// assert!(parse_grpc_timeout(b"1.5S").is_err());
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, InvalidGrpcTimeout> {
    let (&unit, digits) = value.split_last().ok_or(INVALID)?;
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return Err(INVALID);
    }
    // At most 8 digits: the value fits a u64 with room to spare.
    let n = digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    let (_, nanos_per) = UNITS.iter().find(|&&(u, _)| u == unit).ok_or(INVALID)?;
    // 99_999_999 hours is about 3.6e20 ns: past u64 nanoseconds, so multiply in
    // seconds for the coarse units.
    Ok(match *nanos_per {
        n_per if n_per >= 1_000_000_000 => {
            Duration::from_secs(n.saturating_mul(n_per / 1_000_000_000))
        }
        n_per => Duration::from_nanos(n.saturating_mul(n_per)),
    })
}

/// The deadline a request's headers carry: `Ok(None)` when there is no `grpc-timeout`
/// header, an error when there is one that does not parse (a server should then answer
/// `INTERNAL`, or ignore it, rather than guess).
///
/// ```
/// use buttress::grpc::grpc_timeout;
/// use http::HeaderMap;
/// use std::time::Duration;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(grpc_timeout(&headers), Ok(None));
/// headers.insert("grpc-timeout", "20u".parse().unwrap());
/// assert_eq!(grpc_timeout(&headers), Ok(Some(Duration::from_micros(20))));
/// ```
pub fn grpc_timeout(headers: &HeaderMap) -> Result<Option<Duration>, InvalidGrpcTimeout> {
    match headers.get(&GRPC_TIMEOUT) {
        Some(v) => parse_grpc_timeout(v.as_bytes()).map(Some),
        None => Ok(None),
    }
}

/// `timeout` as a `grpc-timeout` value: the finest unit whose count fits in 8 digits.
///
/// The count is rounded down to that unit, so the deadline a client propagates is never
/// later than its own; past the largest value (99,999,999 hours) it saturates.
///
/// ```
/// use buttress::grpc::format_grpc_timeout;
/// use std::time::Duration;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(300)), "300000m");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(86_400 * 365)), "31536000S");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(86_400 * 365 * 4)), "2102400M");
/// ```
pub fn format_grpc_timeout(timeout: Duration) -> HeaderValue {
    let nanos = timeout.as_nanos();
    let (count, unit) = UNITS
        .iter()
        .find_map(|&(unit, per)| {
            let count = nanos / u128::from(per);
            (count <= u128::from(MAX_VALUE)).then_some((count as u64, unit))
        })
        .unwrap_or((MAX_VALUE, b'H'));
    // Up to 8 digits and a unit: written into a stack buffer, no formatting machinery.
    let mut buf = [0u8; MAX_DIGITS + 1];
    let mut len = 0;
    let mut rest = count;
    loop {
        buf[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf[..len].reverse();
    buf[len] = unit;
    HeaderValue::from_bytes(&buf[..=len]).unwrap_or_else(|_| HeaderValue::from_static("0n"))
}

/// Sets the `grpc-timeout` header to `timeout` (see [`format_grpc_timeout`]), replacing
/// any value there was: for a client that propagates what is left of its deadline.
pub fn set_grpc_timeout(headers: &mut HeaderMap, timeout: Duration) {
    headers.insert(GRPC_TIMEOUT, format_grpc_timeout(timeout));
}

/// Bounds a server's work on each call by the call's `grpc-timeout`, and by `max`
/// whatever the client asks: the per-request timeout of
/// [`deadline_timeout`].
///
/// For a request whose `grpc-timeout` is valid, the timeout is the shorter of it less
/// the margin and `max`; without the header, or with a malformed one, it is `max` (never
/// a panic, never unbounded).
///
/// The margin exists because tonic runs a timer of its own for the same `grpc-timeout`
/// around every layer of the server, started a moment earlier: on a tie it fires first
/// and answers `CANCELLED`. So this layer's time runs from the call, as tonic's does
/// (not from the first poll, which a busy server may make milliseconds later; see
/// [`TimeoutFor::counts_from_call`]), and it gives up [`DEFAULT_MARGIN`] earlier, so that it
/// answers with the `DEADLINE_EXCEEDED` the client expects. It reads `http::Request`
/// headers (what a tower layer in a tonic server's stack sees) and `tonic::Request`
/// metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcDeadline {
    max: Duration,
    margin: Duration,
}

/// How much earlier than the client's `grpc-timeout` [`deadline_timeout`] gives up: 5 ms,
/// several ticks of tokio's 1 ms timer.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(5);

impl GrpcDeadline {
    /// The bound for a call whose `grpc-timeout` header is `value` (if any).
    #[inline]
    pub fn bound(&self, value: Option<&HeaderValue>) -> Duration {
        self.bound_bytes(value.map(HeaderValue::as_bytes))
    }

    /// [`bound`](Self::bound) from the header value's bytes, however they are held.
    #[inline]
    fn bound_bytes(&self, value: Option<&[u8]>) -> Duration {
        match value.map(parse_grpc_timeout) {
            Some(Ok(asked)) => asked.saturating_sub(self.margin).min(self.max),
            _ => self.max,
        }
    }

    /// The longest any call may take.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How much earlier than its `grpc-timeout` a call is cut.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

impl<B> TimeoutFor<http::Request<B>> for GrpcDeadline {
    #[inline]
    fn timeout_for(&self, req: &http::Request<B>) -> Option<Duration> {
        Some(self.bound(req.headers().get(&GRPC_TIMEOUT)))
    }

    /// From the call, as tonic's own timer for the same header: a busy server may
    /// first poll the call several milliseconds later, and a time counted from then
    /// would end after tonic's, which answers `CANCELLED`.
    #[inline]
    fn counts_from_call(&self) -> bool {
        true
    }
}

impl<T> TimeoutFor<tonic::Request<T>> for GrpcDeadline {
    #[inline]
    fn timeout_for(&self, req: &tonic::Request<T>) -> Option<Duration> {
        // Read in place: no copy of the value into a `HeaderValue` per call.
        let value = req.metadata().get(GRPC_TIMEOUT.as_str());
        Some(self.bound_bytes(value.map(|v| v.as_encoded_bytes())))
    }

    /// From the call, as for an `http::Request`.
    #[inline]
    fn counts_from_call(&self) -> bool {
        true
    }
}

/// A [`TimeoutLayer`] for a gRPC server: each call may take what its client's
/// `grpc-timeout` allows less [`DEFAULT_MARGIN`], and never more than `max` (greater
/// than zero). When the time is up the handler's future is dropped (its work
/// cancelled) and the call fails with
/// [`Elapsed`](crate::timeout::error::Elapsed), which
/// [`into_status`](super::into_status) turns into `DEADLINE_EXCEEDED`.
///
/// ```
/// use buttress::grpc::deadline_timeout;
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), buttress::BoxError> {
/// let slow = service_fn(|_req: http::Request<()>| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, buttress::BoxError>("done")
/// });
/// let mut server = ServiceBuilder::new()
///     .layer(deadline_timeout(Duration::from_secs(30))?)
///     .service(slow);
///
/// let req = http::Request::builder().header("grpc-timeout", "100m").body(())?;
/// let started = tokio::time::Instant::now();
/// assert!(server.ready().await?.call(req).await.is_err());
/// // 100 ms less the margin, so that tonic's own timer does not answer first.
/// assert_eq!(started.elapsed(), Duration::from_millis(95));
/// # Ok(())
/// # }
/// ```
pub fn deadline_timeout(max: Duration) -> Result<TimeoutLayer<GrpcDeadline>, ConfigError> {
    deadline_timeout_with_margin(max, DEFAULT_MARGIN)
}

/// [`deadline_timeout`] with a margin of your choosing (zero cuts each call exactly at
/// its `grpc-timeout`; outside a tonic server that may be what you want).
pub fn deadline_timeout_with_margin(
    max: Duration,
    margin: Duration,
) -> Result<TimeoutLayer<GrpcDeadline>, ConfigError> {
    if max.is_zero() {
        return Err(ConfigError::new("max", "must be greater than zero"));
    }
    Ok(TimeoutLayer::per_request(GrpcDeadline { max, margin }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_bound_is_the_shorter_of_the_header_and_max() {
        let max = Duration::from_secs(2);
        let d = GrpcDeadline {
            max,
            margin: Duration::ZERO,
        };
        let req = |v: Option<&'static str>| {
            let mut b = http::Request::builder();
            if let Some(v) = v {
                b = b.header("grpc-timeout", v);
            }
            b.body(()).expect("valid")
        };
        let t = |v| d.timeout_for(&req(v));
        assert_eq!(t(Some("100m")), Some(Duration::from_millis(100)));
        assert_eq!(t(Some("1H")), Some(max));
        assert_eq!(t(Some("0n")), Some(Duration::ZERO));
        assert_eq!(t(None), Some(max));
        for bad in ["100", "-1S", "1.5S", "123456789m", "soon"] {
            assert_eq!(t(Some(bad)), Some(max), "{bad}");
        }
        let mut tonic_req = tonic::Request::new(());
        assert_eq!(d.timeout_for(&tonic_req), Some(max));
        tonic_req
            .metadata_mut()
            .insert("grpc-timeout", "250m".parse().expect("ascii"));
        assert_eq!(d.timeout_for(&tonic_req), Some(Duration::from_millis(250)));
        assert_eq!(deadline_timeout(Duration::ZERO).unwrap_err().field(), "max");
    }

    #[test]
    fn parses_every_unit() {
        let cases: [(&[u8], Duration); 8] = [
            (b"1H", Duration::from_secs(3600)),
            (b"2M", Duration::from_secs(120)),
            (b"3S", Duration::from_secs(3)),
            (b"4m", Duration::from_millis(4)),
            (b"5u", Duration::from_micros(5)),
            (b"6n", Duration::from_nanos(6)),
            (b"0S", Duration::ZERO),
            (b"00000010m", Duration::from_millis(10)),
        ];
        for (v, d) in cases {
            assert_eq!(
                parse_grpc_timeout(v),
                Ok(d),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn the_largest_values_do_not_overflow() {
        assert_eq!(
            parse_grpc_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(
            parse_grpc_timeout(b"99999999n"),
            Ok(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let bad: [&[u8]; 16] = [
            b"",
            b"S",
            b"5",
            b"123456789S",
            b"-1S",
            b"+1S",
            b"1s",
            b"1h",
            b"1 S",
            b" 1S",
            b"1S ",
            b"1.0S",
            b"1SS",
            b"0x1S",
            "１S".as_bytes(),
            b"\xff\xffS",
        ];
        for v in bad {
            assert_eq!(
                parse_grpc_timeout(v),
                Err(INVALID),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn formats_with_the_finest_unit_that_fits() {
        let cases = [
            (Duration::ZERO, "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_999), "100000u"), // rounded down
            (Duration::from_secs(1), "1000000u"),
            (Duration::from_secs(100), "100000m"),
            (Duration::from_secs(100_000), "100000S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::from_secs(6_000_000_000), "1666666H"),
            (Duration::from_secs(99_999_999 * 3600), "99999999H"),
            (Duration::MAX, "99999999H"),
        ];
        for (d, s) in cases {
            assert_eq!(format_grpc_timeout(d), s, "{d:?}");
        }
    }

    #[test]
    fn formatting_then_parsing_never_lengthens_a_deadline() {
        let mut d = Duration::from_nanos(1);
        while d < Duration::from_secs(10_000_000_000) {
            let back = parse_grpc_timeout(format_grpc_timeout(d).as_bytes()).expect("parses");
            assert!(back <= d, "{d:?} came back as {back:?}");
            // The finest unit that fits keeps a count of at least 10^5: little is lost.
            assert!(d - back <= d / 100_000, "{d:?} came back as {back:?}");
            d = d * 3 + Duration::from_nanos(7);
        }
    }

    #[test]
    fn header_map_round_trip() {
        let mut headers = HeaderMap::new();
        set_grpc_timeout(&mut headers, Duration::from_millis(1500));
        set_grpc_timeout(&mut headers, Duration::from_millis(750));
        assert_eq!(headers.get_all(&GRPC_TIMEOUT).iter().count(), 1);
        assert_eq!(grpc_timeout(&headers), Ok(Some(Duration::from_millis(750))));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(grpc_timeout(&headers), Err(INVALID));
    }

    /// The spec's grammar, read the simplest way: the reference model for the parser.
    fn reference(value: &[u8]) -> Option<u128> {
        let s = std::str::from_utf8(value).ok()?;
        let unit = s.chars().last()?;
        let digits = &s[..s.len() - unit.len_utf8()];
        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: u128 = digits.parse().ok()?;
        let per: u128 = match unit {
            'H' => 3_600_000_000_000,
            'M' => 60_000_000_000,
            'S' => 1_000_000_000,
            'm' => 1_000_000,
            'u' => 1_000,
            'n' => 1,
            _ => return None,
        };
        Some(n * per)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        #[test]
        fn parser_agrees_with_the_grammar_on_any_bytes(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)
        ) {
            let got = parse_grpc_timeout(&value).ok().map(|d| d.as_nanos());
            proptest::prop_assert_eq!(got, reference(&value));
        }

        #[test]
        fn parser_agrees_with_the_grammar_on_near_misses(
            value in "[0-9+\\- .]{0,10}[HMSmunhs]?"
        ) {
            let got = parse_grpc_timeout(value.as_bytes()).ok().map(|d| d.as_nanos());
            proptest::prop_assert_eq!(got, reference(value.as_bytes()));
        }

        #[test]
        fn formatted_values_parse_back_no_later(nanos in proptest::prelude::any::<u64>(), secs in 0u64..=u64::MAX) {
            for d in [Duration::from_nanos(nanos), Duration::from_secs(secs)] {
                let v = format_grpc_timeout(d);
                proptest::prop_assert!(v.len() <= 9);
                let back = parse_grpc_timeout(v.as_bytes()).expect("formatted values parse");
                let max = Duration::from_secs(99_999_999 * 3600);
                proptest::prop_assert!(back <= d.min(max));
                proptest::prop_assert!(d.min(max) - back <= d.min(max) / 100_000);
            }
        }
    }
}
