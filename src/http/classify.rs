//! Classifying `http::Response`s by status code.

use crate::classify::{Classify, Outcome};
use http::{Response, StatusCode};
use std::fmt;

/// A set of HTTP status codes: one bit for each code in `0..1024` (valid codes are
/// `100..=999`, so every [`StatusCode`] has its bit).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct StatusSet([u64; 16]);

impl StatusSet {
    const EMPTY: StatusSet = StatusSet([0; 16]);

    #[inline]
    fn slot(code: StatusCode) -> (usize, u64) {
        // `StatusCode::as_u16` is in 100..=999, so the index is in 1..=15.
        let c = usize::from(code.as_u16()) & 1023;
        (c >> 6, 1u64 << (c & 63))
    }

    #[inline]
    fn contains(&self, code: StatusCode) -> bool {
        let (i, bit) = Self::slot(code);
        self.0[i] & bit != 0
    }

    fn insert(&mut self, code: StatusCode) {
        let (i, bit) = Self::slot(code);
        self.0[i] |= bit;
    }

    fn remove(&mut self, code: StatusCode) {
        let (i, bit) = Self::slot(code);
        self.0[i] &= !bit;
    }

    fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (100u16..=999).filter(|&c| {
            let c = usize::from(c);
            self.0[c >> 6] & (1u64 << (c & 63)) != 0
        })
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.codes()).finish()
    }
}

/// Classifies `Result<http::Response<B>, E>` by status code.
///
/// By default every `5xx` and `429 Too Many Requests` is a [`Outcome::Failure`], every
/// other status a [`Outcome::Success`], and every `Err` (a connection error, a timeout:
/// the request got no response) a [`Outcome::Failure`]. Codes can be moved between
/// failure, success and ignored (not counted either way):
///
/// ```
/// use buttress::classify::{Classify, Outcome};
/// use buttress::http::HttpClassifier;
/// use http::{Response, StatusCode};
///
/// let classifier = HttpClassifier::new()
///     .success(StatusCode::NOT_IMPLEMENTED) // 501 is a permanent answer, not an outage
///     .failure(StatusCode::REQUEST_TIMEOUT)
///     .ignore(StatusCode::NOT_FOUND);
///
/// let res = |code: u16| -> Result<Response<()>, std::io::Error> {
///     let mut r = Response::new(());
///     *r.status_mut() = StatusCode::from_u16(code).unwrap();
///     Ok(r)
/// };
/// assert_eq!(classifier.classify(&res(503)), Outcome::Failure);
/// assert_eq!(classifier.classify(&res(501)), Outcome::Success);
/// assert_eq!(classifier.classify(&res(408)), Outcome::Failure);
/// assert_eq!(classifier.classify(&res(404)), Outcome::Ignored);
/// assert_eq!(classifier.classify(&res(200)), Outcome::Success);
/// ```
///
/// The classifier is a plain value (a bit set per outcome): copying it and classifying
/// with it allocate nothing. For a rule that is not a set of codes, use
/// [`HttpClassifier::from_fn`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpClassifier {
    failures: StatusSet,
    ignored: StatusSet,
}

impl HttpClassifier {
    /// `5xx` and `429` are failures, every other status a success, every `Err` a failure.
    pub fn new() -> Self {
        let mut failures = StatusSet::EMPTY;
        for code in 500..=599 {
            if let Ok(code) = StatusCode::from_u16(code) {
                failures.insert(code);
            }
        }
        failures.insert(StatusCode::TOO_MANY_REQUESTS);
        HttpClassifier {
            failures,
            ignored: StatusSet::EMPTY,
        }
    }

    /// Exactly `codes` are failures (every other status a success, every `Err` a
    /// failure), in place of the default set.
    pub fn with_failures<I>(codes: I) -> Self
    where
        I: IntoIterator<Item = StatusCode>,
    {
        let mut failures = StatusSet::EMPTY;
        for code in codes {
            failures.insert(code);
        }
        HttpClassifier {
            failures,
            ignored: StatusSet::EMPTY,
        }
    }

    /// Counts `code` as a failure.
    pub fn failure(mut self, code: StatusCode) -> Self {
        self.ignored.remove(code);
        self.failures.insert(code);
        self
    }

    /// Counts `code` as a success.
    pub fn success(mut self, code: StatusCode) -> Self {
        self.ignored.remove(code);
        self.failures.remove(code);
        self
    }

    /// Counts `code` neither way (the call is [`Outcome::Ignored`]).
    pub fn ignore(mut self, code: StatusCode) -> Self {
        self.failures.remove(code);
        self.ignored.insert(code);
        self
    }

    /// The verdict on a response with status `code`.
    #[inline]
    pub fn classify_status(&self, code: StatusCode) -> Outcome {
        if self.failures.contains(code) {
            Outcome::Failure
        } else if self.ignored.contains(code) {
            Outcome::Ignored
        } else {
            Outcome::Success
        }
    }

