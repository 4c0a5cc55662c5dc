//! Replayable request bodies through tower's `Service` API: what is buffered, what is
//! forwarded, and that every byte arrives.
#![cfg(feature = "http")]

use buttress::error::BoxError;
use buttress::http::replay::error::BodyError;
use buttress::http::{
    BufferRequestBody, BufferRequestBodyLayer, ReplayBody, ReplayPolicy, clone_for_retry,
    clone_request, is_idempotent,
};
use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A body of given frames, with a given size hint (unknown by default), that counts the
/// frames taken from it.
struct Chunks {
    frames: VecDeque<Result<Frame<Bytes>, BoxError>>,
    hint: SizeHint,
    taken: Arc<AtomicUsize>,
}

impl Chunks {
    fn new<I: IntoIterator<Item = Bytes>>(chunks: I) -> Self {
        Chunks {
            frames: chunks.into_iter().map(|c| Ok(Frame::data(c))).collect(),
            hint: SizeHint::new(),
            taken: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn exact(mut self, len: u64) -> Self {
        self.hint = SizeHint::with_exact(len);
        self
    }

    fn trailers(mut self, trailers: HeaderMap) -> Self {
        self.frames.push_back(Ok(Frame::trailers(trailers)));
        self
    }

    fn fail(mut self, msg: &'static str) -> Self {
        self.frames.push_back(Err(msg.into()));
        self
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = self.frames.pop_front();
        if frame.is_some() {
            self.taken.fetch_add(1, Ordering::SeqCst);
        }
        Poll::Ready(frame)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// `n` bytes of a pattern that makes a misplaced or repeated chunk visible.
fn pattern(n: usize) -> Bytes {
    (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

/// `data` cut into chunks of `size` bytes.
fn chunked(data: &Bytes, size: usize) -> Vec<Bytes> {
    (0..data.len())
        .step_by(size)
        .map(|i| data.slice(i..(i + size).min(data.len())))
        .collect()
}

type Sent = (Bytes, Option<HeaderMap>);

async fn drain<B>(body: B) -> Result<Sent, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let collected = body.collect().await.map_err(Into::into)?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

/// What the inner service saw: whether the body was replayable, then every copy it
/// could make (up to `copies`) and the original, each read to its end.
#[derive(Debug)]
struct Seen {
    replayable: bool,
    frames_taken_before_call: usize,
    sent: Vec<Sent>,
}

/// A service standing in for a retry layer: reads `copies` copies of each request (as
/// far as they can be made), then the request itself.
fn replayer(
    copies: usize,
    taken: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<ReplayBody<Chunks>>, Response = Seen, Error = BoxError, Future = impl Send>
+ Clone {
    service_fn(move |req: Request<ReplayBody<Chunks>>| {
        let frames_taken_before_call = taken.load(Ordering::SeqCst);
        calls.fetch_add(1, Ordering::SeqCst);
        let copies: Vec<_> = (0..copies).filter_map(|_| clone_request(&req)).collect();
        async move {
            let replayable = req.body().is_replayable();
            let mut sent = Vec::new();
            for copy in copies {
                sent.push(drain(copy.into_body()).await?);
            }
            sent.push(drain(req.into_body()).await?);
            Ok(Seen {
                replayable,
                frames_taken_before_call,
                sent,
            })
        }
    })
}

async fn send(
    layer: BufferRequestBodyLayer,
    copies: usize,
    body: Chunks,
) -> Result<Seen, BoxError> {
    send_req(layer, copies, Request::new(body)).await
}

async fn send_req(
    layer: BufferRequestBodyLayer,
    copies: usize,
    req: Request<Chunks>,
) -> Result<Seen, BoxError> {
    let taken = req.body().taken.clone();
    let svc = layer.layer(replayer(copies, taken, Arc::new(AtomicUsize::new(0))));
    svc.oneshot(req).await
}

#[tokio::test]
async fn small_body_is_buffered_and_replayed_byte_identical() {
    let data = pattern(10_000);
    let body = Full::new(data.clone());
    let svc = BufferRequestBodyLayer::new().layer(service_fn(
        |req: Request<ReplayBody<Full<Bytes>>>| async move {
            assert!(req.body().is_replayable());
            let mut sent = Vec::new();
            for _ in 0..4 {
                let copy = clone_request(&req).ok_or("a buffered body can be copied")?;
                sent.push(drain(copy.into_body()).await?.0);
            }
            sent.push(drain(req.into_body()).await?.0);
            Ok::<_, BoxError>(sent)
        },
    ));
    let sent = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(sent.len(), 5);
    for s in &sent {
        assert_eq!(s, &data);
    }
}

#[tokio::test]
async fn chunked_small_body_is_joined_and_replayed() {
    let data = pattern(5_000);
    let body = Chunks::new(chunked(&data, 333)).exact(5_000);
    let seen = send(BufferRequestBodyLayer::new(), 3, body).await.unwrap();
    assert!(seen.replayable);
    assert_eq!(seen.sent.len(), 4);
    for (bytes, trailers) in &seen.sent {
        assert_eq!(bytes, &data);
        assert!(trailers.is_none());
    }
}

#[tokio::test]
async fn large_known_length_body_is_forwarded_unread() {
    let data = pattern(100_000);
    let body = Chunks::new(chunked(&data, 8_192)).exact(100_000);
    let seen = send(BufferRequestBodyLayer::new(), 3, body).await.unwrap();
    assert!(!seen.replayable);
    assert_eq!(seen.frames_taken_before_call, 0, "the layer read the body");
    assert_eq!(seen.sent.len(), 1, "a streaming body cannot be copied");
    assert_eq!(seen.sent[0].0, data);
}

#[tokio::test]
async fn content_length_above_the_limit_forwards_unread() {
    let data = pattern(2_000);
    let req = Request::builder()
        .header(http::header::CONTENT_LENGTH, "2000")
        .body(Chunks::new(chunked(&data, 100)))
        .unwrap();
    let layer = BufferRequestBodyLayer::new().max_bytes(1_000);
    let seen = send_req(layer, 2, req).await.unwrap();
    assert!(!seen.replayable);
    assert_eq!(seen.frames_taken_before_call, 0);
    assert_eq!(seen.sent, vec![(data, None)]);
}

#[tokio::test]
async fn unknown_length_within_the_limit_is_buffered() {
    // Exactly the limit: the limit is inclusive.
    let data = pattern(64 * 1024);
    let body = Chunks::new(chunked(&data, 1_000));
    let seen = send(BufferRequestBodyLayer::new(), 3, body).await.unwrap();
    assert!(seen.replayable);
    assert_eq!(seen.sent.len(), 4);
    for (bytes, _) in &seen.sent {
        assert_eq!(bytes, &data);
    }
}

#[tokio::test]
async fn unknown_length_beyond_the_limit_is_forwarded_intact() {
    for (len, chunk) in [(64 * 1024 + 1, 1_000), (100_000, 7_777), (70_000, 70_000)] {
        let data = pattern(len);
        let body = Chunks::new(chunked(&data, chunk));
        let seen = send(BufferRequestBodyLayer::new(), 3, body).await.unwrap();
        assert!(!seen.replayable, "{len} bytes in chunks of {chunk}");
        assert_eq!(seen.sent.len(), 1);
        // Every byte, once, in order.
        assert_eq!(seen.sent[0].0.len(), len);
        assert_eq!(seen.sent[0].0, data);
    }
}

#[tokio::test]
async fn unknown_length_is_forwarded_unread_when_reading_is_off() {
    let data = pattern(100);
    let body = Chunks::new(chunked(&data, 10));
    let layer = BufferRequestBodyLayer::new().read_unknown_length(false);
    let seen = send(layer, 2, body).await.unwrap();
    assert!(!seen.replayable);
    assert_eq!(seen.frames_taken_before_call, 0);
    assert_eq!(seen.sent, vec![(data, None)]);
}

#[tokio::test]
async fn a_body_longer_than_it_announced_still_arrives_whole() {
    let data = pattern(3_000);
    let body = Chunks::new(chunked(&data, 500)).exact(600);
    let layer = BufferRequestBodyLayer::new().max_bytes(1_000);
    let seen = send(layer, 2, body).await.unwrap();
    assert!(!seen.replayable);
    assert_eq!(seen.sent, vec![(data, None)]);
}

#[tokio::test]
async fn body_error_while_buffering_is_the_service_error() {
    let body = Chunks::new([Bytes::from_static(b"partial")]).fail("connection reset by peer");
    let calls = Arc::new(AtomicUsize::new(0));
    let taken = body.taken.clone();
    let svc = BufferRequestBodyLayer::new().layer(replayer(1, taken, calls.clone()));
    let err = svc.oneshot(Request::new(body)).await.unwrap_err();
    let body_err = err.downcast_ref::<BodyError>().expect("a BodyError");
    assert_eq!(body_err.to_string(), "request body failed while buffering");
    let source = std::error::Error::source(body_err).expect("the body's error");
    assert_eq!(source.to_string(), "connection reset by peer");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the request was sent");
    // Not a rejection: no layer refused the call.
    assert!(buttress::error::rejection(&*err).is_none());
}

#[tokio::test]
async fn body_error_after_the_limit_reaches_the_inner_service() {
    let data = pattern(2_000);
    let body = Chunks::new(chunked(&data, 300)).fail("stream cut");
    let layer = BufferRequestBodyLayer::new().max_bytes(1_000);
    let err = send(layer, 1, body).await.unwrap_err();
    assert_eq!(err.to_string(), "stream cut");
}

#[tokio::test]
async fn data_after_trailers_is_refused() {
    let mut body = Chunks::new([Bytes::from_static(b"a")]).trailers(HeaderMap::new());
    body.frames
        .push_back(Ok(Frame::data(Bytes::from_static(b"b"))));
    let err = send(BufferRequestBodyLayer::new(), 1, body)
        .await
        .unwrap_err();
    assert!(err.is::<BodyError>());
}

#[tokio::test]
async fn empty_bodies_are_replayable() {
    // Empty says it has ended: nothing is read.
    let svc = BufferRequestBodyLayer::new().layer(service_fn(
        |req: Request<ReplayBody<Empty<Bytes>>>| async move {
            let copy = clone_request(&req).ok_or("an empty body can be copied")?;
            assert!(copy.body().is_end_stream());
            Ok::<_, BoxError>((
                drain(copy.into_body()).await?,
                drain(req.into_body()).await?,
            ))
        },
    ));
    let (copy, original) = svc.oneshot(Request::new(Empty::new())).await.unwrap();
    assert_eq!(copy, (Bytes::new(), None));
    assert_eq!(original, (Bytes::new(), None));

    // A body of unknown length that turns out to have no frame at all.
    let seen = send(BufferRequestBodyLayer::new(), 2, Chunks::new([]))
        .await
        .unwrap();
    assert!(seen.replayable);
    assert_eq!(seen.sent, vec![(Bytes::new(), None); 3]);

    // A zero limit still buffers the empty body (and empty frames).
    let layer = BufferRequestBodyLayer::new().max_bytes(0);
    let seen = send(layer, 1, Chunks::new([Bytes::new(), Bytes::new()]))
        .await
        .unwrap();
    assert!(seen.replayable);
    assert_eq!(seen.sent, vec![(Bytes::new(), None); 2]);
}

#[tokio::test]
async fn trailers_are_kept_in_every_copy() {
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", HeaderValue::from_static("abc123"));
    let data = pattern(300);
    let body = Chunks::new(chunked(&data, 100)).trailers(trailers.clone());
    let seen = send(BufferRequestBodyLayer::new(), 3, body).await.unwrap();
    assert!(seen.replayable);
    assert_eq!(seen.sent.len(), 4);
    for sent in &seen.sent {
        assert_eq!(sent, &(data.clone(), Some(trailers.clone())));
    }
}

/// What a body yields, frame by frame, to its end: `Ok(data)` for a data frame,
/// `Err(trailers)` for a trailers frame.
async fn frames<B>(body: B) -> Vec<Result<Bytes, HeaderMap>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Debug,
{
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        out.push(
            frame
                .unwrap()
                .into_data()
                .map_err(|f| f.into_trailers().unwrap()),
        );
    }
    out
}

/// A buffered body with trailers reports no upper bound (hyper frames a request with an
/// exact size hint with `Content-Length`, and drops trailers on such a body): its data
/// and then its trailers, in every copy. Without trailers the hint stays exact.
#[tokio::test]
async fn buffered_trailers_make_the_size_hint_inexact() {
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", HeaderValue::from_static("abc123"));
    for with_trailers in [true, false] {
        let data = pattern(300);
        let mut body = Chunks::new(chunked(&data, 100));
        if with_trailers {
            body = body.trailers(trailers.clone());
        }
        let svc = BufferRequestBodyLayer::new().layer(service_fn(
            |req: Request<ReplayBody<Chunks>>| async move {
                let body = req.into_body();
                assert!(body.is_replayable());
                let copies: Vec<_> = (0..2).map(|_| body.try_clone().unwrap()).collect();
                let mut seen = Vec::new();
                for b in copies.into_iter().chain([body]) {
                    let hint = b.size_hint();
                    seen.push(((hint.lower(), hint.upper()), frames(b).await));
                }
                Ok::<_, BoxError>(seen)
            },
        ));
        let seen = svc.oneshot(Request::new(body)).await.unwrap();
        assert_eq!(seen.len(), 3);
        for (hint, frames) in seen {
            let mut want = vec![Ok(data.clone())];
            if with_trailers {
                assert_eq!(hint, (300, None));
                want.push(Err(trailers.clone()));
            } else {
                assert_eq!(hint, (300, Some(300)));
            }
            assert_eq!(frames, want);
        }
    }
    let body = ReplayBody::<Empty<Bytes>>::with_trailers("12345", trailers.clone());
    assert_eq!(body.size_hint().exact(), None);
    assert_eq!(body.size_hint().lower(), 5);
    let mut copy = body.try_clone().unwrap();
    assert_eq!(
        copy.frame().await.unwrap().unwrap().into_data().unwrap(),
        "12345"
    );
    // The data sent: the trailers still to come, so still no upper bound.
    assert_eq!(
        (copy.size_hint().lower(), copy.size_hint().upper()),
        (0, None)
    );
    assert!(!copy.is_end_stream());
    assert_eq!(frames(copy).await, vec![Err(trailers.clone())]);
    // Trailers alone, with no data.
    let body = ReplayBody::<Empty<Bytes>>::with_trailers(Bytes::new(), trailers.clone());
    assert_eq!(body.size_hint().exact(), None);
    assert_eq!(frames(body).await, vec![Err(trailers)]);
}

/// Reads one HTTP/1.1 request off `io`, raw: the head, then a `Content-Length` body or
/// a chunked one up to the end of its trailer section.
async fn read_raw_request(io: &mut tokio::io::DuplexStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let raw = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = raw.find("\r\n\r\n") {
            let head = raw[..end].to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let done = match length {
                Some(n) => body.len() >= n,
                None => body
                    .find("\r\n0\r\n")
                    .or(body.starts_with("0\r\n").then_some(0))
                    .is_some_and(|i| body[i..].contains("\r\n\r\n")),
            };
            if done {
                return raw;
            }
        }
        let n = io.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "connection closed mid-request: {raw:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Over HTTP/1.1, a buffered body's trailers reach the wire, in every copy: hyper sends
/// it chunked, not with a `Content-Length` (which leaves no room for trailers).
#[tokio::test]
async fn buffered_trailers_reach_the_wire_over_http1() {
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", HeaderValue::from_static("abc123"));
    let body = Chunks::new([Bytes::from_static(b"hello "), Bytes::from_static(b"world")])
        .trailers(trailers);
    let buffered = BufferRequestBodyLayer::new()
        .layer(service_fn(|req: Request<ReplayBody<Chunks>>| async move {
            Ok::<_, BoxError>(req)
        }))
        .oneshot(
            Request::post("http://example.com/upload")
                .header("trailer", "checksum")
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(buffered.body().is_replayable());
    for req in [clone_request(&buffered).unwrap(), buffered] {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let response = tokio::spawn(sender.send_request(req));
        let raw = read_raw_request(&mut server).await;
        let lower = raw.to_ascii_lowercase();
        assert!(lower.contains("transfer-encoding: chunked\r\n"), "{raw:?}");
        assert!(!lower.contains("content-length"), "{raw:?}");
        assert!(raw.contains("hello world"), "{raw:?}");
        assert!(
            raw.ends_with("\r\n0\r\nchecksum: abc123\r\n\r\n"),
            "{raw:?}"
        );
        response.abort();
        conn.abort();
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Tag(u32);

#[test]
fn clone_request_copies_the_whole_request() {
    let mut req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes("payload"));
    *req.method_mut() = Method::DELETE;
    *req.uri_mut() = Uri::from_static("https://api.example/items/7?force=1");
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut()
        .insert("x-request-id", HeaderValue::from_static("r-1"));
    req.headers_mut()
        .append("accept", HeaderValue::from_static("a/b"));
    req.headers_mut()
        .append("accept", HeaderValue::from_static("c/d"));
    req.extensions_mut().insert(Tag(7));

    let copy = clone_request(&req).unwrap();
    assert_eq!(copy.method(), req.method());
    assert_eq!(copy.uri(), req.uri());
    assert_eq!(copy.version(), req.version());
    assert_eq!(copy.headers(), req.headers());
    assert_eq!(copy.extensions().get::<Tag>(), Some(&Tag(7)));
    assert_eq!(copy.body().buffered_bytes(), Some(Bytes::from("payload")));

    let streaming = Request::new(ReplayBody::streaming(Empty::<Bytes>::new()));
    assert!(clone_request(&streaming).is_none());
}

#[test]
fn only_idempotent_methods_are_retried_by_default() {
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
        Method::POST,
        Method::PATCH,
        Method::CONNECT,
    ] {
        let mut req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes("x"));
        *req.method_mut() = method.clone();
        let expected = is_idempotent(&method);
        assert_eq!(clone_for_retry(&req).is_some(), expected, "{method}");
        assert_eq!(
            ReplayPolicy::default().clone_request(&req).is_some(),
            expected,
            "{method}"
        );
    }
    // Idempotent or not, a streaming body is sent once.
    let req = Request::new(ReplayBody::streaming(Empty::<Bytes>::new()));
    assert_eq!(req.method(), Method::GET);
    assert!(clone_for_retry(&req).is_none());
    assert!(
        ReplayPolicy::methods(|_| true)
            .clone_request(&req)
            .is_none()
    );
}

#[test]
fn the_policy_honours_idempotency_keys_only_when_asked() {
    let mut req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes("x"));
    *req.method_mut() = Method::POST;
    req.headers_mut()
        .insert("idempotency-key", HeaderValue::from_static("k-1"));
    assert!(ReplayPolicy::new().clone_request(&req).is_none());
    assert!(
        ReplayPolicy::new()
            .idempotency_key(true)
            .clone_request(&req)
            .is_some()
    );
    assert!(
        ReplayPolicy::methods(|_| false)
            .idempotency_key(true)
            .clone_request(&req)
            .is_some()
    );
}

/// Ready once per `poll_ready`; a clone starts unready, so a call on an unready clone
/// is caught.
#[derive(Debug)]
struct ReadyOnce {
    ready: bool,
}

impl Clone for ReadyOnce {
    fn clone(&self) -> Self {
        ReadyOnce { ready: false }
    }
}

impl<B> Service<Request<ReplayBody<B>>> for ReadyOnce
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Bytes;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Bytes, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReplayBody<B>>) -> Self::Future {
        let was_ready = std::mem::replace(&mut self.ready, false);
        Box::pin(async move {
            if !was_ready {
                return Err("called without poll_ready".into());
            }
            Ok(drain(req.into_body()).await?.0)
        })
    }
}

#[tokio::test]
async fn the_service_made_ready_is_the_one_called() {
    let mut svc = BufferRequestBody::new(ReadyOnce { ready: false }, Default::default());
    for (len, limit) in [(10, 100), (1_000, 100), (0, 100)] {
        let data = pattern(len);
        // Read and buffered, read past the limit and forwarded, read nothing.
        let layer = BufferRequestBodyLayer::new().max_bytes(limit);
        svc = BufferRequestBody::new(svc.into_inner(), layer);
        let body = Chunks::new(chunked(&data, 64));
        let ready = ServiceExt::<Request<Chunks>>::ready(&mut svc)
            .await
            .unwrap();
        let got = ready.call(Request::new(body)).await;
        assert_eq!(got.unwrap(), data);
    }

    // A body still pending when `call` returns: the service goes with the future.
    let mut svc = BufferRequestBody::new(ReadyOnce { ready: false }, Default::default());
    let (tx, body) = channel_body();
    let ready = ServiceExt::<Request<ChannelBody>>::ready(&mut svc)
        .await
        .unwrap();
    let fut = ready.call(Request::new(body));
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"late"))))
        .unwrap();
    drop(tx);
    assert_eq!(fut.await.unwrap(), "late");
}

