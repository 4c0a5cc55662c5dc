//! End to end over loopback: an axum server using buttress, called through real TCP by
//! a hyper-util client.
//!
//! Each test starts its own server on `127.0.0.1:0` and is bounded by [`LIMIT`]. The
//! breaker waits are short real durations (a second or two): only lower
//! bounds matter (a tokio sleep never ends early): a test sleeps past a breaker's wait
//! and then asserts, with upper bounds wide enough for a loaded machine.

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::routing::get;
use buttress::Resilience;
use buttress::bulkhead::BulkheadLayer;
use buttress::circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use buttress::error::rejection;
use buttress::health::HealthRegistry;
use buttress::http::{ErrorResponse, handle_error};
use buttress::rate_limit::RateLimitLayer;
use buttress::timeout::TimeoutLayer;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The longest any test may run.
const LIMIT: Duration = Duration::from_secs(30);

/// How long the breaker stays open before a probe.
const WAIT_IN_OPEN: Duration = Duration::from_secs(1);

/// Runs `test` with a bound: a hung test fails rather than hangs CI.
async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test finished within its bound");
}

/// A status, the `Retry-After` header, and the body of one answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client whose connections leave from `ip` (another loopback address is another
/// client to the server).
fn client_from(ip: IpAddr) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(ip));
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get_from(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Answer {
    let uri = format!("http://{addr}{path}").parse().expect("a valid URI");
    let res = client.get(uri).await.expect("an answer over loopback");
    let status = res.status();
    let retry_after = res.headers().get("retry-after").map(|v| {
        v.to_str()
            .expect("ASCII")
            .parse()
            .expect("Retry-After in whole seconds")
    });
    let body = res.into_body().collect().await.expect("a body").to_bytes();
    Answer {
        status,
        retry_after,
        body: String::from_utf8(body.to_vec()).expect("UTF-8"),
    }
}

/// Serves `router` on an ephemeral loopback port, with the peer address available to
/// extractors; the server ends with the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// A server whose `/quote` calls a downstream through a breaker, and what the test
/// needs to drive and watch it.
struct Gateway {
    addr: SocketAddr,
    /// Set: the downstream fails.
    down: Arc<AtomicBool>,
    /// Calls that reached the downstream.
    downstream_calls: Arc<AtomicU32>,
    breaker: CircuitBreakerHandle,
    /// Every transition, in order.
    transitions: Arc<Mutex<Vec<(State, State)>>>,
}

async fn gateway() -> Gateway {
    let down = Arc::new(AtomicBool::new(false));
    let downstream_calls = Arc::new(AtomicU32::new(0));
    let transitions: Arc<Mutex<Vec<(State, State)>>> = Arc::default();

    let seen = Arc::clone(&transitions);
    let breaker = CircuitBreakerLayer::builder()
        .name("downstream")
        .count_window(4)
        .minimum_calls(3)
        .failure_rate_threshold(50.0)
        .wait_in_open(WAIT_IN_OPEN)
        .permitted_calls_in_half_open(1)
        .on_transition(move |t| {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((t.from, t.to))
        })
        .build()
        .expect("valid breaker");
    let handle = breaker.handle();
    let health = HealthRegistry::new();
    health
        .register_critical(breaker.handle())
        .expect("a unique name");

    let (flag, calls) = (Arc::clone(&down), Arc::clone(&downstream_calls));
    let downstream = service_fn(move |item: String| {
        // Relaxed: a counter and a lone flag; nothing else is published through them.
        calls.fetch_add(1, Ordering::Relaxed);
        let failing = flag.load(Ordering::Relaxed);
        async move {
            if failing {
                Err(std::io::Error::other("downstream unavailable"))
            } else {
                Ok(format!("{{\"item\":{item:?}}}"))
            }
        }
    });
    let quotes = Resilience::new("downstream")
        .circuit_breaker(breaker)
        .attempt_timeout(TimeoutLayer::new(Duration::from_secs(5)).expect("valid timeout"))
        .bulkhead(BulkheadLayer::new(8).expect("valid bulkhead"))
        .service(downstream);

    let router = Router::new()
        .route(
            "/quote",
            get(move || {
                let quotes = quotes.clone();
                async move {
                    match quotes.oneshot("widget".to_owned()).await {
                        Ok(body) => body.into_response(),
                        Err(err) if rejection(&*err).is_some() => {
                            ErrorResponse::from(err).into_response()
                        }
                        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
                    }
                }
            }),
        )
        .route_service("/health", health.liveness_service())
        .route_service("/ready", health.readiness_service());
    Gateway {
        addr: serve(router).await,
        down,
        downstream_calls,
        breaker: handle,
        transitions,
    }
}

#[tokio::test]
async fn a_failing_downstream_trips_the_breaker_503_with_retry_after_then_half_open_recovers() {
    bounded(async {
        let gw = gateway().await;
        let http = client();
        let get = |path: &'static str| get_from(&http, gw.addr, path);

        assert_eq!(get("/quote").await.status, StatusCode::OK);
        assert_eq!(get("/ready").await.status, StatusCode::OK);

        // The downstream fails: its failures come back as 502 until the breaker opens.
        gw.down.store(true, Ordering::Relaxed);
        let mut failures = 0;
        let open = loop {
            let a = get("/quote").await;
            if a.status != StatusCode::BAD_GATEWAY {
                break a;
            }
            failures += 1;
            assert!(failures <= 4, "the breaker opens within its window");
        };
        assert_eq!(
            failures, 2,
            "1 success and 2 failures: 67% of 3 calls trips"
        );
        assert_eq!(gw.breaker.state(), State::Open);

        // Open: 503, `Retry-After` the open wait in whole seconds rounded up, and the
        // downstream is not called.
        assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(open.retry_after, Some(1));
        assert_eq!(open.json()["error"], "circuit_open");
        let calls = gw.downstream_calls.load(Ordering::Relaxed);
        let again = get("/quote").await;
        assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(again.retry_after, Some(1));
        assert_eq!(gw.downstream_calls.load(Ordering::Relaxed), calls);

        // The critical breaker is open: not ready, still alive.
        let ready = get("/ready").await;
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json()["status"], "down");
        assert_eq!(ready.json()["components"][0]["details"]["state"], "open");
        let live = get("/health").await;
        assert_eq!(live.status, StatusCode::OK);
        assert_eq!(live.json()["status"], "degraded");

        // The downstream recovers; after the open wait, one probe closes the breaker.
        gw.down.store(false, Ordering::Relaxed);
        tokio::time::sleep(WAIT_IN_OPEN).await;
        let probe = get("/quote").await;
        assert_eq!(probe.status, StatusCode::OK);
        assert_eq!(probe.json()["item"], "widget");
        assert_eq!(gw.downstream_calls.load(Ordering::Relaxed), calls + 1);
        assert_eq!(gw.breaker.state(), State::Closed);
        assert_eq!(
            *gw.transitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            [
                (State::Closed, State::Open),
                (State::Open, State::HalfOpen),
                (State::HalfOpen, State::Closed),
            ]
        );

        let ready = get("/ready").await;
        assert_eq!(ready.status, StatusCode::OK);
        assert_eq!(ready.json()["status"], "up");
    })
    .await;
}

