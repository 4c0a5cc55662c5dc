//! The retry policy for gRPC clients: which status codes are retried, and when, after
//! the server's pushback.

use super::classify::{bit, response_code};
use super::status::Pushback;
use crate::error::{BoxError, as_rejection};
use crate::retry::{Decision, DefaultPolicy, Policy};
use std::fmt;
use tonic::{Code, Status};

/// The bit of `code` in the policy's sets: the classifier's encoding, except that `OK`
/// has none, the one place that makes `OK` never retried.
#[inline]
fn retry_bit(code: Code) -> u32 {
    if code == Code::Ok { 0 } else { bit(code) }
}

/// Retries gRPC calls that failed with `UNAVAILABLE`, and with `RESOURCE_EXHAUSTED` when
/// the server said when to come back, honouring `grpc-retry-pushback-ms`; the rules of
/// gRPC's retry design (A6).
///
/// The status is found where it arrives:
///
/// - as the error of a call, a [`tonic::Status`] (anywhere in the error's
///   [`source`](std::error::Error::source) chain), which is what a service whose error is `Status`
///   returns (the way a generated client reports a call), the `Ok` side being a
///   `tonic::Response<T>` or an `http::Response<B>`;
/// - in the headers of a trailers-only `http::Response` (`grpc-status`, and
///   `grpc-retry-pushback-ms` beside it), which is how a tonic `Channel`, or any raw
///   gRPC-over-HTTP service, returns an error that comes before any message. A
///   response without `grpc-status` is returned (its status comes in the trailers,
///   after the retry has let it go).
///
/// Then, for a code:
///
/// | the code is | pushback | verdict |
/// |---|---|---|
/// | retried (default: `UNAVAILABLE`) | none | retry after the layer's backoff |
/// | retried, or retried with pushback | `n` ms | retry after exactly `n` ms (not at all if `n` ms is above the layer's `max_wait`) |
/// | retried, or retried with pushback | negative or malformed | return: the server asks for no retry |
/// | retried with pushback (default: `RESOURCE_EXHAUSTED`) | none | return |
/// | any other | any | return |
///
/// An error that carries no `Status` (a connection error, a buttress rejection from an
/// inner layer) follows [`DefaultPolicy::decide_error`].
///
/// ```
/// use buttress::grpc::GrpcRetryPolicy;
/// use buttress::retry::{Decision, Policy};
/// use std::time::Duration;
/// use tonic::{Code, Status};
///
/// let policy = GrpcRetryPolicy::new();
/// let call = |s: Status| Err::<tonic::Response<()>, buttress::BoxError>(Box::new(s));
///
/// assert_eq!(policy.decide(&(), &call(Status::unavailable("down"))), Decision::Retry);
/// assert_eq!(policy.decide(&(), &call(Status::resource_exhausted("quota"))), Decision::Return);
///
/// let mut pushed = Status::resource_exhausted("quota");
/// pushed.metadata_mut().insert("grpc-retry-pushback-ms", "1500".parse().unwrap());
/// assert_eq!(
///     policy.decide(&(), &call(pushed)),
///     Decision::RetryAfter(Duration::from_millis(1500))
/// );
///
/// let mut refused = Status::unavailable("draining");
/// refused.metadata_mut().insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
/// assert_eq!(policy.decide(&(), &call(refused)), Decision::Return);
///
/// // More codes, configured:
/// let policy = GrpcRetryPolicy::new().retry(Code::Aborted);
/// assert_eq!(policy.decide(&(), &call(Status::aborted("conflict"))), Decision::Retry);
/// ```
///
/// The policy is two words of bits: copying it into each call costs nothing. Give the
/// retry layer a request copier for the requests it sees: `tonic::Request` is not
/// `Clone`, so with a service over `tonic::Request<T>` use [`clone_request`], which
/// copies the message, the metadata and the extensions; an `http::Request` whose body
/// is buffered (the `http` feature's `ReplayBody`) is copied by
/// `buttress::http::clone_request`.
///
/// Every gRPC call is a `POST`: whether a call may run twice is the service's contract.
/// The retried *codes* are ones where the server did not process the call, but an
/// error that carries no `Status` (a transport error such as a connection reset after
/// the request went out, a per-attempt timeout) is judged as
/// [`DefaultPolicy`](crate::retry::DefaultPolicy) judges errors: retried. The server may
/// have processed such a call; for methods that must not run twice, copy only the
/// requests of methods that may (a copier returning `None` sends a call once).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcRetryPolicy {
    /// Bit `n` set: code `n` is retried, with or without pushback.
    retried: u32,
    /// Bit `n` set: code `n` is retried only when the server sent a pushback.
    with_pushback: u32,
}

