//! A tonic client whose `Channel` is wrapped in retry, a circuit breaker and timeouts.
//!
//! The stack under the generated `EchoClient`, outermost first:
//!
//! - `MapErrLayer::new(buttress::grpc::into_status)`: the client's own rejections (circuit
//!   open, timed out) reach the caller as a `Status` (`UNAVAILABLE`, `DEADLINE_EXCEEDED`);
//! - request bodies buffered so that an attempt can be sent again (a unary request is one
//!   small message);
//! - an overall timeout, then retry with `GrpcRetryPolicy`: a trailers-only
//!   `UNAVAILABLE` or `RESOURCE_EXHAUSTED` is retried after the server's
//!   `grpc-retry-pushback-ms` (a negative or too long pushback ends the retries), an
//!   `UNAVAILABLE` without one after the backoff;
//! - a circuit breaker counting gRPC failures by code (`RESOURCE_EXHAUSTED` ignored: the
//!   server asking to slow down is not the server failing), and a per-attempt timeout;
//! - `PropagateDeadlineLayer`: each attempt's `grpc-timeout` is what is left of the
//!   call's `Deadline` (an extension on the `tonic::Request`), at most the attempt
//!   timeout;
//! - tonic's `Channel`.
//!
//! ```sh
//! cargo run --example tonic_client --features grpc,http              # its own server
//! cargo run --example tonic_client --features grpc,http -- --server http://127.0.0.1:50051
//! ```
//!
//! Without `--server` it starts an in-process server that admits one call every 400 ms,
//! makes three calls back to back, and shows each attempt: the second and third calls
//! are refused with a pushback, wait exactly that, and succeed. It exits with an error
//! if a call fails or no retry waited its pushback.

use buttress::Resilience;
use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::error::BoxError;
use buttress::grpc::{
    Deadline, GrpcClassifier, GrpcRetryPolicy, PropagateDeadlineLayer, into_status,
};
use buttress::http::{BufferRequestBodyLayer, ReplayBody, clone_request};
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::RetryLayer;
use buttress::timeout::TimeoutLayer;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;
use tower::util::{MapErrLayer, MapRequestLayer};

#[allow(
    unreachable_pub,
    missing_docs,
    missing_debug_implementations,
    clippy::all
)]
mod echo {
    include!("proto/echo.rs");
}

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoRequest, EchoResponse};

/// The longest pushback the client waits; a longer one ends the retries.
const MAX_PUSHBACK: Duration = Duration::from_secs(5);

/// The longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The in-process server: echoes, one call every 400 ms, refusals as `Status`.
#[derive(Debug, Clone, Copy)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            message: req.into_inner().message,
        }))
    }
}

async fn start_server() -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
    let addr = listener.local_addr()?;
    let limits = ServiceBuilder::new()
        .layer(MapErrLayer::new(into_status))
        .layer(RateLimitLayer::new(1, Duration::from_millis(400), 1)?)
        .into_inner();
    tokio::spawn(
        Server::builder()
            .layer(limits)
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok(format!("http://{addr}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, own_server) = match args.iter().position(|a| a == "--server") {
        Some(i) => (
            args.get(i + 1).ok_or("--server needs a URL")?.clone(),
            false,
        ),
        None => (start_server().await?, true),
    };
    println!("calling {url}");
    let channel = Endpoint::from_shared(url)?.connect().await?;

    // Each attempt as it leaves, and the answer it got: to show the waits.
    let start = Instant::now();
    let attempts: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let log = Arc::clone(&attempts);

    let breaker = CircuitBreakerLayer::builder()
        .name("echo")
        .count_window(20)
        .minimum_calls(5)
        .wait_in_open(Duration::from_secs(2))
        .build()?
        .with_classifier(GrpcClassifier::new().ignore(Code::ResourceExhausted));
    let pipeline = Resilience::new("echo")
        .timeout(TimeoutLayer::new(Duration::from_secs(10))?)
        .retry(
            RetryLayer::builder()
                .max_attempts(4)
                .max_wait(MAX_PUSHBACK)
                // UNAVAILABLE, and RESOURCE_EXHAUSTED with a pushback, after the
                // server's `grpc-retry-pushback-ms` (or the backoff without one).
                .policy(GrpcRetryPolicy::new())
                // gRPC calls are POSTs: copy them whenever the body is buffered. The
                // policy retries codes that mean the call was not processed, but also
                // transport errors and attempt timeouts, after which the server may
                // have processed it: Echo may run twice. For a method that must not,
                // copy by path and return None for it (it is then sent once).
                .clone_request(clone_request::<tonic::body::Body>)
                .build()?,
        )
        .circuit_breaker(breaker)
        .attempt_timeout(TimeoutLayer::new(ATTEMPT_TIMEOUT)?);
    let stack = ServiceBuilder::new()
        .layer(MapErrLayer::new(into_status))
        // Buffers each request body (up to 64 KiB) so that a retry can send it again.
        // For unary calls only: a streaming call's body would be read until it ends
        // before anything is sent, which a bidirectional call never does. Give
        // streaming methods a client without this stack.
        .layer(BufferRequestBodyLayer::new())
        .layer(pipeline)
        // Each attempt tells the server how long it has: what is left of the call's
        // `Deadline`, at most the attempt timeout.
        .layer(PropagateDeadlineLayer::with_timeout(ATTEMPT_TIMEOUT)?)
        .layer(MapRequestLayer::new(
            move |req: http::Request<ReplayBody<tonic::body::Body>>| {
                let at = start.elapsed();
                let grpc_timeout = req.headers().get("grpc-timeout").cloned();
                println!("  attempt at {at:.2?}, grpc-timeout {grpc_timeout:?}");
                log.lock().unwrap_or_else(PoisonError::into_inner).push(at);
                req.map(tonic::body::Body::new)
            },
        ))
        .service(channel);
    let client = EchoClient::new(stack);

    let calls = 3;
    for n in 1..=calls {
        let message = format!("hello #{n}");
        println!("call {n}: {message:?}");
        // The whole call, retries included, has a second: a retry tells the server
        // what is left of it.
        let mut req = Request::new(EchoRequest { message });
        req.extensions_mut()
            .insert(Deadline::after(Duration::from_secs(1)));
        match client.clone().echo(req).await {
            Ok(res) => println!(
                "  ok {:?} at {:.2?}",
                res.get_ref().message,
                start.elapsed()
            ),
            Err(status) => {
                println!("  {:?} {:?}", status.code(), status.message());
                return Err(status.into());
            }
        }
    }

    let attempts = attempts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    println!("{} attempts for {calls} calls", attempts.len());
    if own_server {
        // One call per 400 ms: every call after the first was refused once, and its
        // retry left no earlier than the pushback allowed.
        let waited = attempts
            .windows(2)
            .filter(|w| w[1] - w[0] >= Duration::from_millis(300))
            .count();
        if attempts.len() <= calls || waited == 0 {
            return Err(
                format!("expected retries after a pushback, saw attempts at {attempts:?}").into(),
            );
        }
    }
    println!("done");
    Ok(())
}
