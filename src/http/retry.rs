//! The retry policy for HTTP clients: which responses and errors are sent again, and
//! when.

use super::{BufferRequestBodyLayer, ReplayBody, ReplayPolicy};
use crate::error::BoxError;
use crate::retry::{CloneRequest, Decision, DefaultPolicy, Policy, RetryLayer, RetryLayerBuilder};
use buttress_core::ConfigError;
use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use std::fmt;
use std::time::SystemTime;
use tower_layer::Stack;

/// The lowest status code a [`HttpRetryPolicy`] can retry.
const FIRST: u16 = 400;
/// The highest status code a [`HttpRetryPolicy`] can retry.
const LAST: u16 = 599;

/// A set of `4xx` and `5xx` status codes: bit `code - 400` (32 bytes, copied into every
/// retry future with the policy).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct ErrorStatuses([u64; 4]);

impl ErrorStatuses {
    /// `(word, bit)` of `code`, if it is a `4xx` or `5xx`.
    #[inline]
    fn slot(code: u16) -> Option<(usize, u64)> {
        if !(FIRST..=LAST).contains(&code) {
            return None;
        }
        let i = usize::from(code - FIRST);
        Some((i >> 6, 1u64 << (i & 63)))
    }

    #[inline]
    fn contains(&self, code: StatusCode) -> bool {
        Self::slot(code.as_u16()).is_some_and(|(i, bit)| self.0[i] & bit != 0)
    }

    fn insert(&mut self, code: StatusCode) -> Result<(), ConfigError> {
        let (i, bit) = Self::slot(code.as_u16()).ok_or_else(|| {
            ConfigError::new(
                "statuses",
                format!("{code} is not an error status (only 4xx and 5xx can be retried)"),
            )
        })?;
        self.0[i] |= bit;
        Ok(())
    }

    fn remove(&mut self, code: StatusCode) {
        if let Some((i, bit)) = Self::slot(code.as_u16()) {
            self.0[i] &= !bit;
        }
    }

    fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (FIRST..=LAST)
            .filter(|&c| self.0[usize::from(c - FIRST) >> 6] & (1u64 << ((c - FIRST) & 63)) != 0)
    }
}

/// Retries HTTP requests: `500`, `502`, `503`, `504` and `429` responses and connection
/// errors, of idempotent requests, after the wait a `Retry-After` asks for.
///
/// A [`Policy`] for `http::Request<B>` -> `http::Response<R>`, and (through its
/// [`ReplayPolicy`]) the [`CloneRequest`] that copies a `Request<`[`ReplayBody<B>`]`>`
/// for the next attempt:
///
/// - **Responses**: a status in the set (by default `500`, `502`, `503`, `504`, `429`;
///   change it with [`with_statuses`](Self::with_statuses),
///   [`retry_status`](Self::retry_status) and [`no_retry_status`](Self::no_retry_status))
///   is retried; any other status is returned.
/// - **`Retry-After`** on such a response, delta-seconds or an HTTP date (parsed by
///   [`crate::pushback`]), sets the wait: the policy answers
///   [`Decision::RetryAfter`], and the retry layer does not wait longer than its
///   `max_wait`, it returns the response instead. A negative or malformed value means
///   do not retry. Without `Retry-After` the wait is the layer's backoff.
/// - **Errors** (no response: a refused or reset connection, an inner timeout) follow
///   [`DefaultPolicy::decide_error`]: retried with backoff, except buttress rejections,
///   which are retried only after their `retry_after`, or not at all.
/// - **Which requests**: only those its [`ReplayPolicy`] allows (by default idempotent
///   methods: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`), and, as the request
///   copier, only those whose body was buffered: a `POST` or a large streaming body is
///   sent once, and its response or error returned as it is.
///
/// [`retry_layer`](Self::retry_layer) assembles the whole client side in one call:
/// [`BufferRequestBodyLayer`] outside a [`RetryLayer`] with this policy.
///
/// ```
/// use buttress::http::HttpRetryPolicy;
/// use buttress::retry::{Decision, Policy};
/// use http::{Request, Response, StatusCode};
/// use std::time::Duration;
///
/// let policy = HttpRetryPolicy::new().no_retry_status(StatusCode::NOT_IMPLEMENTED);
/// let get = Request::get("/items").body(()).unwrap();
/// let res = |code: u16, retry_after: Option<&str>| {
///     let mut b = Response::builder().status(code);
///     if let Some(v) = retry_after {
///         b = b.header("retry-after", v);
///     }
///     Ok(b.body(()).unwrap())
/// };
/// assert_eq!(policy.decide(&get, &res(503, None)), Decision::Retry);
/// assert_eq!(
///     policy.decide(&get, &res(429, Some("3"))),
///     Decision::RetryAfter(Duration::from_secs(3))
/// );
/// assert_eq!(policy.decide(&get, &res(503, Some("soon"))), Decision::Return);
/// assert_eq!(policy.decide(&get, &res(404, None)), Decision::Return);
///
/// let post = Request::post("/items").body(()).unwrap();
/// assert_eq!(policy.decide(&post, &res(503, None)), Decision::Return);
/// ```
#[derive(Clone, Copy)]
pub struct HttpRetryPolicy {
    statuses: ErrorStatuses,
    replay: ReplayPolicy,
}

