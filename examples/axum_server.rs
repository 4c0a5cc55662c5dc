//! An axum service that stays up while the service it depends on does not.
//!
//! `GET /api/quote/{item}` calls a flaky in-process downstream (it fails for 4 s out of
//! every 16) through the buttress pipeline: an overall timeout, retries with backoff and
//! a retry budget, a circuit breaker, a per-attempt timeout and a bulkhead. While the
//! breaker is open the route answers `503` with `Retry-After` at once instead of piling
//! calls on the downstream. Around the routes:
//!
//! - a rate limit per client IP on every `/api` route (`ConnectInfo`), and a stricter
//!   one on `GET /api/report`; over the limit the answer is `429` with `Retry-After`;
//! - rejections are answered by `HandleErrorLayer::new(buttress::http::handle_error)`;
//! - `/health` (liveness) and `/ready` (readiness: `503` while the downstream's breaker,
//!   registered as critical, is open and waiting), from a `HealthRegistry`;
//! - `/metrics` in the Prometheus text format (`metrics-exporter-prometheus`): buttress's
//!   own metrics (feature `metrics`: breaker calls and state, retries, bulkhead load,
//!   rejections by reason, labelled `name="downstream"`, `"downstream.attempt"` for the
//!   attempt timeout, and `"per_client"` and `"reports"` for the two rate limiters)
//!   beside the app's counters.
//!   The recorder is installed before the layers are built, since each layer registers
//!   its handles once, when it is built.
//!
//! ```sh
//! cargo run --example axum_server --features http,health,metrics            # port 3000
//! cargo run --example axum_server --features http,health,metrics -- 8080    # or PORT=8080
//! cargo run --example axum_server --features http,health,metrics -- --self-test
//! ```
//!
//! `--self-test` (or `SELF_TEST=1`) serves on an ephemeral port, makes its own requests
//! (the downstream goes down and comes back on cue), prints each answer, and exits with
//! an error if any answer is not the expected one.

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Path};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use buttress::Resilience;
use buttress::bulkhead::BulkheadLayer;
use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::error::{BoxError, rejection};
use buttress::health::HealthRegistry;
use buttress::http::{ErrorResponse, handle_error};
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::{Backoff, Jitter, RetryLayer};
use buttress::timeout::TimeoutLayer;
use http_body_util::{BodyExt, Empty};
use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// How long the breaker stays open before it lets a probe through.
const WAIT_IN_OPEN: Duration = Duration::from_secs(1);

/// The application's own counters, registered once: a call only increments a handle.
#[derive(Clone)]
struct Counters {
    ok: Counter,
    rejected: Counter,
    failed: Counter,
}

impl Counters {
    fn register() -> Self {
        let name = "example_quote_requests_total";
        Counters {
            ok: metrics::counter!(name, "outcome" => "ok"),
            rejected: metrics::counter!(name, "outcome" => "rejected"),
            failed: metrics::counter!(name, "outcome" => "failed"),
        }
    }
}

/// The downstream: answers after a few milliseconds, or fails while `down` is set.
fn downstream(
    down: Arc<AtomicBool>,
) -> impl Service<String, Response = String, Error = std::io::Error, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |item: String| {
        let down = Arc::clone(&down);
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            // Relaxed: a lone flag, no other data is published through it.
            if down.load(Ordering::Relaxed) {
                Err(std::io::Error::other("downstream unavailable"))
            } else {
                Ok(format!("{{\"item\":{item:?},\"price\":42}}"))
            }
        }
    })
}

/// What the example serves, and the flag that breaks its downstream.
struct App {
    router: Router,
    down: Arc<AtomicBool>,
}

