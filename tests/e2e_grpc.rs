//! End to end over loopback: a tonic server with buttress limits, called through real
//! TCP (HTTP/2) by a tonic client whose `Channel` is wrapped in buttress.
//!
//! Each test starts its own server on `127.0.0.1:0` and is bounded by [`LIMIT`]. Time is
//! real: the assertions rest on lower bounds a tokio sleep guarantees (it never ends
//! early) and on generous upper bounds.

use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::error::BoxError;
use buttress::grpc::{
    Deadline, GrpcClassifier, GrpcRetryPolicy, PropagateDeadlineLayer, Pushback, RETRY_PUSHBACK_MS,
    deadline_timeout_with_margin, grpc_timeout, into_status,
};
use buttress::http::{BufferRequestBodyLayer, ReplayBody, clone_request};
use buttress::pushback::grpc_retry_pushback_bounded;
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::RetryLayer;
use buttress::timeout::TimeoutLayer;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;
use tower::util::{MapErrLayer, MapRequestLayer, MapResponseLayer};

#[allow(
    unreachable_pub,
    missing_docs,
    missing_debug_implementations,
    clippy::all
)]
mod echo {
    include!("../examples/proto/echo.rs");
}

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoRequest, EchoResponse};

/// The longest any test may run.
const LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test finished within its bound");
}

/// What the handler saw: calls that reached it, calls that finished their work, and
/// calls whose work was dropped before it finished.
#[derive(Debug, Default)]
struct Seen {
    started: AtomicU32,
    finished: AtomicU32,
    dropped: AtomicU32,
    /// The `grpc-timeout` of the last call, as the handler read it.
    grpc_timeout: Mutex<Option<Duration>>,
}

/// Counts a call as dropped unless it was disarmed (its work finished).
struct DropGuard<'a>(&'a Seen, bool);

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Echoes; `slow:<ms>` works that long first.
#[derive(Debug, Clone)]
struct EchoService(Arc<Seen>);

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let seen = &*self.0;
        seen.started.fetch_add(1, Ordering::SeqCst);
        let asked = grpc_timeout(&req.metadata().clone().into_headers()).expect("valid");
        *seen
            .grpc_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = asked;
        let mut guard = DropGuard(seen, false);
        let message = req.into_inner().message;
        if let Some(ms) = message.strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        guard.1 = true;
        seen.finished.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(EchoResponse { message }))
    }
}

/// Serves `Echo` on an ephemeral loopback port behind `layer`; the server ends with the
/// test's runtime.
async fn serve<L>(layer: L, seen: Arc<Seen>) -> SocketAddr
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error: Into<BoxError> + Send,
{
    let listener = tokio::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(EchoServer::new(EchoService(seen)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connect over loopback")
}

fn request(message: &str) -> Request<EchoRequest> {
    Request::new(EchoRequest {
        message: message.to_owned(),
    })
}

/// The longest pushback the client honours.
const MAX_PUSHBACK: Duration = Duration::from_secs(5);

/// One attempt as the client's wire saw it: when it left, when its answer came, and the
/// pushback the answer carried.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    sent: Instant,
    answered: Option<Instant>,
    pushback: Option<Duration>,
}

#[tokio::test]
async fn an_overloaded_server_pushes_back_and_the_client_waits_that_long_before_retrying() {
    bounded(async {
        let seen = Arc::new(Seen::default());
        // One call a second: a second call at once is RESOURCE_EXHAUSTED.
        let limits = ServiceBuilder::new()
            .layer(MapErrLayer::new(into_status))
            .layer(RateLimitLayer::new(1, Duration::from_secs(1), 1).expect("valid limit"))
            .into_inner();
        let addr = serve(limits, Arc::clone(&seen)).await;
        let channel = channel(addr).await;

        // A bare client sees the refusal: its code, and when to come back.
        let mut bare = EchoClient::new(channel.clone());
        bare.echo(request("first")).await.expect("within the limit");
        let refused = bare
            .echo(request("second"))
            .await
            .expect_err("over the limit");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(refused.message(), "rate limited");
        match Pushback::from_status(&refused) {
            Some(Pushback::RetryAfter(d)) => {
                assert!(d > Duration::ZERO && d <= Duration::from_secs(1), "{d:?}")
            }
            other => panic!("expected a pushback, got {other:?}"),
        }
        assert_eq!(seen.started.load(Ordering::SeqCst), 1);

        // A client with retry (and a breaker and a timeout per attempt) waits it out.
        let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let (sent, answered) = (Arc::clone(&attempts), Arc::clone(&attempts));
        let stack = ServiceBuilder::new()
            .layer(MapErrLayer::new(into_status))
            .layer(BufferRequestBodyLayer::new())
            .layer(
                RetryLayer::builder()
                    .max_attempts(3)
                    .max_wait(MAX_PUSHBACK)
                    .policy(GrpcRetryPolicy::new())
                    .clone_request(clone_request::<tonic::body::Body>)
                    .build()
                    .expect("valid retry"),
            )
            .layer(
                CircuitBreakerLayer::builder()
                    .minimum_calls(5)
                    .build()
                    .expect("valid breaker")
                    .with_classifier(GrpcClassifier::new().ignore(Code::ResourceExhausted)),
            )
            .layer(TimeoutLayer::new(Duration::from_secs(5)).expect("valid timeout"))
            .layer(MapResponseLayer::new(
                move |res: http::Response<tonic::body::Body>| {
                    let pushback = res
                        .headers()
                        .get(RETRY_PUSHBACK_MS)
                        .and_then(|v| grpc_retry_pushback_bounded(v.as_bytes(), MAX_PUSHBACK));
                    let mut log = answered.lock().unwrap_or_else(PoisonError::into_inner);
                    let last = log.last_mut().expect("an attempt was sent");
                    last.answered = Some(Instant::now());
                    last.pushback = pushback;
                    res
                },
            ))
            .layer(MapRequestLayer::new(
                move |req: http::Request<ReplayBody<tonic::body::Body>>| {
                    sent.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Attempt {
                            sent: Instant::now(),
                            answered: None,
                            pushback: None,
                        });
                    req.map(tonic::body::Body::new)
                },
            ))
            .service(channel);
        let mut client = EchoClient::new(stack);

        let res = client
            .echo(request("third"))
            .await
            .expect("retried after the pushback");
        assert_eq!(res.get_ref().message, "third");

        let log = attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(log.len(), 2, "refused once, then admitted: {log:?}");
        let pushback = log[0].pushback.expect("the refusal carried a pushback");
        let refused_at = log[0].answered.expect("the first attempt was answered");
        let waited = log[1].sent - refused_at;
        assert!(
            waited >= pushback,
            "waited {waited:?} of a {pushback:?} pushback"
        );
        assert!(
            waited < pushback + Duration::from_secs(2),
            "waited {waited:?}"
        );
        assert_eq!(log[1].pushback, None);
        assert_eq!(seen.started.load(Ordering::SeqCst), 2);
    })
    .await;
}