/// The statuses retried by default.
const DEFAULT_STATUSES: [StatusCode; 5] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
    StatusCode::TOO_MANY_REQUESTS,
];

/// What [`HttpRetryPolicy::retry_layer`] makes: request bodies buffered (outside), then
/// the retry with the HTTP policy.
pub type HttpRetryLayer<L = crate::retry::NoListener> =
    Stack<RetryLayer<HttpRetryPolicy, ReplayPolicy, L>, BufferRequestBodyLayer>;

impl HttpRetryPolicy {
    /// Retries `500`, `502`, `503`, `504` and `429`, and errors, of idempotent requests.
    pub fn new() -> Self {
        let mut statuses = ErrorStatuses::default();
        for code in DEFAULT_STATUSES {
            // Every default is a 4xx or 5xx.
            let _ = statuses.insert(code);
        }
        HttpRetryPolicy {
            statuses,
            replay: ReplayPolicy::new(),
        }
    }

    /// Retries exactly the responses with these statuses (and errors), in place of the
    /// default set. Only `4xx` and `5xx` can be retried: another code is refused,
    /// naming the field `statuses`.
    pub fn with_statuses<I>(codes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = StatusCode>,
    {
        let mut statuses = ErrorStatuses::default();
        for code in codes {
            statuses.insert(code)?;
        }
        Ok(HttpRetryPolicy {
            statuses,
            replay: ReplayPolicy::new(),
        })
    }

    /// Retries responses with `code` too (a `4xx` or `5xx`; another code is refused,
    /// naming the field `statuses`).
    pub fn retry_status(mut self, code: StatusCode) -> Result<Self, ConfigError> {
        self.statuses.insert(code)?;
        Ok(self)
    }

    /// Returns responses with `code` rather than retrying them.
    pub fn no_retry_status(mut self, code: StatusCode) -> Self {
        self.statuses.remove(code);
        self
    }

    /// Which requests may be sent again (default [`ReplayPolicy::new`]: idempotent
    /// methods).
    pub fn replay(mut self, replay: ReplayPolicy) -> Self {
        self.replay = replay;
        self
    }

    /// The rule for which requests may be sent again; also the request copier to give
    /// the retry layer ([`RetryLayerBuilder::clone_request`]).
    pub fn replay_policy(&self) -> ReplayPolicy {
        self.replay
    }

    /// Whether a response with `code` is retried.
    pub fn retries_status(&self, code: StatusCode) -> bool {
        self.statuses.contains(code)
    }

    /// The verdict on a response, whatever the request: [`Decision::Return`] unless its
    /// status is retried; then the wait its `Retry-After` asks for, or the backoff
    /// without one, or [`Decision::Return`] if `Retry-After` is negative or malformed.
    pub fn decide_response<R>(&self, res: &Response<R>) -> Decision {
        if !self.statuses.contains(res.status()) {
            return Decision::Return;
        }
        match res.headers().get(RETRY_AFTER) {
            None => Decision::Retry,
            // The wall clock is read only for a value that is a date; the retry layer
            // bounds the wait by its `max_wait`.
            Some(v) => match crate::pushback::parse_retry_after(v.as_bytes(), wall_now(v)) {
                Ok(wait) => Decision::RetryAfter(wait),
                Err(_) => Decision::Return,
            },
        }
    }

    /// The retry layer of `retry`'s settings with this policy and its request copier,
    /// behind a [`BufferRequestBodyLayer`] with its defaults (bodies up to 64 KiB
    /// buffered): the one layer an HTTP client needs for retries. Any policy or copier
    /// already set on `retry` is replaced.
    ///
    /// ```
    /// use buttress::http::HttpRetryPolicy;
    /// use buttress::retry::RetryLayer;
    /// use std::time::Duration;
    /// # fn main() -> Result<(), buttress::ConfigError> {
    /// let retry = HttpRetryPolicy::new()
    ///     .retry_layer(RetryLayer::builder().max_attempts(4).max_wait(Duration::from_secs(10)))?;
    /// # let _ = retry;
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_layer<P, C, L>(
        self,
        retry: RetryLayerBuilder<P, C, L>,
    ) -> Result<HttpRetryLayer<L>, ConfigError> {
        self.retry_layer_with_buffer(retry, BufferRequestBodyLayer::new())
    }

    /// [`retry_layer`](Self::retry_layer) with its own [`BufferRequestBodyLayer`] (a
    /// different `max_bytes`, say).
    pub fn retry_layer_with_buffer<P, C, L>(
        self,
        retry: RetryLayerBuilder<P, C, L>,
        buffer: BufferRequestBodyLayer,
    ) -> Result<HttpRetryLayer<L>, ConfigError> {
        let retry = retry.policy(self).clone_request(self.replay).build()?;
        Ok(Stack::new(retry, buffer))
    }
}

/// The wall clock, read only when `value` is not plain delta-seconds (an HTTP date is
/// measured from it).
#[inline]
fn wall_now(value: &http::HeaderValue) -> SystemTime {
    let bytes = value.as_bytes();
    if bytes.iter().any(|b| b.is_ascii_alphabetic()) {
        SystemTime::now()
    } else {
        SystemTime::UNIX_EPOCH
    }
}

impl Default for HttpRetryPolicy {
    fn default() -> Self {
        HttpRetryPolicy::new()
    }
}

impl fmt::Debug for HttpRetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Codes<'a>(&'a ErrorStatuses);
        impl fmt::Debug for Codes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.0.codes()).finish()
            }
        }
        f.debug_struct("HttpRetryPolicy")
            .field("statuses", &Codes(&self.statuses))
            .field("replay", &self.replay)
            .finish()
    }
}