fn app(prometheus: PrometheusHandle) -> Result<App, BoxError> {
    let down = Arc::new(AtomicBool::new(false));

    // The downstream's stack. The pipeline puts each part in its place (timeout, retry,
    // breaker, attempt timeout, bulkhead, outermost first) whatever the order here.
    let breaker = CircuitBreakerLayer::builder()
        .name("downstream")
        .count_window(10)
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .wait_in_open(WAIT_IN_OPEN)
        .permitted_calls_in_half_open(2)
        .on_transition(|t| println!("breaker {}: {} -> {}", t.name.unwrap_or("?"), t.from, t.to))
        .build()?;
    let health = HealthRegistry::new();
    health.register_critical(breaker.handle())?;
    let pipeline = Resilience::new("downstream")
        .timeout(TimeoutLayer::new(Duration::from_secs(2))?)
        .retry(
            RetryLayer::builder()
                .max_attempts(3)
                .backoff(
                    Backoff::exponential(Duration::from_millis(25), 2.0)?
                        .with_cap(Duration::from_millis(100))
                        .with_jitter(Jitter::Full),
                )
                // An open breaker's `retry_after` (a second) is longer than this: the
                // handler answers 503 at once rather than hold the client.
                .max_wait(Duration::from_millis(200))
                .build()?,
        )
        .circuit_breaker(breaker)
        .attempt_timeout(TimeoutLayer::new(Duration::from_millis(300))?)
        .bulkhead(BulkheadLayer::new(32)?);
    let quotes = pipeline.service(downstream(Arc::clone(&down)));
    let counters = Counters::register();

    // Every `/api` route: 20 requests a second per client IP, bursts of 40, at most
    // 10,000 clients remembered. The IP is the TCP peer's (`ConnectInfo`, see `main`);
    // behind a proxy, key on the address it reports instead. Without `ConnectInfo`
    // every client would share one allowance.
    let per_client = RateLimitLayer::builder()
        .name("per_client")
        .rate(20)
        .period(Duration::from_secs(1))
        .burst(40)
        .keyed(10_000, |req: &Request<Body>| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
                .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        })?;
    // The report is expensive: 2 at once, then one every 5 s, for everyone together.
    let reports = RateLimitLayer::builder()
        .name("reports")
        .rate(1)
        .period(Duration::from_secs(5))
        .burst(2)
        .build()?;

    let api = Router::new()
        .route(
            "/api/quote/{item}",
            get(move |Path(item): Path<String>| {
                let quotes = quotes.clone();
                let counters = counters.clone();
                async move {
                    match quotes.oneshot(item).await {
                        Ok(quote) => {
                            counters.ok.increment(1);
                            ([("content-type", "application/json")], quote).into_response()
                        }
                        // Breaker open, bulkhead full, budget spent, timed out: 503/504
                        // with `Retry-After` where known.
                        Err(err) if rejection(&*err).is_some() => {
                            counters.rejected.increment(1);
                            ErrorResponse::from(err).into_response()
                        }
                        // The downstream's own failure (after the retries): a bad gateway,
                        // without its message.
                        Err(_) => {
                            counters.failed.increment(1);
                            (StatusCode::BAD_GATEWAY, "{\"error\":\"downstream_failed\"}")
                                .into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/api/report",
            get(|| async { "{\"report\":\"all quotes are 42\"}" }).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_error))
                    .layer(reports),
            ),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(per_client),
        );

    let router = api
        .route_service("/health", health.liveness_service())
        .route_service("/ready", health.readiness_service())
        .route(
            "/metrics",
            get(move || {
                let prometheus = prometheus.clone();
                async move { prometheus.render() }
            }),
        );
    Ok(App { router, down })
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
            Err(_) => 3000,
        },
    };

    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let App { router, down } = app(prometheus)?;
    let listener = tokio::net::TcpListener::bind((
        IpAddr::from([127, 0, 0, 1]),
        if self_test { 0 } else { port },
    ))
    .await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    if self_test {
        let result = self_test_run(addr, &down).await;
        server.abort();
        return result;
    }

    // The downstream fails for 4 s out of every 16.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(12)).await;
            println!("downstream: down");
            down.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(4)).await;
            println!("downstream: up");
            down.store(false, Ordering::Relaxed);
        }
    });
    println!("listening on http://{addr} (the downstream fails for 4 s out of every 16)");
    println!("  curl -i http://{addr}/api/quote/widget");
    println!("  curl -i http://{addr}/api/report      # a third call within 5 s: 429");
    println!("  curl -i http://{addr}/health");
    println!("  curl -i http://{addr}/ready           # 503 while the breaker is open");
    println!("  curl http://{addr}/metrics");
    server.await??;
    Ok(())
}