/// How much earlier than the client's `grpc-timeout` the deadline servers give up.
const SERVER_MARGIN: Duration = Duration::from_millis(100);

async fn deadline_server(cap: Duration) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    // The client's channel runs its own timer for the `grpc-timeout` it sends, and
    // gives up with CANCELLED when it fires. The server's answer must come back before
    // that: with the default 5 ms margin it does on a quiet machine, but a test runner
    // busy with other tests can delay it longer, so these servers give up 100 ms early
    // (the margin itself is checked in the unit tests and the doctest).
    let layer = ServiceBuilder::new()
        .layer(MapErrLayer::new(into_status))
        .layer(deadline_timeout_with_margin(cap, SERVER_MARGIN).expect("valid config"))
        .into_inner();
    (serve(layer, Arc::clone(&seen)).await, seen)
}

/// Waits (bounded by the test's limit) until the server has dropped `n` calls' work.
async fn until_dropped(seen: &Seen, n: u32) {
    while seen.dropped.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn grpc_timeout_bounds_the_servers_work() {
    bounded(async {
        let (addr, seen) = deadline_server(Duration::from_secs(30)).await;
        let mut client = EchoClient::new(channel(addr).await);

        // 300 ms to do 10 s of work: the server drops the work and says so in time.
        let mut req = request("slow:10000");
        req.set_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let status = client.echo(req).await.expect_err("past its deadline");
        let took = start.elapsed();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "request timed out");
        assert!(
            took >= Duration::from_millis(300) - SERVER_MARGIN,
            "{took:?}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        until_dropped(&seen, 1).await;
        assert_eq!(seen.finished.load(Ordering::SeqCst), 0);

        // Within its deadline a call is untouched.
        let mut req = request("slow:10");
        req.set_timeout(Duration::from_secs(5));
        assert_eq!(
            client.echo(req).await.expect("in time").get_ref().message,
            "slow:10"
        );
        assert_eq!(seen.finished.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn the_servers_cap_bounds_calls_that_ask_for_longer_or_for_nothing() {
    bounded(async {
        let (addr, seen) = deadline_server(Duration::from_millis(200)).await;
        let mut client = EchoClient::new(channel(addr).await);

        // The client allows a minute; the server's cap is 200 ms.
        let mut req = request("slow:10000");
        req.set_timeout(Duration::from_secs(60));
        let start = Instant::now();
        let status = client.echo(req).await.expect_err("past the server's cap");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "request timed out");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "{took:?}"
        );

        // No deadline at all: the cap still applies.
        let status = client
            .echo(request("slow:10000"))
            .await
            .expect_err("past the server's cap");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        until_dropped(&seen, 2).await;
        assert_eq!(seen.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn a_propagated_deadline_reaches_the_server_and_bounds_its_work() {
    bounded(async {
        let (addr, seen) = deadline_server(Duration::from_secs(30)).await;
        // The client sets `grpc-timeout` from the call's `Deadline`; it has no timeout of
        // its own, so only the server's bound can end the call early.
        let stack = ServiceBuilder::new()
            .layer(PropagateDeadlineLayer::new())
            .service(channel(addr).await);
        let mut client = EchoClient::new(stack);

        let mut req = request("slow:10000");
        req.extensions_mut()
            .insert(Deadline::after(Duration::from_millis(300)));
        let start = Instant::now();
        let status = client.echo(req).await.expect_err("past its deadline");
        let took = start.elapsed();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "request timed out");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let asked = seen
            .grpc_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expect("the server read a grpc-timeout");
        assert!(
            asked <= Duration::from_millis(300) && asked > Duration::from_millis(200),
            "{asked:?}"
        );
        until_dropped(&seen, 1).await;
        assert_eq!(seen.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}
