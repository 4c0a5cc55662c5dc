//! The health registry: liveness and readiness from components' reports, as values and
//! (with `http`) through tower's `Service` API and axum.
#![cfg(feature = "health")]

use buttress::health::{HealthRegistry, HealthSource, HealthStatus, OverallStatus, Probe};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// A stand-in for a circuit breaker's handle: its state in an atomic, as the real one.
#[derive(Clone)]
struct FakeBreaker {
    name: &'static str,
    /// 0 closed, 1 half-open, 2 open.
    state: Arc<AtomicU8>,
}

impl FakeBreaker {
    fn new(name: &'static str) -> Self {
        FakeBreaker {
            name,
            state: Arc::new(AtomicU8::new(0)),
        }
    }
    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
    }
}

impl HealthSource for FakeBreaker {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "circuit_breaker"
    }
    fn status(&self) -> HealthStatus {
        match self.state.load(Ordering::SeqCst) {
            0 => HealthStatus::Healthy,
            1 => HealthStatus::Degraded,
            _ => HealthStatus::Unhealthy,
        }
    }
    fn details(&self) -> Map<String, Value> {
        let state =
            ["closed", "half_open", "open"][usize::from(self.state.load(Ordering::SeqCst).min(2))];
        let mut m = Map::new();
        m.insert("state".into(), Value::from(state));
        m
    }
}

/// A stand-in for a bulkhead's handle: degraded when full.
struct FakeBulkhead {
    in_flight: Arc<AtomicU64>,
    max: u64,
}

impl HealthSource for FakeBulkhead {
    fn name(&self) -> &str {
        "db-pool"
    }
    fn kind(&self) -> &'static str {
        "bulkhead"
    }
    fn status(&self) -> HealthStatus {
        if self.in_flight.load(Ordering::SeqCst) >= self.max {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }
}

fn json_of(check: &buttress::health::HealthCheck) -> Value {
    serde_json::from_str(&check.to_json()).expect("valid JSON")
}

#[test]
fn readiness_follows_critical_components_only() {
    let payments = FakeBreaker::new("payments");
    let search = FakeBreaker::new("search");
    let registry = HealthRegistry::new();
    registry
        .register_critical(payments.clone())
        .expect("new name");
    registry.register(search.clone()).expect("new name");

    let ready = registry.readiness();
    assert_eq!(ready.probe(), Probe::Readiness);
    assert_eq!(ready.status_code(), 200);
    assert_eq!(ready.report().status, OverallStatus::Up);

    // A non-critical breaker open: still ready, but degraded.
    search.set(2);
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 200);
    assert_eq!(ready.report().status, OverallStatus::Degraded);

    // The critical breaker open: not ready.
    payments.set(2);
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 503);
    assert!(!ready.is_passing());
    assert_eq!(ready.report().status, OverallStatus::Down);

    // Half-open is recovering, not down.
    payments.set(1);
    assert_eq!(registry.readiness().status_code(), 200);

    // Closed again: ready, and up once the other recovers too.
    payments.set(0);
    search.set(0);
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);
}

#[test]
fn liveness_never_fails_for_a_dependency() {
    let payments = FakeBreaker::new("payments");
    let registry = HealthRegistry::new();
    registry
        .register_critical(payments.clone())
        .expect("new name");
    assert_eq!(registry.liveness().report().status, OverallStatus::Up);
    payments.set(2);
    let live = registry.liveness();
    assert_eq!(live.probe(), Probe::Liveness);
    assert_eq!(live.status_code(), 200);
    assert_eq!(live.report().status, OverallStatus::Degraded);
    registry.set_draining(true);
    assert_eq!(registry.liveness().status_code(), 200);
}

#[test]
fn draining_fails_readiness_until_undone() {
    let registry = HealthRegistry::new();
    assert_eq!(registry.readiness().status_code(), 200);
    registry.set_draining(true);
    assert!(registry.is_draining());
    assert_eq!(registry.readiness().status_code(), 503);
    // Every clone is the same registry.
    registry.clone().set_draining(false);
    assert_eq!(registry.readiness().status_code(), 200);
}

#[test]
fn report_json_lists_every_component_in_order() {
    let registry = HealthRegistry::new();
    let payments = FakeBreaker::new("payments");
    let in_flight = Arc::new(AtomicU64::new(0));
    registry
        .register_critical(payments.clone())
        .expect("new name");
    registry
        .register(FakeBulkhead {
            in_flight: in_flight.clone(),
            max: 4,
        })
        .expect("new name");
    payments.set(2);
    in_flight.store(4, Ordering::SeqCst);
    assert_eq!(
        json_of(&registry.readiness()),
        json!({
            "status": "down",
            "components": [
                {"name": "payments", "kind": "circuit_breaker", "status": "unhealthy",
                 "critical": true, "details": {"state": "open"}},
                {"name": "db-pool", "kind": "bulkhead", "status": "degraded", "critical": false},
            ]
        })
    );
}