/// One request's answer: status, `Retry-After`, body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

async fn fetch(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<bytes::Bytes>,
    >,
    addr: SocketAddr,
    path: &str,
) -> Result<Answer, BoxError> {
    let res = client.get(format!("http://{addr}{path}").parse()?).await?;
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = String::from_utf8_lossy(&res.into_body().collect().await?.to_bytes()).into_owned();
    let shown: String = body
        .chars()
        .take(100)
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    println!(
        "GET {path:<22} -> {}{}  {shown}",
        status.as_u16(),
        retry_after
            .as_deref()
            .map(|s| format!(" (Retry-After: {s})"))
            .unwrap_or_default(),
    );
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

fn expect(what: &str, ok: bool) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("self-test failed: {what}").into())
    }
}

/// Drives the server through an outage and back, checking each answer.
async fn self_test_run(addr: SocketAddr, down: &AtomicBool) -> Result<(), BoxError> {
    println!("self-test against http://{addr}");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();

    let a = fetch(&client, addr, "/api/quote/widget").await?;
    expect(
        "a quote while the downstream is up",
        a.status == StatusCode::OK,
    )?;

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let a = fetch(&client, addr, "/api/report").await?;
        statuses.push((a.status, a.retry_after));
    }
    expect(
        "two reports, then 429 with Retry-After",
        statuses[0].0 == StatusCode::OK
            && statuses[1].0 == StatusCode::OK
            && statuses[2].0 == StatusCode::TOO_MANY_REQUESTS
            && statuses[2].1.is_some(),
    )?;

    println!("-- the downstream goes down");
    down.store(true, Ordering::Relaxed);
    let mut open = None;
    for _ in 0..10 {
        let a = fetch(&client, addr, "/api/quote/widget").await?;
        if a.status == StatusCode::SERVICE_UNAVAILABLE {
            open = Some(a);
            break;
        }
        expect(
            "502 while the breaker counts failures",
            a.status == StatusCode::BAD_GATEWAY,
        )?;
    }
    expect(
        "503 with Retry-After once the breaker opens",
        open.is_some_and(|a| a.retry_after.is_some() && a.body.contains("circuit_open")),
    )?;
    let ready = fetch(&client, addr, "/ready").await?;
    expect(
        "/ready is 503 while the breaker is open",
        ready.status == StatusCode::SERVICE_UNAVAILABLE,
    )?;
    let live = fetch(&client, addr, "/health").await?;
    expect("/health stays 200", live.status == StatusCode::OK)?;

    println!("-- the downstream comes back; the breaker probes after {WAIT_IN_OPEN:?}");
    down.store(false, Ordering::Relaxed);
    tokio::time::sleep(WAIT_IN_OPEN + Duration::from_millis(100)).await;
    for _ in 0..2 {
        let a = fetch(&client, addr, "/api/quote/widget").await?;
        expect("the half-open probes succeed", a.status == StatusCode::OK)?;
    }
    let ready = fetch(&client, addr, "/ready").await?;
    expect(
        "/ready is 200 once the breaker closes",
        ready.status == StatusCode::OK && ready.body.contains("\"status\":\"up\""),
    )?;

    let metrics = fetch(&client, addr, "/metrics").await?;
    expect(
        "/metrics lists the request counters",
        metrics.status == StatusCode::OK && metrics.body.contains("example_quote_requests_total"),
    )?;
    expect(
        "/metrics lists buttress's own metrics, the breaker's rejections among them",
        metrics.body.contains(
            "buttress_circuit_breaker_calls_total{name=\"downstream\",outcome=\"rejected\"}",
        ) && metrics
            .body
            .contains("buttress_circuit_breaker_transitions_total")
            && metrics.body.contains("buttress_rejections_total"),
    )?;
    println!("self-test passed");
    Ok(())
}
