//! A tonic gRPC server with server-side limits.
//!
//! The `Echo` service (`proto/echo.proto`) behind, outermost first:
//!
//! - `MapErrLayer::new(buttress::grpc::into_status)`: every rejection reaches the client
//!   as a `Status` (tonic answers a `Status` error with a trailers-only response; any
//!   other error would reset the stream);
//! - a timeout bounded by the request's `grpc-timeout` (a little less, and at most 5 s):
//!   the handler is dropped before the client's deadline passes, `DEADLINE_EXCEEDED`;
//! - a rate limiter (20 calls a second, bursts of 10) and a bulkhead (4 calls at once):
//!   over either, `RESOURCE_EXHAUSTED`, with `grpc-retry-pushback-ms` saying when to come
//!   back where the limiter knows.
//!
//! A request whose message is `slow:<ms>` takes that long to answer.
//!
//! ```sh
//! cargo run --example tonic_server --features grpc                   # 127.0.0.1:50051
//! cargo run --example tonic_server --features grpc -- 50052          # or PORT=50052
//! cargo run --example tonic_server --features grpc -- --self-test
//! ```
//!
//! `--self-test` (or `SELF_TEST=1`) serves on an ephemeral port, calls itself (a call, a
//! burst past the bulkhead, a burst past the rate limit, a call past its deadline),
//! prints each answer and exits with an error if one is not what it should be.

use buttress::bulkhead::BulkheadLayer;
use buttress::error::BoxError;
use buttress::grpc::{Pushback, deadline_timeout, into_status};
use buttress::rate_limit::RateLimitLayer;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;
use tower::util::MapErrLayer;

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

/// The longest any call may take, whatever its `grpc-timeout` says.
const MAX_CALL: Duration = Duration::from_secs(5);

/// Echoes the message; `slow:<ms>` sleeps that long first.
#[derive(Debug, Clone, Copy)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let message = req.into_inner().message;
        if let Some(ms) = message.strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(Response::new(EchoResponse { message }))
    }
}

/// Serves `Echo` with the limits of the module docs on `listener` until the process ends.
async fn serve(listener: tokio::net::TcpListener) -> Result<(), BoxError> {
    let limits = ServiceBuilder::new()
        .layer(MapErrLayer::new(into_status))
        .layer(
            // Each call may take what its grpc-timeout allows (less a small margin, so
            // this layer's DEADLINE_EXCEEDED answers before tonic's own timer would say
            // CANCELLED), and never more than MAX_CALL.
            deadline_timeout(MAX_CALL)?,
        )
        .layer(RateLimitLayer::new(20, Duration::from_secs(1), 10)?)
        .layer(BulkheadLayer::new(4)?)
        .into_inner();
    Server::builder()
        .layer(limits)
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let self_test = args.iter().any(|a| a == "--self-test")
        || std::env::var("SELF_TEST").is_ok_and(|v| !v.is_empty() && v != "0");
    let port: u16 = match args.iter().find(|a| !a.starts_with("--")) {
        Some(p) => p.parse()?,
        None => match std::env::var("PORT") {
            Ok(p) => p.parse()?,
            Err(_) => 50051,
        },
    };
    let listener = tokio::net::TcpListener::bind((
        IpAddr::from([127, 0, 0, 1]),
        if self_test { 0 } else { port },
    ))
    .await?;
    let addr = listener.local_addr()?;
    if !self_test {
        println!("serving echo.Echo on {addr}");
        println!(
            "  cargo run --example tonic_client --features grpc,http -- --server http://{addr}"
        );
        return serve(listener).await;
    }
    let server = tokio::spawn(serve(listener));
    let result = self_test_run(addr).await;
    server.abort();
    result
}

/// A call's answer, printed: the message, or the status with its pushback.
fn show(what: &str, result: &Result<Response<EchoResponse>, Status>) {
    match result {
        Ok(res) => println!("{what}: ok {:?}", res.get_ref().message),
        Err(status) => println!(
            "{what}: {:?} {:?}{}",
            status.code(),
            status.message(),
            match Pushback::from_status(status) {
                Some(p) => format!(" (pushback: {p:?})"),
                None => String::new(),
            }
        ),
    }
}

fn expect(what: &str, ok: bool) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("self-test failed: {what}").into())
    }
}

fn request(message: &str) -> Request<EchoRequest> {
    Request::new(EchoRequest {
        message: message.to_owned(),
    })
}

async fn self_test_run(addr: SocketAddr) -> Result<(), BoxError> {
    println!("self-test against {addr}");
    let client = EchoClient::connect(format!("http://{addr}")).await?;

    let r = client.clone().echo(request("hello")).await;
    show("one call", &r);
    expect("a call passes", r.is_ok())?;

    // Six slow calls at once against a bulkhead of four.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move { c.echo(request("slow:200")).await })
        })
        .collect();
    let mut full = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let r = call.await?;
        show(&format!("burst call {i}"), &r);
        if r.as_ref()
            .is_err_and(|s| s.code() == Code::ResourceExhausted && s.message() == "bulkhead full")
        {
            full += 1;
        }
    }
    expect("the bulkhead refuses the calls past four", full == 2)?;

    // Past the rate limit: its refusal says when to come back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut pushback = None;
    for i in 0..30 {
        let r = client.clone().echo(request("quick")).await;
        if let Err(status) = &r {
            show(&format!("rapid call {i}"), &r);
            pushback = Pushback::from_status(status);
            break;
        }
    }
    expect(
        "the rate limiter pushes back",
        matches!(pushback, Some(Pushback::RetryAfter(d)) if d <= Duration::from_millis(50)),
    )?;

    // A deadline of 100 ms for a call that would take 3 s: cut at the server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut req = request("slow:3000");
    req.set_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let r = client.clone().echo(req).await;
    show("deadline 100ms, 3 s of work", &r);
    expect(
        "DEADLINE_EXCEEDED well before the work would end",
        r.is_err_and(|s| s.code() == Code::DeadlineExceeded && s.message() == "request timed out")
            && start.elapsed() < Duration::from_secs(2),
    )?;
    println!("self-test passed");
    Ok(())
}
