//! gRPC retries and deadlines against a real tonic server and client, in memory,
//! through tower's `Service` API on paused time.
#![cfg(feature = "grpc")]

use buttress::error::BoxError;
use buttress::grpc::{
    DEFAULT_MARGIN, Deadline, GrpcRetryPolicy, PropagateDeadlineLayer, clone_request,
    deadline_timeout, into_status, response_code,
};
use buttress::rate_limit::error::RateLimited;
use buttress::retry::{Backoff, Jitter, RetryLayer};
use buttress::timeout::error::{DeadlinePassed, Elapsed};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

#[allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic)]
mod echo {
    include!("../examples/proto/echo.rs");
}

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoRequest, EchoResponse};

/// What the server does with a call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Echo,
    /// An error status with this `grpc-retry-pushback-ms` value, if any.
    Fail(Code, Option<&'static str>),
    /// Works for this long before answering.
    Slow(Duration),
}

/// When a call arrived, and the `grpc-timeout` it carried.
type Arrival = (Instant, Option<String>);

/// A server that gives the `n`-th call (from 0) `answers[n]` (or the last one), and
/// records when each call arrived, the `grpc-timeout` it carried, and whether a slow
/// handler was dropped before it finished.
#[derive(Debug, Clone)]
struct Server {
    answers: Arc<Vec<Answer>>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    dropped: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl Server {
    fn new(answers: Vec<Answer>) -> Self {
        Server {
            answers: Arc::new(answers),
            arrivals: Arc::default(),
            dropped: Arc::default(),
            finished: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.arrivals.lock().expect("not poisoned").len()
    }

    fn arrived_at(&self, start: Instant) -> Vec<Duration> {
        let arrivals = self.arrivals.lock().expect("not poisoned");
        arrivals.iter().map(|(at, _)| *at - start).collect()
    }

    fn timeouts(&self) -> Vec<Option<String>> {
        let arrivals = self.arrivals.lock().expect("not poisoned");
        arrivals.iter().map(|(_, t)| t.clone()).collect()
    }
}

/// Sets a flag when dropped before it is disarmed.
struct DropFlag(Arc<AtomicBool>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[tonic::async_trait]
impl Echo for Server {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let n = {
            let mut arrivals = self.arrivals.lock().expect("not poisoned");
            arrivals.push((Instant::now(), timeout));
            arrivals.len() - 1
        };
        let message = req.into_inner().message;
        match self.answers[n.min(self.answers.len() - 1)] {
            Answer::Echo => Ok(Response::new(EchoResponse { message })),
            Answer::Fail(code, pushback) => {
                let mut status = Status::new(code, "try later");
                if let Some(v) = pushback {
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", v.parse().expect("ascii"));
                }
                Err(status)
            }
            Answer::Slow(d) => {
                let mut flag = DropFlag(self.dropped.clone(), false);
                tokio::time::sleep(d).await;
                flag.1 = true;
                self.finished.store(true, Ordering::SeqCst);
                Ok(Response::new(EchoResponse { message }))
            }
        }
    }
}

/// A generated client over `server`, in memory (no socket): each call goes through
/// tonic's encoding, the server's, and back.
fn client(server: &Server) -> EchoClient<EchoServer<Server>> {
    EchoClient::new(EchoServer::new(server.clone()))
}

/// A client stub call as a tower service: what an application wraps in the retry layer.
fn stub(
    server: &Server,
) -> impl Service<
    Request<EchoRequest>,
    Response = Response<EchoResponse>,
    Error = Status,
    Future = impl Send,
> + Clone {
    let client = client(server);
    service_fn(move |req: Request<EchoRequest>| {
        let mut client = client.clone();
        async move { client.echo(req).await }
    })
}

fn hello() -> Request<EchoRequest> {
    Request::new(EchoRequest {
        message: "hello".into(),
    })
}

#[tokio::test(start_paused = true)]
async fn resource_exhausted_with_pushback_waits_that_long_then_retries() {
    let server = Server::new(vec![
        Answer::Fail(Code::ResourceExhausted, Some("1500")),
        Answer::Echo,
    ]);
    let retry = RetryLayer::builder()
        .policy(GrpcRetryPolicy::new())
        .clone_request(clone_request)
        .build()
        .expect("valid config");
    let svc = ServiceBuilder::new().layer(retry).service(stub(&server));

    let start = Instant::now();
    let res = svc.oneshot(hello()).await.expect("the retry succeeds");
    assert_eq!(res.into_inner().message, "hello");
    assert_eq!(
        server.arrived_at(start),
        [Duration::ZERO, Duration::from_millis(1500)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_buttress_rejection_on_the_server_is_pushback_for_the_client() {
    // The server's own limiter refuses the first call; into_status carries its
    // retry_after to the client as pushback.
    let limited = Arc::new(AtomicU32::new(0));
    let seen = limited.clone();
    let server = Server::new(vec![Answer::Echo]);
    let inner = EchoServer::new(server.clone());
    let guarded = service_fn(move |req: http::Request<tonic::body::Body>| {
        let mut inner = inner.clone();
        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                let err: BoxError = Box::new(RateLimited::new(Duration::from_millis(250)));
                return Ok(into_status(err).into_http());
            }
            inner.call(req).await
        }
    });
    let client = EchoClient::new(guarded);
    let stub = service_fn(move |req: Request<EchoRequest>| {
        let mut client = client.clone();
        async move { client.echo(req).await }
    });
    let retry = RetryLayer::builder()
        .policy(GrpcRetryPolicy::new())
        .clone_request(clone_request)
        .build()
        .expect("valid config");
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(retry)
        .service(stub)
        .oneshot(hello())
        .await
        .expect("the retry succeeds");
    assert_eq!(res.into_inner().message, "hello");
    assert_eq!(limited.load(Ordering::SeqCst), 2);
    assert_eq!(server.arrived_at(start), [Duration::from_millis(250)]);
}

#[tokio::test(start_paused = true)]
async fn negative_or_missing_pushback_stops_where_it_must() {
    let cases = [
        // The server asks for no retry.
        (
            Answer::Fail(Code::Unavailable, Some("-1")),
            Code::Unavailable,
        ),
        (
            Answer::Fail(Code::Unavailable, Some("soon")),
            Code::Unavailable,
        ),
        // RESOURCE_EXHAUSTED without pushback is not retried.
        (
            Answer::Fail(Code::ResourceExhausted, None),
            Code::ResourceExhausted,
        ),
        // Not a retried code at all.
        (
            Answer::Fail(Code::InvalidArgument, Some("10")),
            Code::InvalidArgument,
        ),
    ];
    for (answer, code) in cases {
        let server = Server::new(vec![answer, Answer::Echo]);
        let retry = RetryLayer::builder()
            .policy(GrpcRetryPolicy::new())
            .clone_request(clone_request)
            .build()
            .expect("valid config");
        let start = Instant::now();
        let err = ServiceBuilder::new()
            .layer(retry)
            .service(stub(&server))
            .oneshot(hello())
            .await
            .expect_err("not retried");
        let status = err.downcast::<Status>().expect("the server's status");
        assert_eq!(status.code(), code, "{answer:?}");
        assert_eq!(server.calls(), 1, "{answer:?}");
        assert_eq!(start.elapsed(), Duration::ZERO, "{answer:?}");
    }

    // UNAVAILABLE without pushback is retried after the backoff (40 ms, without
    // jitter, so that the retry's time is exact).
    let server = Server::new(vec![Answer::Fail(Code::Unavailable, None), Answer::Echo]);
    let retry = RetryLayer::builder()
        .policy(GrpcRetryPolicy::new())
        .clone_request(clone_request)
        .backoff(Backoff::constant(Duration::from_millis(40)).with_jitter(Jitter::None))
        .build()
        .expect("valid config");
    let start = Instant::now();
    ServiceBuilder::new()
        .layer(retry)
        .service(stub(&server))
        .oneshot(hello())
        .await
        .expect("the retry succeeds");
    assert_eq!(
        server.arrived_at(start),
        [Duration::ZERO, Duration::from_millis(40)]
    );
    assert_eq!(start.elapsed(), Duration::from_millis(40));
}

/// A unary gRPC request framed by hand (flag byte, big-endian length, protobuf bytes),
/// with a buffered body a retry can copy.
fn raw_request(message: &str) -> http::Request<Bytes> {
    let bytes = prost::Message::encode_to_vec(&EchoRequest {
        message: message.to_owned(),
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&bytes);
    http::Request::builder()
        .method("POST")
        .uri("/echo.Echo/Echo")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Bytes::from(frame))
        .expect("valid request")
}

fn copy_raw(req: &http::Request<Bytes>) -> Option<http::Request<Bytes>> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

#[tokio::test(start_paused = true)]
async fn a_trailers_only_response_of_a_raw_channel_is_retried() {
    let server = Server::new(vec![
        Answer::Fail(Code::Unavailable, Some("700")),
        Answer::Echo,
    ]);
    // The service a tonic `Channel` is: http requests in, http responses out.
    let inner = EchoServer::new(server.clone());
    let channel = service_fn(move |req: http::Request<Bytes>| {
        let mut inner = inner.clone();
        async move {
            let req = req.map(|b| tonic::body::Body::new(http_body_util::Full::new(b)));
            inner.call(req).await
        }
    });
    let retry = RetryLayer::builder()
        .policy(GrpcRetryPolicy::new())
        .clone_request(copy_raw)
        .build()
        .expect("valid config");
    let start = Instant::now();
    let res = ServiceBuilder::new()
        .layer(retry)
        .service(channel)
        .oneshot(raw_request("hi"))
        .await
        .expect("a response");
    assert_eq!(res.status(), http::StatusCode::OK);
    assert_eq!(
        response_code(&res),
        None,
        "the success status is in the trailers"
    );
    assert_eq!(
        server.arrived_at(start),
        [Duration::ZERO, Duration::from_millis(700)]
    );
}

/// A server stack bounded by the client's `grpc-timeout` (at most `max`), its errors
/// turned into statuses.
fn bounded_server(
    server: &Server,
    max: Duration,
) -> impl Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<tonic::body::Body>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    let inner = ServiceBuilder::new()
        .layer(deadline_timeout(max).expect("valid config"))
        .service(EchoServer::new(server.clone()));
    service_fn(move |req: http::Request<tonic::body::Body>| {
        let mut inner = inner.clone();
        async move {
            let ready = ServiceExt::<http::Request<tonic::body::Body>>::ready(&mut inner).await?;
            match ready.call(req).await {
                Ok(res) => Ok(res),
                Err(e) => Ok(into_status(e).into_http()),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_bounds_the_servers_work() {
    let server = Server::new(vec![Answer::Slow(Duration::from_secs(10))]);
    let inner = ServiceBuilder::new()
        .layer(deadline_timeout(Duration::from_secs(30)).expect("valid config"))
        .service(EchoServer::new(server.clone()));

    let mut req = raw_request("slow").map(|b| tonic::body::Body::new(http_body_util::Full::new(b)));
    req.headers_mut()
        .insert("grpc-timeout", "100m".parse().expect("ascii"));
    let start = Instant::now();
    let err = inner.oneshot(req).await.expect_err("timed out");
    assert!(err.is::<Elapsed>());
    // Cut the default margin before the client's 100 ms, so that in a real tonic
    // server this layer answers before tonic's own timer (which says CANCELLED).
    assert_eq!(start.elapsed(), Duration::from_millis(100) - DEFAULT_MARGIN);
    assert!(
        server.dropped.load(Ordering::SeqCst),
        "the handler was dropped"
    );
    assert!(!server.finished.load(Ordering::SeqCst));
    assert_eq!(into_status(err).code(), Code::DeadlineExceeded);

    // A malformed header is no bound of the client's: the server's own maximum holds.
    let server = Server::new(vec![Answer::Slow(Duration::from_secs(10))]);
    let svc = bounded_server(&server, Duration::from_secs(2));
    let mut req = raw_request("slow").map(|b| tonic::body::Body::new(http_body_util::Full::new(b)));
    req.headers_mut()
        .insert("grpc-timeout", "soon".parse().expect("ascii"));
    let start = Instant::now();
    let res = svc.oneshot(req).await.expect("a response");
    assert_eq!(response_code(&res), Some(Code::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(server.dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_client_propagates_what_is_left_of_its_deadline() {
    // Client -> PropagateDeadline -> server bounded by grpc-timeout (at most 30 s).
    let server = Server::new(vec![Answer::Echo, Answer::Slow(Duration::from_secs(10))]);
    let channel = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer::with_timeout(Duration::from_secs(5)).expect("valid"))
        .service(bounded_server(&server, Duration::from_secs(30)));
    let mut client = EchoClient::new(channel);

    // The request being served has 250 ms left; 100 ms go by before the call.
    let start = Instant::now();
    let mut req = hello();
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(250)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.echo(req).await.expect("answered");

    // The slow call: the server gives up when the propagated deadline passes.
    let mut req = hello();
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(400)));
    let called = Instant::now();
    let status = client.echo(req).await.expect_err("deadline exceeded");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(
        called.elapsed(),
        Duration::from_millis(400) - DEFAULT_MARGIN
    );
    assert!(server.dropped.load(Ordering::SeqCst));

    assert_eq!(
        server.timeouts(),
        [Some("150000u".to_owned()), Some("400000u".to_owned())]
    );
    assert_eq!(
        server.arrived_at(start),
        [Duration::from_millis(100), Duration::from_millis(100)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_fails_at_once_without_a_call() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |req: http::Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        let header = req.headers().get("grpc-timeout").cloned();
        async move { Ok::<_, BoxError>(header) }
    });
    let mut svc = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer::new())
        .service(inner);

    let deadline = Deadline::after(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut req = http::Request::new(());
    req.extensions_mut().insert(deadline);
    let start = Instant::now();
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect_err("passed");
    assert!(err.is::<DeadlinePassed>());
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A shorter grpc-timeout already on the request is kept; a longer one is cut to
    // what is left; no deadline and no timeout leaves the request alone.
    let sent = |header: Option<&'static str>, left: Option<Duration>| {
        let mut req = http::Request::new(());
        if let Some(h) = header {
            req.headers_mut()
                .insert("grpc-timeout", h.parse().expect("ascii"));
        }
        if let Some(left) = left {
            req.extensions_mut().insert(Deadline::after(left));
        }
        req
    };
    let mut call = async |req| {
        svc.ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("called")
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let ms = Duration::from_millis;
    assert_eq!(
        call(sent(Some("20m"), Some(ms(300)))).await.as_deref(),
        Some("20m")
    );
    assert_eq!(
        call(sent(Some("2S"), Some(ms(300)))).await.as_deref(),
        Some("300000u")
    );
    assert_eq!(
        call(sent(Some("bad"), Some(ms(300)))).await.as_deref(),
        Some("300000u")
    );
    assert_eq!(call(sent(Some("7S"), None)).await.as_deref(), Some("7S"));
    assert_eq!(call(sent(None, None)).await, None);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

/// A retry whose wait outlasts the call's `Deadline` (the server pushed back for longer
/// than was left) meets the deadline layer's refusal, which is final: no further
/// attempt, no other wait, and the breaker around the attempts counts nothing, so a
/// healthy server pushing back cannot open it.
#[tokio::test(start_paused = true)]
async fn a_deadline_passed_during_a_retry_ends_the_call_and_is_not_a_failure() {
    use buttress::circuit_breaker::{CircuitBreakerLayer, State};
    use buttress::error::{RejectionKind, rejection};
    use buttress::grpc::GrpcClassifier;

    let server = Server::new(vec![Answer::Fail(Code::ResourceExhausted, Some("1200"))]);
    let inner = EchoServer::new(server.clone());
    let channel = service_fn(move |req: http::Request<Bytes>| {
        let mut inner = inner.clone();
        async move {
            let req = req.map(|b| tonic::body::Body::new(http_body_util::Full::new(b)));
            inner.call(req).await
        }
    });
    // The copy keeps the extensions, where the `Deadline` travels.
    let copy = |req: &http::Request<Bytes>| {
        let mut copy = copy_raw(req)?;
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    };
    let breaker = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(2)
        .build()
        .expect("valid config")
        .with_classifier(GrpcClassifier::new().ignore(Code::ResourceExhausted));
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .max_attempts(4)
                .max_wait(Duration::from_secs(5))
                .policy(GrpcRetryPolicy::new())
                .clone_request(copy)
                .build()
                .expect("valid config"),
        )
        .layer(breaker)
        .layer(PropagateDeadlineLayer::new())
        .service(channel);

    for _ in 0..3 {
        let start = Instant::now();
        let mut req = raw_request("hi");
        req.extensions_mut()
            .insert(Deadline::after(Duration::from_secs(1)));
        let err = svc
            .clone()
            .oneshot(req)
            .await
            .expect_err("the deadline passed");
        assert_eq!(
            rejection(&*err).map(|r| r.kind()),
            Some(RejectionKind::DeadlinePassed),
            "{err}"
        );
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(1200),
            "one wait only"
        );
    }
    // Three calls, each one attempt sent; nothing counted against the server.
    assert_eq!(server.arrivals.lock().unwrap().len(), 3);
    let m = handle.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!(m.failures, 0);
}