impl<B, R> Policy<Request<B>, Response<R>> for HttpRetryPolicy {
    #[inline]
    fn decide(&self, req: &Request<B>, result: &Result<Response<R>, BoxError>) -> Decision {
        if !self.replay.allows(req) {
            return Decision::Return;
        }
        match result {
            Ok(res) => self.decide_response(res),
            Err(e) => DefaultPolicy::decide_error(e),
        }
    }
}

/// Copies a request whose method the rule allows and whose body is buffered
/// ([`ReplayPolicy::clone_request`]); any other request is sent once.
impl<B> CloneRequest<Request<ReplayBody<B>>> for ReplayPolicy {
    #[inline]
    fn clone_request(&self, req: &Request<ReplayBody<B>>) -> Option<Request<ReplayBody<B>>> {
        ReplayPolicy::clone_request(self, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::error::CircuitOpen;
    use std::time::Duration;

    fn res(code: u16, retry_after: Option<&str>) -> Result<Response<()>, BoxError> {
        let mut b = Response::builder().status(code);
        if let Some(v) = retry_after {
            b = b.header(RETRY_AFTER, v);
        }
        Ok(b.body(()).expect("valid response"))
    }

    fn get() -> Request<()> {
        Request::get("/").body(()).expect("valid request")
    }

    #[test]
    fn default_statuses() {
        let p = HttpRetryPolicy::new();
        for code in 100..=999u16 {
            let expected = if matches!(code, 500 | 502 | 503 | 504 | 429) {
                Decision::Retry
            } else {
                Decision::Return
            };
            assert_eq!(p.decide(&get(), &res(code, None)), expected, "{code}");
        }
    }

    #[test]
    fn configured_statuses() {
        let p = HttpRetryPolicy::with_statuses([StatusCode::REQUEST_TIMEOUT])
            .expect("a 4xx")
            .retry_status(StatusCode::from_u16(599).expect("valid"))
            .expect("a 5xx")
            .no_retry_status(StatusCode::REQUEST_TIMEOUT)
            .no_retry_status(StatusCode::OK);
        assert!(!p.retries_status(StatusCode::REQUEST_TIMEOUT));
        assert!(p.retries_status(StatusCode::from_u16(599).expect("valid")));
        assert!(!p.retries_status(StatusCode::SERVICE_UNAVAILABLE));
        for bad in [StatusCode::OK, StatusCode::FOUND, StatusCode::CONTINUE] {
            assert_eq!(
                HttpRetryPolicy::new()
                    .retry_status(bad)
                    .unwrap_err()
                    .field(),
                "statuses"
            );
        }
        let odd = StatusCode::from_u16(600).expect("valid");
        assert!(HttpRetryPolicy::with_statuses([odd]).is_err());
        assert_eq!(
            format!("{:?}", HttpRetryPolicy::new()),
            "HttpRetryPolicy { statuses: {429, 500, 502, 503, 504}, replay: ReplayPolicy { idempotency_key: false, .. } }"
        );
    }

    #[test]
    fn retry_after_values() {
        let p = HttpRetryPolicy::new();
        let d = |v| p.decide(&get(), &res(503, Some(v)));
        assert_eq!(d("0"), Decision::RetryAfter(Duration::ZERO));
        assert_eq!(d("2"), Decision::RetryAfter(Duration::from_secs(2)));
        assert_eq!(d("-2"), Decision::Return);
        assert_eq!(d("2.5"), Decision::Return);
        assert_eq!(d(""), Decision::Return);
        assert_eq!(
            d("Sun, 06 Nov 1994 08:49:37 GMT"),
            Decision::RetryAfter(Duration::ZERO)
        );
        // A date in the future: the wait runs from the wall clock, which
        // `decide_response` reads itself (there is no `now` to pass), so the test
        // brackets that read between two of its own. The date is whole seconds (all an
        // HTTP date holds), so its text is exactly `later`, and the wait is exactly
        // `later - t` for the `t` read inside: at most `later - before`, at least
        // `later - after`.
        let before = SystemTime::now();
        let whole = before
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(whole + 100);
        let decision = d(&httpdate::fmt_http_date(later));
        let after = SystemTime::now();
        let longest = later.duration_since(before).expect("later is after before");
        let shortest = later.duration_since(after).unwrap_or(Duration::ZERO);
        match decision {
            Decision::RetryAfter(w) => {
                assert!(
                    shortest <= w && w <= longest,
                    "{shortest:?} <= {w:?} <= {longest:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Retry-After on a status that is not retried changes nothing.
        assert_eq!(p.decide(&get(), &res(400, Some("1"))), Decision::Return);
    }

    #[test]
    fn errors_fall_back_to_the_default_policy() {
        let p = HttpRetryPolicy::new();
        let err = |e: BoxError| p.decide(&get(), &Err::<Response<()>, _>(e));
        assert_eq!(err("connection refused".into()), Decision::Retry);
        assert_eq!(err(Box::new(CircuitOpen::new(None))), Decision::Return);
        assert_eq!(
            err(Box::new(CircuitOpen::new(Some(Duration::from_secs(1))))),
            Decision::RetryAfter(Duration::from_secs(1))
        );
    }

    #[test]
    fn only_requests_the_replay_policy_allows() {
        let p = HttpRetryPolicy::new();
        let post = Request::post("/").body(()).expect("valid");
        assert_eq!(p.decide(&post, &res(503, None)), Decision::Return);
        assert_eq!(
            p.decide(&post, &Err::<Response<()>, BoxError>("reset".into())),
            Decision::Return
        );
        let p = p.replay(ReplayPolicy::methods(|_| true));
        assert_eq!(p.decide(&post, &res(503, None)), Decision::Retry);
    }

    #[test]
    fn the_copier_copies_buffered_idempotent_requests_only() {
        let cloner = HttpRetryPolicy::new().replay_policy();
        let req = |m: http::Method, body: ReplayBody<http_body_util::Empty<bytes::Bytes>>| {
            let mut r = Request::new(body);
            *r.method_mut() = m;
            r
        };
        let copy = |r: &Request<ReplayBody<_>>| CloneRequest::clone_request(&cloner, r);
        assert!(copy(&req(http::Method::PUT, ReplayBody::from_bytes("x"))).is_some());
        assert!(copy(&req(http::Method::POST, ReplayBody::from_bytes("x"))).is_none());
        assert!(
            copy(&req(
                http::Method::PUT,
                ReplayBody::streaming(http_body_util::Empty::new())
            ))
            .is_none()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// The bit set agrees with a plain set of codes under any sequence of changes,
        /// and the verdict on a response follows the set.
        #[test]
        fn status_set_agrees_with_a_reference_set(
            ops in proptest::collection::vec((proptest::prelude::any::<bool>(), 100u16..=999), 0..40),
            probe in 100u16..=999,
        ) {
            let mut policy = HttpRetryPolicy::with_statuses([]).expect("empty is valid");
            let mut model = std::collections::BTreeSet::new();
            for (add, code) in ops {
                let code = StatusCode::from_u16(code).expect("in range");
                if add {
                    match policy.retry_status(code) {
                        Ok(p) => {
                            policy = p;
                            proptest::prop_assert!((400..=599).contains(&code.as_u16()));
                            model.insert(code.as_u16());
                        }
                        Err(_) => proptest::prop_assert!(!(400..=599).contains(&code.as_u16())),
                    }
                } else {
                    policy = policy.no_retry_status(code);
                    model.remove(&code.as_u16());
                }
            }
            let code = StatusCode::from_u16(probe).expect("in range");
            proptest::prop_assert_eq!(policy.retries_status(code), model.contains(&probe));
            let expected = if model.contains(&probe) { Decision::Retry } else { Decision::Return };
            proptest::prop_assert_eq!(policy.decide(&get(), &res(probe, None)), expected);
            let listed: Vec<u16> = policy.statuses.codes().collect();
            proptest::prop_assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
        }
    }
}