#[test]
fn names_are_unique_and_components_can_leave() {
    let registry = HealthRegistry::new();
    registry.register(FakeBreaker::new("a")).expect("new name");
    let err = registry
        .register_critical(FakeBreaker::new("a"))
        .expect_err("duplicate name");
    assert_eq!(err.field(), "name");
    assert_eq!(registry.names(), ["a"]);

    let b = FakeBreaker::new("b");
    registry
        .register_critical(Arc::new(b.clone()))
        .expect("new name");
    b.set(2);
    assert_eq!(registry.readiness().status_code(), 503);
    assert!(registry.deregister("b"));
    assert!(!registry.deregister("b"));
    assert_eq!(registry.readiness().status_code(), 200);
    assert_eq!(registry.names(), ["a"]);
}

#[test]
fn a_function_is_a_source() {
    let up = Arc::new(AtomicU8::new(1));
    let flag = up.clone();
    let registry = HealthRegistry::new();
    registry
        .register_critical(buttress::health::source_fn(
            "postgres",
            "database",
            move || {
                if flag.load(Ordering::SeqCst) == 1 {
                    HealthStatus::Healthy
                } else {
                    HealthStatus::Unhealthy
                }
            },
        ))
        .expect("new name");
    assert_eq!(registry.readiness().status_code(), 200);
    up.store(0, Ordering::SeqCst);
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 503);
    assert_eq!(
        json_of(&ready)["components"][0],
        json!({"name": "postgres", "kind": "database", "status": "unhealthy", "critical": true})
    );
}

#[test]
fn an_empty_registry_is_up() {
    let registry = HealthRegistry::default();
    for probe in [Probe::Liveness, Probe::Readiness] {
        let check = registry.check(probe);
        assert_eq!(check.status_code(), 200);
        assert_eq!(json_of(&check), json!({"status": "up", "components": []}));
    }
}

#[cfg(feature = "http")]
mod over_http {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use tower::{ServiceExt, service_fn};

    async fn json_body<B>(res: Response<B>) -> Value
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn probe_services_answer_as_kubernetes_expects() {
        let payments = FakeBreaker::new("payments");
        let registry = HealthRegistry::new();
        registry
            .register_critical(payments.clone())
            .expect("new name");

        let ready = registry.readiness_service();
        let live = registry.liveness_service();
        let get = || Request::get("/").body(()).expect("valid");

        let res = ready.clone().oneshot(get()).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");

        payments.set(2);
        let res = ready.clone().oneshot(get()).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json_body(res).await["status"], "down");
        let res = live.clone().oneshot(get()).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(json_body(res).await["status"], "degraded");

        payments.set(0);
        let res = ready.oneshot(get()).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(json_body(res).await["status"], "up");
    }

    #[tokio::test]
    async fn mounted_in_axum_at_health_and_ready() {
        let payments = FakeBreaker::new("payments");
        let registry = HealthRegistry::new();
        registry
            .register_critical(payments.clone())
            .expect("new name");
        let handler_registry = registry.clone();
        let app: Router = Router::new()
            .route_service("/health", registry.liveness_service())
            .route_service("/ready", registry.readiness_service())
            // A plain handler works as well: a `HealthCheck` is an `IntoResponse`.
            .route(
                "/ready2",
                get(move || {
                    let r = handler_registry.clone();
                    async move { r.readiness() }
                }),
            );
        let status_of = |path: &'static str| {
            let app = app.clone();
            async move {
                let req = Request::get(path)
                    .body(axum::body::Body::empty())
                    .expect("valid");
                app.oneshot(req).await.expect("infallible").status()
            }
        };
        assert_eq!(status_of("/health").await, 200);
        assert_eq!(status_of("/ready").await, 200);
        assert_eq!(status_of("/ready2").await, 200);
        payments.set(2);
        assert_eq!(status_of("/health").await, 200);
        assert_eq!(status_of("/ready").await, 503);
        assert_eq!(status_of("/ready2").await, 503);
        payments.set(0);
        assert_eq!(status_of("/ready").await, 200);
    }

    #[tokio::test]
    async fn a_health_check_is_a_plain_http_response_too() {
        let registry = HealthRegistry::new();
        registry.set_draining(true);
        // For hyper or any tower server: a service_fn answering from the registry.
        let svc = service_fn(move |_req: Request<()>| {
            let check = registry.readiness();
            async move { Ok::<_, std::convert::Infallible>(check.into_http()) }
        });
        let res = svc
            .oneshot(Request::get("/ready").body(()).expect("valid"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json_body(res).await,
            json!({"status": "down", "components": []})
        );
    }
}

