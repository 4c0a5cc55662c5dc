//! [`ReplayBody`]: a request body that is either buffered (and so can be sent again) or
//! the original stream, sent once.

use crate::error::BoxError;
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// A request body that a retry can send again when it was small enough to buffer.
    ///
    /// It is one of two things:
    ///
    /// - **buffered**: the whole body as one [`Bytes`] (plus its trailers, if it had
    ///   any). [`ReplayBody::try_clone`] copies it cheaply (a reference count for the
    ///   data, a copy of the trailers), so every attempt sends exactly the same bytes.
    ///   Its `size_hint` is exact without trailers; with trailers it has no upper
    ///   bound, so that an HTTP/1.1 client sends the body chunked, with its trailers
    ///   (hyper frames a body of exact size with `Content-Length` and drops trailers);
    /// - **streaming**: the original body `B`, possibly preceded by the bytes already
    ///   read from it while finding out it was too large. It is sent once:
    ///   [`ReplayBody::try_clone`] returns `None`.
    ///
    /// [`BufferRequestBody`](super::BufferRequestBody) makes one from any request body;
    /// [`ReplayBody::from_bytes`] and [`ReplayBody::streaming`] make one directly.
    /// Data frames are [`Bytes`] (taken from `B`'s data without a copy when `B` already
    /// yields `Bytes`) and errors are [`BoxError`].
    ///
    /// Cloning replays what the body has yet to send: clone a request before sending it,
    /// as a retry policy does.
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Buffered {
            // `None` once sent (and never `Some` of an empty `Bytes`).
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
        },
        Streaming {
            // Bytes already read from `body` before it turned out too large, in order:
            // what was buffered, then the frame that crossed the limit.
            prefix: Option<Bytes>,
            held: Option<Bytes>,
            #[pin]
            body: B,
        },
    }
}

impl<B> ReplayBody<B> {
    /// A buffered body of `data` and no trailers.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        Self::buffered(data.into(), None)
    }

    /// A buffered body of `data` followed by `trailers`. Its `size_hint` has no upper
    /// bound (see [`ReplayBody`]), so that HTTP/1.1 sends it chunked, trailers included.
    pub fn with_trailers(data: impl Into<Bytes>, trailers: HeaderMap) -> Self {
        Self::buffered(data.into(), Some(trailers))
    }

    /// An empty buffered body.
    pub fn empty() -> Self {
        Self::buffered(Bytes::new(), None)
    }

    /// The original `body`, sent once and never replayed.
    pub fn streaming(body: B) -> Self {
        Self::forwarded(None, None, body)
    }

    pub(super) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        ReplayBody {
            kind: Kind::Buffered {
                data: non_empty(data),
                trailers,
            },
        }
    }

    /// `prefix` then `held` (bytes already read from `body`, in that order), then the
    /// rest of `body`.
    pub(super) fn forwarded(prefix: Option<Bytes>, held: Option<Bytes>, body: B) -> Self {
        ReplayBody {
            kind: Kind::Streaming {
                prefix: prefix.and_then(non_empty),
                held: held.and_then(non_empty),
                body,
            },
        }
    }

    /// Whether this body is buffered, and so can be sent again.
    pub fn is_replayable(&self) -> bool {
        matches!(self.kind, Kind::Buffered { .. })
    }

    /// The buffered data yet to be sent, or `None` for a streaming body.
    pub fn buffered_bytes(&self) -> Option<Bytes> {
        match &self.kind {
            Kind::Buffered { data, .. } => Some(data.clone().unwrap_or_default()),
            Kind::Streaming { .. } => None,
        }
    }

    /// The buffered trailers yet to be sent, or `None` for a streaming body or one with
    /// no trailers.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        match &self.kind {
            Kind::Buffered { trailers, .. } => trailers.as_ref(),
            Kind::Streaming { .. } => None,
        }
    }

    /// A copy of a buffered body (what it has yet to send), or `None` for a streaming
    /// one. The data is shared, not copied; the trailers, if any, are copied.
    pub fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            Kind::Buffered { data, trailers } => Some(ReplayBody {
                kind: Kind::Buffered {
                    data: data.clone(),
                    trailers: trailers.clone(),
                },
            }),
            Kind::Streaming { .. } => None,
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Buffered { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Streaming { prefix, held, body } => {
                if let Some(data) = prefix.take().or_else(|| held.take()) {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                match body.poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Some(Ok(frame))) => {
                        Poll::Ready(Some(Ok(frame.map_data(|mut d| {
                            let len = d.remaining();
                            d.copy_to_bytes(len)
                        }))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Streaming { prefix, held, body } => {
                prefix.is_none() && held.is_none() && body.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            // With trailers to send, no upper bound: an exact hint makes hyper's HTTP/1.1
            // client frame the body with `Content-Length`, which has no room for
            // trailers (hyper drops them); without one it sends the body chunked, and
            // the trailers with it. The lower bound is still the data's length.
            Kind::Buffered { data, trailers } => {
                let len = len_of(data);
                if trailers.is_some() {
                    let mut hint = SizeHint::new();
                    hint.set_lower(len);
                    hint
                } else {
                    SizeHint::with_exact(len)
                }
            }
            Kind::Streaming { prefix, held, body } => {
                let read = len_of(prefix).saturating_add(len_of(held));
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                // Set the upper bound first: `set_lower` refuses a lower bound above it.
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint.set_lower(inner.lower().saturating_add(read));
                hint
            }
        }
    }
}

impl<B> Default for ReplayBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> From<Bytes> for ReplayBody<B> {
    fn from(data: Bytes) -> Self {
        Self::from_bytes(data)
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Buffered { data, trailers } => f
                .debug_struct("ReplayBody::Buffered")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .field("trailers", &trailers.is_some())
                .finish(),
            Kind::Streaming { prefix, held, .. } => f
                .debug_struct("ReplayBody::Streaming")
                .field("read", &len_of(prefix).saturating_add(len_of(held)))
                .finish_non_exhaustive(),
        }
    }
}

fn non_empty(data: Bytes) -> Option<Bytes> {
    if data.is_empty() { None } else { Some(data) }
}

fn len_of(data: &Option<Bytes>) -> u64 {
    data.as_ref().map_or(0, |d| d.len() as u64)
}