#[tokio::test]
async fn a_failed_probe_reopens_and_ready_stays_503_until_a_probe_succeeds() {
    bounded(async {
        let gw = gateway().await;
        let http = client();
        let get = |path: &'static str| get_from(&http, gw.addr, path);

        gw.down.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            assert_eq!(get("/quote").await.status, StatusCode::BAD_GATEWAY);
        }
        assert_eq!(get("/ready").await.status, StatusCode::SERVICE_UNAVAILABLE);

        // The probe fails: open again, for longer (the default backoff doubles the wait).
        tokio::time::sleep(WAIT_IN_OPEN).await;
        assert_eq!(get("/quote").await.status, StatusCode::BAD_GATEWAY);
        assert_eq!(gw.breaker.state(), State::Open);
        let open = get("/quote").await;
        assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            open.retry_after,
            Some(2),
            "the second open wait is twice the first"
        );
        assert_eq!(get("/ready").await.status, StatusCode::SERVICE_UNAVAILABLE);

        gw.down.store(false, Ordering::Relaxed);
        tokio::time::sleep(WAIT_IN_OPEN * 2).await;
        assert_eq!(get("/quote").await.status, StatusCode::OK);
        assert_eq!(get("/ready").await.status, StatusCode::OK);
        assert_eq!(
            *gw.transitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            [
                (State::Closed, State::Open),
                (State::Open, State::HalfOpen),
                (State::HalfOpen, State::Open),
                (State::Open, State::HalfOpen),
                (State::HalfOpen, State::Closed),
            ]
        );
    })
    .await;
}

/// A server with a per-client-IP limit on `/api` (3 at once, then one a minute) and a
/// stricter global one on `/api/report` (1, then one a minute), rejections answered by
/// `HandleErrorLayer::new(handle_error)`.
async fn limited() -> SocketAddr {
    let per_ip = RateLimitLayer::builder()
        .rate(1)
        .period(Duration::from_secs(60))
        .burst(3)
        .keyed(100, |req: &Request<Body>| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip())
        })
        .expect("valid limit");
    let report = RateLimitLayer::new(1, Duration::from_secs(60), 1).expect("valid limit");
    let router = Router::new()
        .route("/api/hello", get(|| async { "hello" }))
        .route(
            "/api/report",
            get(|| async { "report" }).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_error))
                    .layer(report)
                    // The bulkhead's service is `Sync`, as `MethodRouter::layer` needs.
                    .layer(BulkheadLayer::new(2).expect("valid bulkhead")),
            ),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(per_ip),
        );
    serve(router).await
}

#[tokio::test]
async fn an_over_limit_client_gets_429_with_retry_after() {
    bounded(async {
        let addr = limited().await;
        let http = client();

        for _ in 0..3 {
            let a = get_from(&http, addr, "/api/hello").await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.retry_after, None);
        }
        let limited = get_from(&http, addr, "/api/hello").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        // The next slot frees a minute after the first call, less the moments spent.
        let after = limited.retry_after.expect("Retry-After");
        assert!((50..=60).contains(&after), "Retry-After: {after}");
        assert_eq!(limited.json()["error"], "rate_limited");
        assert_eq!(limited.json()["retry_after"], after);

        // Another client (another loopback address) has its own allowance.
        if cfg!(target_os = "linux") {
            let other = client_from(IpAddr::from([127, 0, 0, 2]));
            assert_eq!(
                get_from(&other, addr, "/api/hello").await.status,
                StatusCode::OK
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_stricter_route_limit_applies_under_the_per_client_one() {
    bounded(async {
        let addr = limited().await;
        let http = client();

        assert_eq!(
            get_from(&http, addr, "/api/report").await.status,
            StatusCode::OK
        );
        let second = get_from(&http, addr, "/api/report").await;
        assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
        let after = second.retry_after.expect("Retry-After");
        assert!((50..=60).contains(&after), "Retry-After: {after}");
        // The route's refusal still spent a per-client slot; the third is the last.
        assert_eq!(
            get_from(&http, addr, "/api/hello").await.status,
            StatusCode::OK
        );
        assert_eq!(
            get_from(&http, addr, "/api/hello").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    })
    .await;
}