/// A real breaker's handle drives readiness: forced open fails it, reset restores it.
#[test]
fn a_breaker_handle_is_a_health_source() {
    use buttress::circuit_breaker::CircuitBreakerLayer;

    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let registry = HealthRegistry::new();
    registry
        .register_critical(handle.clone())
        .expect("a unique name");
    assert_eq!(registry.names(), vec!["payments".to_string()]);

    assert_eq!(registry.readiness().status_code(), 200);
    handle.force_open();
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 503);
    let json: serde_json::Value = serde_json::from_str(&ready.to_json()).expect("json");
    let text = json.to_string();
    assert!(text.contains("\"forced_open\""), "{text}");
    assert!(text.contains("circuit_breaker"), "{text}");
    // Liveness never fails for a dependency.
    assert_eq!(registry.liveness().status_code(), 200);
    handle.reset();
    assert_eq!(registry.readiness().status_code(), 200);
}

/// A real bulkhead's handle: healthy with a slot free, degraded when full or when a
/// call waits, healthy again once the slots come back.
#[tokio::test(start_paused = true)]
async fn a_bulkhead_handle_is_a_health_source() {
    use buttress::bulkhead::BulkheadLayer;
    use std::time::Duration;
    use tower::{Layer, Service, ServiceExt};

    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .build()
        .expect("valid config");
    let handle = layer.handle().named("db-pool");
    let registry = HealthRegistry::new();
    registry.register(handle.clone()).expect("a unique name");
    assert_eq!(registry.names(), vec!["db-pool".to_string()]);
    assert_eq!(handle.status(), HealthStatus::Healthy);

    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = Arc::new(tokio::sync::Mutex::new(Some(gate)));
    let svc = layer.layer(tower::service_fn(move |_: ()| {
        let gate = Arc::clone(&gate);
        async move {
            if let Some(g) = gate.lock().await.take() {
                let _ = g.await;
            }
            Ok::<_, std::io::Error>(())
        }
    }));
    // One call holds the only slot: full.
    let mut s = svc.clone();
    let first = tokio::spawn(async move { s.ready().await?.call(()).await });
    tokio::task::yield_now().await;
    assert_eq!(handle.in_flight(), 1);
    assert_eq!(handle.status(), HealthStatus::Degraded);
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 200, "degraded is still ready");
    assert_eq!(ready.report().status, OverallStatus::Degraded);
    let text = json_of(&ready).to_string();
    assert!(text.contains("\"in_flight\":1"), "{text}");

    // A second call waits for it.
    let mut s = svc.clone();
    let second = tokio::spawn(async move { s.ready().await?.call(()).await });
    tokio::task::yield_now().await;
    assert_eq!(handle.waiting(), 1);
    assert_eq!(handle.status(), HealthStatus::Degraded);

    release.send(()).expect("first call waiting");
    first.await.expect("task").expect("first call");
    second.await.expect("task").expect("second call");
    assert_eq!(handle.available(), 1);
    assert_eq!(handle.waiting(), 0);
    assert_eq!(handle.status(), HealthStatus::Healthy);
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);
}

/// The status a probe of `registry` reports for the component `name`.
fn status_of(registry: &HealthRegistry, name: &str) -> Option<HealthStatus> {
    registry
        .readiness()
        .report()
        .components
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
}