impl GrpcRetryPolicy {
    /// Retries `UNAVAILABLE`, and `RESOURCE_EXHAUSTED` only with a pushback.
    pub const fn new() -> Self {
        GrpcRetryPolicy {
            retried: 1 << Code::Unavailable as u32, // the bit of `classify::bit`
            with_pushback: 1 << Code::ResourceExhausted as u32,
        }
    }

    /// Retries exactly `codes` (with or without pushback), and nothing only with
    /// pushback, in place of the defaults. `OK` is never retried.
    pub fn with_codes<I>(codes: I) -> Self
    where
        I: IntoIterator<Item = Code>,
    {
        GrpcRetryPolicy {
            retried: codes.into_iter().fold(0, |acc, c| acc | retry_bit(c)),
            with_pushback: 0,
        }
    }

    /// Retries `code` too, with or without pushback (`OK` is never retried).
    pub fn retry(mut self, code: Code) -> Self {
        self.retried |= retry_bit(code);
        self.with_pushback &= !retry_bit(code);
        self
    }

    /// Retries `code` only when the server sent a `grpc-retry-pushback-ms`.
    pub fn retry_with_pushback(mut self, code: Code) -> Self {
        self.with_pushback |= retry_bit(code);
        self.retried &= !retry_bit(code);
        self
    }

    /// Never retries `code`.
    pub fn no_retry(mut self, code: Code) -> Self {
        self.retried &= !retry_bit(code);
        self.with_pushback &= !retry_bit(code);
        self
    }

    /// The verdict on a call that ended with `code` and, if the server sent one, that
    /// `pushback`.
    #[inline]
    pub fn decide_code(&self, code: Code, pushback: Option<Pushback>) -> Decision {
        let b = retry_bit(code);
        let retried = self.retried & b != 0;
        if !retried && self.with_pushback & b == 0 {
            return Decision::Return;
        }
        match pushback {
            Some(Pushback::RetryAfter(wait)) => Decision::RetryAfter(wait),
            Some(Pushback::DoNotRetry) => Decision::Return,
            None if retried => Decision::Retry,
            None => Decision::Return,
        }
    }

    /// The verdict on an error: by the first [`Status`] in its source chain, or, if a
    /// buttress rejection comes first or there is no `Status`,
    /// [`DefaultPolicy::decide_error`].
    pub fn decide_error(&self, err: &BoxError) -> Decision {
        for e in crate::error::chain(&**err) {
            if let Some(status) = e.downcast_ref::<Status>() {
                return self.decide_code(status.code(), Pushback::from_status(status));
            }
            if as_rejection(e).is_some() {
                break;
            }
        }
        DefaultPolicy::decide_error(err)
    }

    /// The verdict on a response: by its `grpc-status` header (a trailers-only
    /// response) and `grpc-retry-pushback-ms`; a response whose status is still to come
    /// in the trailers is returned.
    ///
    /// A response without `grpc-status` but with an HTTP error status (from a proxy,
    /// say) is read as the gRPC spec maps it: `502`, `503`, `504` and `429` are
    /// `UNAVAILABLE`.
    pub fn decide_response<B>(&self, res: &http::Response<B>) -> Decision {
        match response_code(res) {
            None => Decision::Return,
            Some(code) => self.decide_code(code, Pushback::from_headers(res.headers())),
        }
    }
}

impl Default for GrpcRetryPolicy {
    fn default() -> Self {
        GrpcRetryPolicy::new()
    }
}

impl fmt::Debug for GrpcRetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcRetryPolicy")
            .field("retried", &super::classify::Codes(self.retried))
            .field("with_pushback", &super::classify::Codes(self.with_pushback))
            .finish()
    }
}

impl<Req, T> Policy<Req, tonic::Response<T>> for GrpcRetryPolicy {
    #[inline]
    fn decide(&self, _req: &Req, result: &Result<tonic::Response<T>, BoxError>) -> Decision {
        match result {
            Ok(_) => Decision::Return,
            Err(e) => self.decide_error(e),
        }
    }
}

