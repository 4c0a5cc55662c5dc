//! [`ResponseFuture`]: reads a request body into a buffer, then calls the service.

use super::ReplayBody;
use super::error::BodyError;
use crate::error::BoxError;
use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Request};
use http_body::Body;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;

/// Frames read in one poll before yielding to the executor, so that a body that is
/// always ready with empty frames cannot hold the thread.
const FRAMES_PER_POLL: u32 = 64;

pin_project! {
    /// The response future of [`BufferRequestBody`](super::BufferRequestBody): reads the
    /// request body (when it is to be buffered), then calls the inner service and waits
    /// for its response.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        Reading {
            // `None` once the request has been handed on (or the body failed).
            read: Option<Read<S, B>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Failed {
            // `None` once returned.
            error: Option<BoxError>,
        },
    }
}

/// What the reading state owns: the ready service, the request without its body, the
/// body and what was read of it.
struct Read<S, B> {
    service: S,
    parts: Parts,
    body: B,
    buf: Collector,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn calling(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
        }
    }

    pub(super) fn reading(service: S, parts: Parts, body: B, buf: Collector) -> Self {
        ResponseFuture {
            state: State::Reading {
                read: Some(Read {
                    service,
                    parts,
                    body,
                    buf,
                }),
            },
        }
    }

    pub(super) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(polled_after_completion)));
                }
                StateProj::Reading { read } => {
                    let Some(mut r) = read.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let done = match read_body(&mut r.body, &mut r.buf, cx) {
                        Poll::Pending => {
                            *read = Some(r);
                            return Poll::Pending;
                        }
                        Poll::Ready(done) => done,
                    };
                    let Read {
                        mut service,
                        parts,
                        body,
                        buf,
                    } = r;
                    let body = match done {
                        Err(e) => return Poll::Ready(Err(BodyError::new(e).into())),
                        Ok(ended) => ended.into_body(buf, body),
                    };
                    let future = service.call(Request::from_parts(parts, body));
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, read) = match &self.state {
            State::Reading { read: Some(r) } => ("reading", r.buf.len),
            State::Reading { read: None } => ("done", 0),
            State::Calling { .. } => ("calling", 0),
            State::Failed { .. } => ("failed", 0),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("bytes_read", &read)
            .finish()
    }
}

fn polled_after_completion() -> BoxError {
    BodyError::new("response future polled after completion").into()
}

/// How reading a body ended.
pub(super) enum Ended {
    /// The body ended within the limit: everything is in the collector.
    Complete,
    /// This data frame would have taken the body past the limit: the body goes on as a
    /// stream, after what the collector holds and this frame.
    Overflowed(Bytes),
}

impl Ended {
    /// The request body: all of it buffered, or forwarded after what was read.
    pub(super) fn into_body<B>(self, buf: Collector, body: B) -> ReplayBody<B> {
        match self {
            Ended::Complete => buf.into_body(),
            Ended::Overflowed(held) => buf.into_forwarded(held, body),
        }
    }
}

/// Reads frames from `body` into `buf` until the body ends, passes the limit or fails.
pub(super) fn read_body<B>(
    body: &mut B,
    buf: &mut Collector,
    cx: &mut Context<'_>,
) -> Poll<Result<Ended, BoxError>>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    for _ in 0..FRAMES_PER_POLL {
        let frame = match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(Ok(Ended::Complete)),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(mut data) => {
                if buf.trailers.is_some() && data.has_remaining() {
                    return Poll::Ready(Err("data frame after the trailers".into()));
                }
                let len = data.remaining();
                let data = data.copy_to_bytes(len);
                if !buf.push(data.clone()) {
                    return Poll::Ready(Ok(Ended::Overflowed(data)));
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    buf.push_trailers(trailers);
                }
            }
        }
        if body.is_end_stream() {
            return Poll::Ready(Ok(Ended::Complete));
        }
    }
    // Many frames in a row were ready: let other tasks run, and come back at once.
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// The bytes read so far: the first chunk as it came (no copy for a body of one chunk),
/// later ones appended into one buffer.
pub(super) struct Collector {
    first: Option<Bytes>,
    rest: BytesMut,
    len: usize,
    limit: usize,
    reserve: usize,
    trailers: Option<HeaderMap>,
}

impl Collector {
    pub(super) fn new(limit: usize, reserve: usize) -> Self {
        Collector {
            first: None,
            rest: BytesMut::new(),
            len: 0,
            limit,
            reserve,
            trailers: None,
        }
    }

    /// Appends `data`, or returns `false` (and keeps nothing of it) when it would take
    /// the total past the limit.
    fn push(&mut self, data: Bytes) -> bool {
        let Some(len) = self
            .len
            .checked_add(data.len())
            .filter(|&n| n <= self.limit)
        else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        self.len = len;
        if self.len == data.len() {
            self.first = Some(data);
        } else {
            if let Some(first) = self.first.take() {
                self.rest.reserve(self.reserve.max(self.len));
                self.rest.extend_from_slice(&first);
            }
            self.rest.extend_from_slice(&data);
        }
        true
    }

    /// Keeps `trailers`, merged into any received before (as `http_body_util::Collected`
    /// does).
    fn push_trailers(&mut self, trailers: HeaderMap) {
        match &mut self.trailers {
            Some(t) => t.extend(trailers),
            None => self.trailers = Some(trailers),
        }
    }

    fn into_bytes(self) -> (Bytes, Option<HeaderMap>) {
        let data = match self.first {
            Some(first) => first,
            None => self.rest.freeze(),
        };
        (data, self.trailers)
    }

    /// The whole body, buffered.
    fn into_body<B>(self) -> ReplayBody<B> {
        let (data, trailers) = self.into_bytes();
        ReplayBody::buffered(data, trailers)
    }

    /// What was read, then `held`, then the rest of `body`.
    fn into_forwarded<B>(self, held: Bytes, body: B) -> ReplayBody<B> {
        // Trailers are the last frame: a body that had sent them did not overflow
        // (`read_body` refuses data after them), so there are none to carry over.
        let (data, _) = self.into_bytes();
        ReplayBody::forwarded(Some(data), Some(held), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_chunk_is_kept_without_a_copy() {
        let mut c = Collector::new(10, 0);
        let chunk = Bytes::from_static(b"hello");
        assert!(c.push(chunk.clone()));
        let (data, trailers) = c.into_bytes();
        assert_eq!(data.as_ptr(), chunk.as_ptr());
        assert!(trailers.is_none());
    }

    #[test]
    fn chunks_are_joined_up_to_the_limit_inclusive() {
        let mut c = Collector::new(10, 10);
        assert!(c.push(Bytes::from_static(b"hello")));
        assert!(c.push(Bytes::new()));
        assert!(c.push(Bytes::from_static(b"world")));
        assert!(!c.push(Bytes::from_static(b"!")));
        assert_eq!(c.len, 10);
        assert_eq!(c.into_bytes().0, Bytes::from_static(b"helloworld"));
    }

    #[test]
    fn an_empty_chunk_fits_even_a_zero_limit() {
        let mut c = Collector::new(0, 0);
        assert!(c.push(Bytes::new()));
        assert!(!c.push(Bytes::from_static(b"x")));
        assert!(c.into_bytes().0.is_empty());
    }
}