/// A real rate limiter's handle: degraded from the probe that finds new rejections
/// until its window has passed without any, whichever probe reads it; direct and keyed
/// alike.
#[tokio::test(start_paused = true)]
async fn a_rate_limiter_handle_is_a_health_source() {
    use buttress::rate_limit::RateLimitLayer;
    use std::time::Duration;
    use tower::{Layer, Service, ServiceExt};

    let echo = tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
    let direct = RateLimitLayer::new(1, Duration::from_secs(1), 1).expect("valid");
    let keyed = RateLimitLayer::builder()
        .rate(1)
        .burst(1)
        .keyed(16, |x: &u32| *x)
        .expect("valid");
    let registry = HealthRegistry::new();
    let direct_handle = direct.handle().named("api-limit");
    let keyed_handle = keyed
        .handle()
        .named("per-client")
        .degraded_for(Duration::from_secs(30));
    registry.register(direct_handle.clone()).expect("unique");
    registry.register(keyed_handle.clone()).expect("unique");
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);

    let mut d = direct.layer(echo);
    let mut k = keyed.layer(echo);
    assert!(d.ready().await.unwrap().call(1).await.is_ok());
    assert!(k.ready().await.unwrap().call(7).await.is_ok());
    // Admitted calls alone leave it healthy.
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);

    // Over the limit: one rejection each.
    assert!(d.ready().await.unwrap().call(2).await.is_err());
    assert!(k.ready().await.unwrap().call(7).await.is_err());
    assert!(
        k.ready().await.unwrap().call(8).await.is_ok(),
        "another key passes"
    );
    assert_eq!(direct_handle.rejected(), 1);
    assert_eq!(keyed_handle.rejected(), 1);
    let ready = registry.readiness();
    assert_eq!(
        ready.status_code(),
        200,
        "a limiter rejecting is degraded, not down"
    );
    assert_eq!(ready.report().status, OverallStatus::Degraded);
    let text = json_of(&ready).to_string();
    assert!(text.contains("rate_limiter"), "{text}");
    assert!(text.contains("\"rejected\":1"), "{text}");

    // The liveness probe right after, and the readiness probe again, find no new
    // rejection but are within the window: both still report it.
    assert_eq!(registry.liveness().report().status, OverallStatus::Degraded);
    assert_eq!(
        registry.readiness().report().status,
        OverallStatus::Degraded
    );

    // The direct handle's window (10 s by default) runs from the probe that found the
    // rejection; the keyed one's (30 s) outlasts it.
    tokio::time::advance(Duration::from_secs(10) - Duration::from_nanos(1)).await;
    assert_eq!(
        status_of(&registry, "api-limit"),
        Some(HealthStatus::Degraded)
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(
        status_of(&registry, "api-limit"),
        Some(HealthStatus::Healthy)
    );
    assert_eq!(
        status_of(&registry, "per-client"),
        Some(HealthStatus::Degraded)
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);

    // A new rejection on the direct limiter only: only it is degraded.
    assert!(d.ready().await.unwrap().call(3).await.is_ok());
    assert!(d.ready().await.unwrap().call(4).await.is_err());
    let ready = registry.readiness();
    assert_eq!(ready.report().status, OverallStatus::Degraded);
    let text = json_of(&ready).to_string();
    assert!(text.contains("\"rejected\":2"), "{text}");
    assert_eq!(
        status_of(&registry, "per-client"),
        Some(HealthStatus::Healthy)
    );

    // A handle made now does not count the rejections made before it.
    assert_eq!(direct.handle().status(), HealthStatus::Healthy);

    // Rejections stop; once the window has passed, healthy on either probe.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(d.ready().await.unwrap().call(5).await.is_ok());
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);
    assert_eq!(registry.liveness().report().status, OverallStatus::Up);
    assert_eq!(direct_handle.rejected(), 2);
}