impl<Req, B> Policy<Req, http::Response<B>> for GrpcRetryPolicy {
    #[inline]
    fn decide(&self, _req: &Req, result: &Result<http::Response<B>, BoxError>) -> Decision {
        match result {
            Ok(res) => self.decide_response(res),
            Err(e) => self.decide_error(e),
        }
    }
}

/// A copy of a tonic request for a retry: its message, its metadata (credentials,
/// `grpc-timeout`, custom headers) and its extensions (a [`Deadline`](super::Deadline)),
/// so that the retry is the same call as the first attempt.
///
/// `tonic::Request` is not `Clone`; give this to
/// [`RetryLayerBuilder::clone_request`](crate::retry::RetryLayerBuilder::clone_request)
/// for a service over `tonic::Request<T>` (a generated client's calls, wrapped in a
/// `service_fn`). Copying only the message would send a retry without the caller's
/// credentials or deadline.
///
/// ```
/// use buttress::grpc::{Deadline, clone_request};
/// use std::time::Duration;
///
/// let mut req = tonic::Request::new("hi".to_owned());
/// req.metadata_mut().insert("authorization", "Bearer t0k3n".parse().unwrap());
/// req.set_timeout(Duration::from_secs(2));
/// let deadline = Deadline::after(Duration::from_secs(5));
/// req.extensions_mut().insert(deadline);
///
/// let copy = clone_request(&req).expect("always copied");
/// assert_eq!(copy.get_ref(), "hi");
/// assert_eq!(copy.metadata().get("authorization").unwrap(), "Bearer t0k3n");
/// assert_eq!(copy.metadata().get("grpc-timeout").unwrap(), "2000000u");
/// assert_eq!(copy.extensions().get::<Deadline>(), Some(&deadline));
/// ```
pub fn clone_request<T: Clone>(req: &tonic::Request<T>) -> Option<tonic::Request<T>> {
    Some(tonic::Request::from_parts(
        req.metadata().clone(),
        req.extensions().clone(),
        req.get_ref().clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::error::CircuitOpen;
    use crate::grpc::set_retry_pushback;
    use std::time::Duration;

    use crate::grpc::classify::ALL_CODES as ALL;
    use std::error::Error;

    fn status(code: Code, pushback: Option<&str>) -> Status {
        let mut s = Status::new(code, "x");
        if let Some(v) = pushback {
            s.metadata_mut()
                .insert("grpc-retry-pushback-ms", v.parse().expect("ascii"));
        }
        s
    }

    fn decide(p: &GrpcRetryPolicy, s: Status) -> Decision {
        p.decide(&(), &Err::<tonic::Response<()>, BoxError>(Box::new(s)))
    }

    #[test]
    fn every_code_by_default() {
        let p = GrpcRetryPolicy::new();
        let ms = |n| Decision::RetryAfter(Duration::from_millis(n));
        for code in ALL {
            let (none, pushed, refused) = match code {
                Code::Unavailable => (Decision::Retry, ms(20), Decision::Return),
                Code::ResourceExhausted => (Decision::Return, ms(20), Decision::Return),
                _ => (Decision::Return, Decision::Return, Decision::Return),
            };
            assert_eq!(decide(&p, status(code, None)), none, "{code:?}");
            assert_eq!(decide(&p, status(code, Some("20"))), pushed, "{code:?}");
            assert_eq!(decide(&p, status(code, Some("-5"))), refused, "{code:?}");
            assert_eq!(decide(&p, status(code, Some("2e3"))), refused, "{code:?}");
        }
    }

    #[test]
    fn configured_codes() {
        let p = GrpcRetryPolicy::with_codes([Code::Aborted, Code::Ok]);
        assert_eq!(decide(&p, status(Code::Aborted, None)), Decision::Retry);
        assert_eq!(
            decide(&p, status(Code::Unavailable, None)),
            Decision::Return
        );
        assert_eq!(
            decide(&p, status(Code::ResourceExhausted, Some("5"))),
            Decision::Return
        );
        let p = GrpcRetryPolicy::new()
            .retry(Code::ResourceExhausted)
            .retry_with_pushback(Code::Unavailable)
            .retry(Code::Ok);
        assert_eq!(
            decide(&p, status(Code::ResourceExhausted, None)),
            Decision::Retry
        );
        assert_eq!(
            decide(&p, status(Code::Unavailable, None)),
            Decision::Return
        );
        assert_eq!(
            decide(&p, status(Code::Unavailable, Some("7"))),
            Decision::RetryAfter(Duration::from_millis(7))
        );
        let p = p
            .no_retry(Code::Unavailable)
            .no_retry(Code::ResourceExhausted);
        assert_eq!(p, GrpcRetryPolicy::with_codes([]));
        assert_eq!(
            format!("{:?}", GrpcRetryPolicy::new()),
            "GrpcRetryPolicy { retried: {Unavailable}, with_pushback: {ResourceExhausted} }"
        );
    }

    #[test]
    fn errors_without_a_status_follow_the_default_policy() {
        let p = GrpcRetryPolicy::new();
        let err = |e: BoxError| p.decide(&(), &Err::<tonic::Response<()>, _>(e));
        assert_eq!(err("transport error".into()), Decision::Retry);
        assert_eq!(err(Box::new(CircuitOpen::new(None))), Decision::Return);
        // A Status wrapped in another error is still found...
        #[derive(Debug)]
        struct Wrapper(Status);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(
            err(Box::new(Wrapper(Status::unavailable("x")))),
            Decision::Retry
        );
        // ...but a rejection around it decides first: an inner retry gave up.
        let exhausted =
            crate::retry::error::BudgetExhausted::after(1, Box::new(Status::unavailable("x")));
        assert_eq!(err(Box::new(exhausted)), Decision::Return);
        assert_eq!(
            p.decide(&(), &Ok::<_, BoxError>(tonic::Response::new(()))),
            Decision::Return
        );
    }

    #[test]
    fn trailers_only_responses() {
        let p = GrpcRetryPolicy::new();
        let res = |s: Status| Ok::<_, BoxError>(s.into_http::<()>());
        let mut pushed = Status::resource_exhausted("slow down");
        set_retry_pushback(pushed.metadata_mut(), Duration::from_millis(1500));
        assert_eq!(
            p.decide(&(), &res(pushed)),
            Decision::RetryAfter(Duration::from_millis(1500))
        );
        assert_eq!(
            p.decide(&(), &res(Status::unavailable("x"))),
            Decision::Retry
        );
        assert_eq!(
            p.decide(&(), &res(Status::not_found("x"))),
            Decision::Return
        );
        assert_eq!(p.decide(&(), &res(Status::ok("x"))), Decision::Return);
        // A 200 whose status is in the trailers is returned; a proxy's 503 is retried.
        let ok = http::Response::new(());
        assert_eq!(p.decide(&(), &Ok::<_, BoxError>(ok)), Decision::Return);
        let proxy = http::Response::builder()
            .status(503)
            .body(())
            .expect("valid");
        assert_eq!(p.decide(&(), &Ok::<_, BoxError>(proxy)), Decision::Retry);
    }

    /// The rules of the policy read the simplest way: the reference model.
    fn reference(
        retried: &[Code],
        pushback_only: &[Code],
        code: Code,
        pushback: Option<Pushback>,
    ) -> Decision {
        let r = code != Code::Ok && retried.contains(&code);
        let p = code != Code::Ok && pushback_only.contains(&code);
        match (r, p, pushback) {
            (false, false, _) => Decision::Return,
            (_, _, Some(Pushback::DoNotRetry)) => Decision::Return,
            (_, _, Some(Pushback::RetryAfter(d))) => Decision::RetryAfter(d),
            (true, _, None) => Decision::Retry,
            (false, true, None) => Decision::Return,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn policy_agrees_with_the_reference_model(
            ops in proptest::collection::vec((0u8..3, 0usize..17), 0..30),
            probe in 0usize..17,
            pushback in proptest::option::of(proptest::option::of(0u64..100_000)),
        ) {
            let mut policy = GrpcRetryPolicy::new();
            let mut retried = vec![Code::Unavailable];
            let mut pushback_only = vec![Code::ResourceExhausted];
            for (op, i) in ops {
                let code = ALL[i];
                retried.retain(|&c| c != code);
                pushback_only.retain(|&c| c != code);
                policy = match op {
                    0 => { retried.push(code); policy.retry(code) }
                    1 => { pushback_only.push(code); policy.retry_with_pushback(code) }
                    _ => policy.no_retry(code),
                };
            }
            let pushback = pushback.map(|p| match p {
                Some(ms) => Pushback::RetryAfter(Duration::from_millis(ms)),
                None => Pushback::DoNotRetry,
            });
            let code = ALL[probe];
            proptest::prop_assert_eq!(
                policy.decide_code(code, pushback),
                reference(&retried, &pushback_only, code, pushback)
            );
        }
    }
}