type FrameResult = Result<Frame<Bytes>, BoxError>;
type ChannelBody =
    http_body_util::StreamBody<futures::channel::mpsc::UnboundedReceiver<FrameResult>>;

/// A body fed by a channel: pending until the test sends more.
fn channel_body() -> (
    futures::channel::mpsc::UnboundedSender<FrameResult>,
    ChannelBody,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (tx, http_body_util::StreamBody::new(rx))
}

#[tokio::test]
async fn the_request_waits_for_a_slow_body_to_end() {
    let (tx, body) = channel_body();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = BufferRequestBodyLayer::new().layer(service_fn({
        let calls = calls.clone();
        move |req: Request<ReplayBody<_>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let copy = clone_request(&req);
            async move {
                let copy = drain(copy.ok_or("buffered")?.into_body()).await?.0;
                Ok::<_, BoxError>((copy, drain(req.into_body()).await?.0))
            }
        }
    }));
    let mut fut = Box::pin(svc.oneshot(Request::new(body)));
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"hel"))))
        .unwrap();
    assert!((&mut fut).now_or_never().is_none());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "sent before the body ended"
    );
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"lo"))))
        .unwrap();
    assert!((&mut fut).now_or_never().is_none());
    drop(tx);
    let (copy, original) = fut.await.unwrap();
    assert_eq!(copy, "hello");
    assert_eq!(original, "hello");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_always_ready_yields_to_other_tasks() {
    // 200 empty frames, each ready at once: reading yields (every 64 frames) before
    // it has read them all.
    let body = Chunks::new(std::iter::repeat_n(Bytes::new(), 200));
    let taken = body.taken.clone();
    let svc = BufferRequestBodyLayer::new().layer(replayer(1, taken.clone(), Default::default()));
    let mut fut = Box::pin(svc.oneshot(Request::new(body)));
    assert!((&mut fut).now_or_never().is_none());
    let read = taken.load(Ordering::SeqCst);
    assert!(0 < read && read < 200, "{read} frames read in one poll");
    let seen = fut.await.unwrap();
    assert!(seen.replayable);
    assert_eq!(taken.load(Ordering::SeqCst), 200);
    assert_eq!(seen.sent, vec![(Bytes::new(), None); 2]);
}

