//! A hyper-util HTTP client wrapped in the buttress pipeline, honouring `Retry-After`.
//!
//! `cargo run --example http_client --features http` starts a tiny server on loopback
//! whose `GET /flaky` answers `503 Service Unavailable` with `Retry-After: 1` twice, then
//! `200`, and whose `POST /orders` always answers `503`. The client's stack, outermost
//! first: request bodies made replayable, an overall timeout, retry with
//! `HttpRetryPolicy` (waiting what `Retry-After` asks, bounded; only idempotent requests
//! are sent again), a circuit breaker that counts 5xx and 429 as failures, a per-attempt
//! timeout, then hyper-util's pooled `Client`. The GET succeeds on its third attempt,
//! two seconds after the first; the POST is sent once and its 503 comes back as it is.
//! It runs unattended and exits with an error if anything is not so.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use buttress::Resilience;
use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::error::BoxError;
use buttress::http::{BufferRequestBodyLayer, HttpClassifier, HttpRetryPolicy, ReplayBody};
use buttress::retry::RetryLayer;
use buttress::timeout::TimeoutLayer;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// The longest `Retry-After` the client waits; a longer one ends the retries (the
/// response is returned).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The server: `GET /flaky` fails twice with `Retry-After: 1`, then answers; `POST
/// /orders` always fails. It prints when each request arrives.
async fn serve() -> Result<SocketAddr, BoxError> {
    let start = Instant::now();
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, HeaderValue::from_static("1"))],
            "busy, come back in a second",
        )
    };
    let app = Router::new()
        .route(
            "/flaky",
            get(move || {
                // Relaxed: a counter; nothing else is published through it.
                let n = flaky_calls.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    println!("  server: GET /flaky #{n} at {:.2?}", start.elapsed());
                    if n <= 2 {
                        unavailable().into_response()
                    } else {
                        "hello from /flaky".into_response()
                    }
                }
            }),
        )
        .route(
            "/orders",
            post(move || async move {
                println!("  server: POST /orders at {:.2?}", start.elapsed());
                unavailable()
            }),
        );
    let listener = tokio::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr = serve().await?;

    // hyper-util's pooled client, sending replayable bodies.
    let retry_policy = HttpRetryPolicy::new();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let pipeline = Resilience::new("api")
        .timeout(TimeoutLayer::new(Duration::from_secs(10))?)
        .retry(
            RetryLayer::builder()
                .max_attempts(4)
                .max_wait(MAX_RETRY_AFTER)
                // 500, 502, 503, 504 and 429 are retried, after their `Retry-After`
                // when they carry one; only idempotent requests with a buffered body
                // are sent again, anything else once.
                .policy(retry_policy)
                .clone_request(retry_policy.replay_policy())
                .build()?,
        )
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .name("api")
                .count_window(20)
                .minimum_calls(10)
                .build()?
                .with_classifier(HttpClassifier::new()),
        )
        .attempt_timeout(TimeoutLayer::new(Duration::from_secs(2))?);
    let api = ServiceBuilder::new()
        // Outside the retry: bodies up to 64 KiB are read once and replayed.
        .layer(BufferRequestBodyLayer::new())
        .layer(pipeline)
        .service(client);

    let start = Instant::now();
    println!("GET http://{addr}/flaky");
    let res = api
        .clone()
        .oneshot(Request::get(format!("http://{addr}/flaky")).body(Full::new(Bytes::new()))?)
        .await?;
    let took = start.elapsed();
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "  client: {status} after {took:.2?}: {}",
        String::from_utf8_lossy(&body)
    );
    if status != StatusCode::OK || took < Duration::from_secs(2) {
        return Err(
            format!("expected 200 after two waits of 1 s, got {status} after {took:?}").into(),
        );
    }

    let start = Instant::now();
    println!("POST http://{addr}/orders");
    let res = api
        .oneshot(
            Request::post(format!("http://{addr}/orders"))
                .body(Full::new(Bytes::from_static(b"{\"item\":\"widget\"}")))?,
        )
        .await?;
    let took = start.elapsed();
    println!(
        "  client: {} after {took:.2?} (a POST is not retried)",
        res.status()
    );
    if res.status() != StatusCode::SERVICE_UNAVAILABLE || took >= Duration::from_secs(1) {
        return Err(format!(
            "expected the POST's 503 at once, got {} after {took:?}",
            res.status()
        )
        .into());
    }
    println!("done");
    Ok(())
}
