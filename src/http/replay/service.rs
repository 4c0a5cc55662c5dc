//! [`BufferRequestBody`]: `poll_ready` and `call`.

use super::error::BodyError;
use super::future::{Collector, ResponseFuture, read_body};
use super::{BufferRequestBodyLayer, ReplayBody};
use crate::error::BoxError;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request};
use http_body::{Body, SizeHint};
use std::task::{Context, Poll, Waker};
use tower_service::Service;

/// Turns each `Request<B>` into a `Request<ReplayBody<B>>`, buffering bodies small
/// enough to be sent again; made by [`BufferRequestBodyLayer`].
///
/// See the [module docs](super) for which bodies are buffered. `poll_ready` is the inner
/// service's. `call` reads as much of the body as is there already: a body that needs
/// no reading (empty, or too large to buffer) or whose frames are all there (a `Full`)
/// is passed on at once, to the service made ready. Otherwise that service moves into
/// the response future, which reads the rest of the body and then calls it (so the
/// inner service stays reserved, if its readiness reserves anything, while the body
/// arrives).
///
/// `B` must be `Unpin` because a body found too large after part of it was read is moved
/// into the request, behind the bytes already read; wrap a `!Unpin` body in
/// `Box::pin(body)`.
#[derive(Debug, Clone)]
pub struct BufferRequestBody<S> {
    inner: S,
    config: BufferRequestBodyLayer,
}

impl<S> BufferRequestBody<S> {
    /// `inner`, buffering as `config` says.
    pub fn new(inner: S, config: BufferRequestBodyLayer) -> Self {
        BufferRequestBody { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for BufferRequestBody<S>
where
    S: Service<Request<ReplayBody<B>>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, body) = req.into_parts();
        if body.is_end_stream() {
            let req = Request::from_parts(parts, ReplayBody::empty());
            return ResponseFuture::calling(self.inner.call(req));
        }
        let plan = plan(
            &body.size_hint(),
            content_length(&parts.headers),
            self.config.max_bytes,
            self.config.read_unknown_length,
        );
        match plan {
            Plan::Forward => {
                let req = Request::from_parts(parts, ReplayBody::streaming(body));
                ResponseFuture::calling(self.inner.call(req))
            }
            Plan::Read { reserve } => {
                let mut body = body;
                let mut buf = Collector::new(self.config.max_bytes, reserve);
                // A body whose frames are all there already (a `Full`, a body built from
                // bytes in memory) is read here, and the request sent at once. A body
                // still waiting for data is polled again, with the caller's waker, by
                // the response future: only the last waker given must be woken.
                let mut cx = Context::from_waker(Waker::noop());
                match read_body(&mut body, &mut buf, &mut cx) {
                    Poll::Ready(Ok(ended)) => {
                        let body = ended.into_body(buf, body);
                        ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)))
                    }
                    Poll::Ready(Err(e)) => ResponseFuture::failed(BodyError::new(e).into()),
                    Poll::Pending => {
                        // The service made ready goes with the request; its clone stays
                        // to be made ready for the next call.
                        let clone = self.inner.clone();
                        let service = std::mem::replace(&mut self.inner, clone);
                        ResponseFuture::reading(service, parts, body, buf)
                    }
                }
            }
        }
    }
}

/// What to do with a body, decided before reading any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Read it, up to the limit, reserving `reserve` bytes once it is more than one
    /// chunk.
    Read { reserve: usize },
    /// Send it as it is, never replayed.
    Forward,
}

/// The most buffer reserved ahead of the data, whatever length a body announces: a
/// body's `size_hint` and `Content-Length` are the sender's word, not an allocation
/// request. A body longer than this grows its buffer as it arrives.
const MAX_RESERVE: usize = 1024 * 1024;

/// Reads a body when its `size_hint` upper bound or its `Content-Length` says it fits in
/// `max` bytes; forwards it when it is known to be larger (its lower bound, or every
/// length it announces, is above `max`); and reads an unknown-length body up to the
/// limit only when `read_unknown` is set.
pub(super) fn plan(
    hint: &SizeHint,
    content_length: Option<u64>,
    max: usize,
    read_unknown: bool,
) -> Plan {
    let max64 = u64::try_from(max).unwrap_or(u64::MAX);
    if hint.lower() > max64 {
        return Plan::Forward;
    }
    let fits = [hint.upper(), content_length]
        .into_iter()
        .flatten()
        .filter(|&n| n <= max64)
        .min();
    if let Some(n) = fits {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        return Plan::Read {
            reserve: n.min(MAX_RESERVE),
        };
    }
    let announced = hint.upper().is_some() || content_length.is_some();
    if announced || !read_unknown {
        Plan::Forward
    } else {
        Plan::Read { reserve: 0 }
    }
}

/// The request's `Content-Length`, when it has exactly one that is a valid length.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let s = value.to_str().ok()?;
    // RFC 9110 §8.6: 1*DIGIT; `u64::from_str` would also take a leading `+`.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hint(lower: u64, upper: Option<u64>) -> SizeHint {
        let mut h = SizeHint::new();
        if let Some(u) = upper {
            h.set_upper(u);
        }
        h.set_lower(lower);
        h
    }

    #[test]
    fn known_lengths_within_the_limit_are_read() {
        assert_eq!(
            plan(&SizeHint::with_exact(10), None, 64, true),
            Plan::Read { reserve: 10 }
        );
        assert_eq!(
            plan(&SizeHint::with_exact(64), None, 64, false),
            Plan::Read { reserve: 64 }
        );
        assert_eq!(
            plan(&hint(0, Some(30)), None, 64, false),
            Plan::Read { reserve: 30 }
        );
        // Unknown hint, but a Content-Length that fits.
        assert_eq!(
            plan(&SizeHint::new(), Some(5), 64, false),
            Plan::Read { reserve: 5 }
        );
    }

    #[test]
    fn known_larger_bodies_are_forwarded_unread() {
        assert_eq!(
            plan(&SizeHint::with_exact(65), None, 64, true),
            Plan::Forward
        );
        assert_eq!(plan(&hint(0, Some(1000)), None, 64, true), Plan::Forward);
        assert_eq!(plan(&SizeHint::new(), Some(65), 64, true), Plan::Forward);
        // A lower bound above the limit wins over a small Content-Length.
        assert_eq!(plan(&hint(100, None), Some(5), 64, true), Plan::Forward);
    }

    #[test]
    fn unknown_lengths_are_read_only_when_asked() {
        assert_eq!(
            plan(&SizeHint::new(), None, 64, true),
            Plan::Read { reserve: 0 }
        );
        assert_eq!(plan(&SizeHint::new(), None, 64, false), Plan::Forward);
    }

    #[test]
    fn reservations_are_bounded() {
        assert_eq!(
            plan(&SizeHint::with_exact(u64::MAX), None, usize::MAX, true),
            Plan::Read {
                reserve: MAX_RESERVE
            }
        );
        assert_eq!(
            plan(&SizeHint::with_exact(0), None, 0, true),
            Plan::Read { reserve: 0 }
        );
    }

    #[test]
    fn content_length_is_strict() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(content_length(&h), Some(42));
        for bad in ["", "+4", "-1", "4 2", "0x10", "99999999999999999999999"] {
            h.insert(CONTENT_LENGTH, HeaderValue::from_static(bad));
            assert_eq!(content_length(&h), None, "{bad:?}");
        }
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("7"));
        h.append(CONTENT_LENGTH, HeaderValue::from_static("7"));
        assert_eq!(content_length(&h), None);
    }
}