#[test]
fn the_response_future_is_send_when_its_parts_are() {
    fn is_send<T: Send>(_: &T) {}
    let svc = BufferRequestBodyLayer::new().layer(replayer(
        1,
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    ));
    let fut = svc.oneshot(Request::new(Chunks::new([])));
    is_send(&fut);
}

#[test]
fn replay_body_reports_its_size() {
    let body = ReplayBody::<Empty<Bytes>>::from_bytes("12345");
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let body = ReplayBody::streaming(Full::new(Bytes::from_static(b"123")));
    assert_eq!(body.size_hint().exact(), Some(3));
    assert!(!body.is_replayable());
    assert!(body.try_clone().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against the reference model: an unknown-length body is replayable exactly when it
    /// fits the limit, and every copy of it, like the forwarded stream, is the body's
    /// bytes, each once and in order.
    #[test]
    fn bodies_arrive_intact_whatever_their_chunking(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
        limit in 0usize..300,
        announce in any::<bool>(),
    ) {
        let data: Bytes = chunks.concat().into();
        let mut body = Chunks::new(chunks.into_iter().map(Bytes::from));
        if announce {
            body = body.exact(data.len() as u64);
        }
        let layer = BufferRequestBodyLayer::new().max_bytes(limit);
        let seen = futures::executor::block_on(send(layer, 2, body)).unwrap();

        let fits = data.len() <= limit;
        prop_assert_eq!(seen.replayable, fits);
        prop_assert_eq!(seen.sent.len(), if fits { 3 } else { 1 });
        if announce && !fits {
            prop_assert_eq!(seen.frames_taken_before_call, 0);
        }
        for (bytes, trailers) in &seen.sent {
            prop_assert_eq!(bytes, &data);
            prop_assert!(trailers.is_none());
        }
    }
}