/// A critical breaker that opened must not fail readiness for good. Open becomes
/// half-open only when a call arrives; a pod that is not ready gets no calls. So once
/// the open wait is over (the next call would be a probe), the breaker reports
/// degraded, as half-open does, and readiness passes; asking changes nothing. Before
/// the wait is over, after a failed probe (a longer wait), forced open, or with a wait
/// that never ends, it is unhealthy and readiness fails.
#[tokio::test(start_paused = true)]
async fn an_open_breaker_whose_wait_is_over_lets_readiness_pass() {
    use buttress::circuit_breaker::{CircuitBreakerLayer, State};
    use buttress::error::BoxError;
    use std::time::Duration;
    use tokio::time::advance;
    use tower::{Layer, Service, ServiceExt};

    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .count_window(2)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(10))
        .open_backoff(2.0, Duration::from_secs(60))
        .permitted_calls_in_half_open(1)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let registry = HealthRegistry::new();
    registry
        .register_critical(handle.clone())
        .expect("a unique name");
    let mut svc = layer.layer(tower::service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("backend down".into())
        } else {
            Ok(())
        }
    }));

    for _ in 0..2 {
        assert!(svc.ready().await.unwrap().call(true).await.is_err());
    }
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.status(), HealthStatus::Unhealthy);
    assert_eq!(registry.readiness().status_code(), 503);

    // Still waiting: not ready.
    advance(Duration::from_millis(9_999)).await;
    assert_eq!(handle.status(), HealthStatus::Unhealthy);
    assert_eq!(registry.readiness().status_code(), 503);

    // The wait is over: the next call would probe. Ready (degraded), and still open:
    // the probes of /ready and /health moved nothing.
    advance(Duration::from_millis(1)).await;
    assert_eq!(handle.status(), HealthStatus::Degraded);
    let ready = registry.readiness();
    assert_eq!(ready.status_code(), 200, "{}", ready.to_json());
    assert_eq!(ready.report().status, OverallStatus::Degraded);
    assert_eq!(registry.liveness().status_code(), 200);
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.metrics().not_permitted, 0, "a probe is not a call");

    // Traffic comes back; the probe fails: open again for twice as long, not ready.
    assert!(svc.ready().await.unwrap().call(true).await.is_err());
    assert_eq!(handle.state(), State::Open);
    assert_eq!(registry.readiness().status_code(), 503);
    advance(Duration::from_millis(19_999)).await;
    assert_eq!(registry.readiness().status_code(), 503);
    advance(Duration::from_millis(1)).await;
    assert_eq!(registry.readiness().status_code(), 200);

    // The next probe succeeds: closed, up.
    assert!(svc.ready().await.unwrap().call(false).await.is_ok());
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(registry.readiness().report().status, OverallStatus::Up);

    // Forced open is the operator's decision: not ready however long it lasts.
    handle.force_open();
    advance(Duration::from_secs(3600)).await;
    assert_eq!(handle.status(), HealthStatus::Unhealthy);
    assert_eq!(registry.readiness().status_code(), 503);
    handle.reset();
    assert_eq!(registry.readiness().status_code(), 200);

    // A breaker whose wait never ends never probes: unhealthy for good.
    let never = CircuitBreakerLayer::builder()
        .name("never")
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::MAX)
        .build()
        .expect("valid config");
    let never_handle = never.handle();
    let mut svc = never.layer(tower::service_fn(|()| async {
        Err::<(), BoxError>("backend down".into())
    }));
    for _ in 0..2 {
        assert!(svc.ready().await.unwrap().call(()).await.is_err());
    }
    assert_eq!(never_handle.state(), State::Open);
    advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    assert_eq!(never_handle.status(), HealthStatus::Unhealthy);
}

/// A bulkhead's or limiter's handle reports under the name its builder was given, so
/// two of them register side by side without `named`.
#[test]
fn handles_take_their_builders_names() {
    use buttress::bulkhead::BulkheadLayer;
    use buttress::rate_limit::RateLimitLayer;

    let registry = HealthRegistry::new();
    let db = BulkheadLayer::builder()
        .name("db")
        .max_concurrent(4)
        .build()
        .expect("valid");
    let cache = BulkheadLayer::builder()
        .name("cache")
        .max_concurrent(4)
        .build()
        .expect("valid");
    let api = RateLimitLayer::builder()
        .name("api")
        .rate(10)
        .burst(1)
        .build()
        .expect("valid");
    let per_client = RateLimitLayer::builder()
        .name("per_client")
        .rate(10)
        .burst(1)
        .keyed(16, |x: &u32| *x)
        .expect("valid");
    registry.register(db.handle()).expect("unique");
    registry.register(cache.handle()).expect("unique");
    registry.register(api.handle()).expect("unique");
    registry.register(per_client.handle()).expect("unique");
    let mut names = registry.names();
    names.sort();
    assert_eq!(names, ["api", "cache", "db", "per_client"]);
    // `named` still overrides.
    assert_eq!(db.handle().named("primary").name(), Some("primary"));
    // Unnamed, the source name is the kind.
    let plain = BulkheadLayer::new(1).expect("valid");
    assert!(registry.register(plain.handle()).is_ok());
    assert!(registry.names().iter().any(|n| n == "bulkhead"));

    // Two unnamed breakers (two pipelines' parts, say) clash under their kind; a
    // breaker's handle takes a name of its own as the others do.
    use buttress::circuit_breaker::CircuitBreakerLayer;
    let payments = CircuitBreakerLayer::builder().build().expect("valid");
    let orders = CircuitBreakerLayer::builder().build().expect("valid");
    registry.register(payments.handle()).expect("unique");
    assert!(
        registry.register(orders.handle()).is_err(),
        "both circuit_breaker"
    );
    registry
        .register(orders.handle().named("orders"))
        .expect("named apart");
    assert!(registry.names().iter().any(|n| n == "orders"));
    let named = CircuitBreakerLayer::builder()
        .name("db")
        .build()
        .expect("valid");
    assert_eq!(named.handle().name(), Some("db"));
    assert_eq!(
        named.handle().named("primary-db").name(),
        Some("primary-db")
    );
}