    /// A classifier that asks `f` about each response's status; every `Err` is a
    /// failure.
    ///
    /// ```
    /// use buttress::classify::{Classify, Outcome};
    /// use buttress::http::HttpClassifier;
    /// use http::{Response, StatusCode};
    ///
    /// // Only 502, 503 and 504 mean the backend is in trouble.
    /// let classifier = HttpClassifier::from_fn(|s: StatusCode| match s.as_u16() {
    ///     502..=504 => Outcome::Failure,
    ///     _ => Outcome::Success,
    /// });
    /// let mut res = Response::new(());
    /// *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    /// assert_eq!(classifier.classify(&Ok::<_, ()>(res)), Outcome::Success);
    /// assert_eq!(classifier.classify(&Err::<Response<()>, _>(())), Outcome::Failure);
    /// ```
    pub fn from_fn<F>(f: F) -> StatusFn<F>
    where
        F: Fn(StatusCode) -> Outcome,
    {
        StatusFn { f }
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        HttpClassifier::new()
    }
}

impl fmt::Debug for HttpClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClassifier")
            .field("failures", &self.failures)
            .field("ignored", &self.ignored)
            .finish()
    }
}

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(res) => self.classify_status(res.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

/// A classifier of HTTP responses by a function of the status code; made by
/// [`HttpClassifier::from_fn`]. Every `Err` is a failure.
#[derive(Clone, Copy)]
pub struct StatusFn<F> {
    f: F,
}

impl<F> fmt::Debug for StatusFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusFn").finish_non_exhaustive()
    }
}

impl<B, E, F> Classify<Response<B>, E> for StatusFn<F>
where
    F: Fn(StatusCode) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(res) => (self.f)(res.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_code() -> impl Iterator<Item = StatusCode> {
        (100u16..=999).filter_map(|c| StatusCode::from_u16(c).ok())
    }

    #[test]
    fn default_fails_exactly_5xx_and_429() {
        let c = HttpClassifier::new();
        for code in every_code() {
            let n = code.as_u16();
            let expected = if (500..=599).contains(&n) || n == 429 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(c.classify_status(code), expected, "status {n}");
        }
    }

    #[test]
    fn codes_move_between_outcomes() {
        let c = HttpClassifier::new()
            .ignore(StatusCode::SERVICE_UNAVAILABLE)
            .failure(StatusCode::NOT_FOUND)
            .success(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            c.classify_status(StatusCode::SERVICE_UNAVAILABLE),
            Outcome::Ignored
        );
        assert_eq!(c.classify_status(StatusCode::NOT_FOUND), Outcome::Failure);
        assert_eq!(
            c.classify_status(StatusCode::TOO_MANY_REQUESTS),
            Outcome::Success
        );
        // Back from ignored to failure: the last word wins.
        let c = c.failure(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            c.classify_status(StatusCode::SERVICE_UNAVAILABLE),
            Outcome::Failure
        );
    }

    #[test]
    fn with_failures_replaces_the_default_set() {
        let c = HttpClassifier::with_failures([StatusCode::BAD_GATEWAY]);
        for code in every_code() {
            let expected = if code == StatusCode::BAD_GATEWAY {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(c.classify_status(code), expected, "status {code}");
        }
    }

    #[test]
    fn extreme_codes_have_their_own_bits() {
        let hi = StatusCode::from_u16(999).unwrap();
        let lo = StatusCode::from_u16(100).unwrap();
        let c = HttpClassifier::with_failures([hi]);
        assert_eq!(c.classify_status(hi), Outcome::Failure);
        assert_eq!(c.classify_status(lo), Outcome::Success);
        assert_eq!(
            c.classify_status(StatusCode::from_u16(998).unwrap()),
            Outcome::Success
        );
    }

    #[test]
    fn debug_lists_codes() {
        let c = HttpClassifier::with_failures([StatusCode::BAD_GATEWAY]).ignore(StatusCode::GONE);
        assert_eq!(
            format!("{c:?}"),
            "HttpClassifier { failures: {502}, ignored: {410} }"
        );
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Failure(u16),
        Success(u16),
        Ignore(u16),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let code = prop_oneof![100u16..=999, 400u16..=599];
        prop_oneof![
            code.clone().prop_map(Op::Failure),
            code.clone().prop_map(Op::Success),
            code.prop_map(Op::Ignore),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(128))]

        /// Any sequence of moves agrees with a map from code to outcome.
        #[test]
        fn agrees_with_a_map_model(ops in proptest::collection::vec(op(), 0..40)) {
            let mut model = std::collections::HashMap::new();
            for c in 100u16..=999 {
                let outcome = if (500..=599).contains(&c) || c == 429 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                model.insert(c, outcome);
            }
            let mut c = HttpClassifier::new();
            for op in ops {
                let (code, outcome) = match op {
                    Op::Failure(n) => (n, Outcome::Failure),
                    Op::Success(n) => (n, Outcome::Success),
                    Op::Ignore(n) => (n, Outcome::Ignored),
                };
                let status = StatusCode::from_u16(code).expect("100..=999");
                c = match op {
                    Op::Failure(_) => c.failure(status),
                    Op::Success(_) => c.success(status),
                    Op::Ignore(_) => c.ignore(status),
                };
                model.insert(code, outcome);
            }
            for code in every_code() {
                proptest::prop_assert_eq!(c.classify_status(code), model[&code.as_u16()]);
            }
        }
    }
}
