//! Which HTTP requests a retry may send again, and the copy it sends.

use super::ReplayBody;
use http::{HeaderName, Method, Request};
use std::fmt;

/// Whether `method` is idempotent (RFC 9110 §9.2.2): `GET`, `HEAD`, `OPTIONS`, `TRACE`
/// (the safe methods), `PUT` and `DELETE`.
///
/// Sending an idempotent request twice has the same intended effect on the server as
/// sending it once, so a request whose response was lost (a reset connection, a
/// timeout) can be sent again. `POST`, `PATCH`, `CONNECT` and extension methods are not
/// idempotent.
///
/// ```
/// use buttress::http::is_idempotent;
/// use http::Method;
///
/// assert!(is_idempotent(&Method::PUT));
/// assert!(!is_idempotent(&Method::POST));
/// ```
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of `req` for another attempt, or `None` when its body is not buffered (a
/// streaming body is sent once).
///
/// The copy has the same method, URI, version, headers and body (the body's bytes are
/// shared, not copied; its trailers are copied). Extensions are copied too: `http` 1
/// requires every extension value to be `Clone`, so all of them are kept (a copy of each
/// per attempt, so keep large extension values behind an `Arc`).
///
/// This does not look at the method: [`clone_for_retry`] adds the rule that only
/// idempotent requests are sent again.
pub fn clone_request<B>(req: &Request<ReplayBody<B>>) -> Option<Request<ReplayBody<B>>> {
    let body = req.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

/// The default rule of HTTP retries: a copy of `req` only when its method is idempotent
/// ([`is_idempotent`]) and its body is buffered ([`clone_request`]); otherwise `None`,
/// and the request is sent once.
///
/// This is [`ReplayPolicy::new`]'s `clone_request`.
pub fn clone_for_retry<B>(req: &Request<ReplayBody<B>>) -> Option<Request<ReplayBody<B>>> {
    if is_idempotent(req.method()) {
        clone_request(req)
    } else {
        None
    }
}

/// The `Idempotency-Key` request header (IETF draft `draft-ietf-httpapi-idempotency-key-header`):
/// a client that sends one asks the server to carry out the request at most once
/// whatever the number of copies received.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Which HTTP requests are sent again, as a value a retry policy holds: the methods it
/// may repeat and, optionally, any request that carries an `Idempotency-Key`.
///
/// [`ReplayPolicy::new`] (also the default) repeats the idempotent methods only
/// ([`is_idempotent`]). Whatever the rule, a request whose body is streaming is sent
/// once.
///
/// ```
/// use buttress::http::{ReplayBody, ReplayPolicy, is_idempotent};
/// use bytes::Bytes;
/// use http::{Method, Request};
/// use http_body_util::Empty;
///
/// let post = || {
///     let mut req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes("{\"n\":1}"));
///     *req.method_mut() = Method::POST;
///     req
/// };
///
/// // By default a POST is not repeated...
/// assert!(ReplayPolicy::new().clone_request(&post()).is_none());
///
/// // ...unless it carries an idempotency key and the policy honours it,
/// let mut keyed = post();
/// keyed.headers_mut().insert("idempotency-key", "8e03978e".parse().unwrap());
/// let policy = ReplayPolicy::new().idempotency_key(true);
/// assert!(policy.clone_request(&keyed).is_some());
///
/// // ...or the policy says so for every POST.
/// let policy = ReplayPolicy::methods(|m| is_idempotent(m) || m == Method::POST);
/// assert!(policy.clone_request(&post()).is_some());
/// ```
#[derive(Clone, Copy)]
pub struct ReplayPolicy {
    method: fn(&Method) -> bool,
    idempotency_key: bool,
}

impl ReplayPolicy {
    /// Idempotent methods only, idempotency keys not honoured.
    pub const fn new() -> Self {
        ReplayPolicy {
            method: is_idempotent,
            idempotency_key: false,
        }
    }

    /// The methods for which `method` returns `true`.
    pub const fn methods(method: fn(&Method) -> bool) -> Self {
        ReplayPolicy {
            method,
            idempotency_key: false,
        }
    }

    /// Whether a request carrying an `Idempotency-Key` header is repeated whatever its
    /// method (default `false`: turn it on when the server honours the header).
    pub const fn idempotency_key(mut self, honour: bool) -> Self {
        self.idempotency_key = honour;
        self
    }

    /// Whether the rule allows sending `req` again (its body aside).
    pub fn allows<B>(&self, req: &Request<B>) -> bool {
        (self.method)(req.method())
            || (self.idempotency_key && req.headers().contains_key(IDEMPOTENCY_KEY))
    }

    /// A copy of `req` for another attempt when the rule allows it and its body is
    /// buffered; otherwise `None`, and the request is sent once.
    pub fn clone_request<B>(&self, req: &Request<ReplayBody<B>>) -> Option<Request<ReplayBody<B>>> {
        if self.allows(req) {
            clone_request(req)
        } else {
            None
        }
    }
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy::new()
    }
}

impl fmt::Debug for ReplayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayPolicy")
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods_per_rfc_9110() {
        let yes = [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ];
        let no = [
            Method::POST,
            Method::PATCH,
            Method::CONNECT,
            Method::from_bytes(b"PURGE").unwrap(),
            Method::from_bytes(b"get").unwrap(),
        ];
        for m in &yes {
            assert!(is_idempotent(m), "{m}");
        }
        for m in &no {
            assert!(!is_idempotent(m), "{m}");
        }
    }
}
