//! The tracing events the `observe` docs list: levels, targets, the instance's name and
//! the fields, captured by a subscriber layer.
#![cfg(feature = "tracing")]

use buttress::BoxError;
use buttress::bulkhead::BulkheadLayer;
use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::fallback::FallbackLayer;
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use buttress::timeout::TimeoutLayer;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One captured event.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
}

/// A subscriber layer keeping every event of the `buttress` targets.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn events(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose message is `message`.
    fn with_message(&self, message: &str) -> Vec<Captured> {
        self.events()
            .into_iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some(message))
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("buttress") {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Captured {
            level: *meta.level(),
            target: meta.target().to_string(),
            fields,
        });
    }
}

/// Captures this thread's events until the guard drops (the tests run on a
/// current-thread runtime, so every event of the test is on this thread).
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    (capture, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(start_paused = true)]
async fn a_breaker_transition_is_info_and_a_rejection_debug_with_the_name() {
    let (events, _guard) = capture();
    let mut svc = CircuitBreakerLayer::builder()
        .name("db")
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(5))
        .build()
        .unwrap()
        .layer(service_fn(|_: u32| async {
            Err::<u32, BoxError>("down".into())
        }));
    for _ in 0..3 {
        let _ = svc.ready().await.unwrap().call(0).await;
    }

    let transitions = events.with_message("circuit breaker transition");
    assert_eq!(transitions.len(), 1, "{transitions:?}");
    let t = &transitions[0];
    assert_eq!(t.level, Level::INFO);
    assert_eq!(t.target, "buttress::circuit_breaker");
    assert_eq!(
        (t.field("name"), t.field("from"), t.field("to")),
        ("db", "closed", "open")
    );

    let rejected = events.with_message("call rejected: circuit open");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].level, Level::DEBUG);
    assert_eq!(rejected[0].field("name"), "db");
    assert_eq!(rejected[0].field("retry_after"), "Some(5s)");
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_debug_with_attempt_and_delay_and_budget_exhaustion_warns() {
    let (events, _guard) = capture();
    let mut svc = RetryLayer::builder()
        .name("api")
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)).with_jitter(Jitter::None))
        .no_budget()
        .build()
        .unwrap()
        .layer(service_fn(|_: u32| async {
            Err::<u32, BoxError>("down".into())
        }));
    assert!(svc.ready().await.unwrap().call(0).await.is_err());

    let retries = events.with_message("retrying");
    assert_eq!(retries.len(), 2, "{retries:?}");
    for (r, attempt) in retries.iter().zip(["2", "3"]) {
        assert_eq!(r.level, Level::DEBUG);
        assert_eq!(r.target, "buttress::retry");
        assert_eq!(r.field("name"), "api");
        assert_eq!(r.field("attempt"), attempt);
        assert_eq!(r.field("delay"), "10ms");
        assert_eq!(r.field("reason"), "Error");
    }
    let exhausted = events.with_message("retries exhausted");
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0].field("attempts"), "3");

    let empty = RetryBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    let mut svc = RetryLayer::builder()
        .name("api")
        .budget(empty)
        .build()
        .unwrap()
        .layer(service_fn(|_: u32| async {
            Err::<u32, BoxError>("down".into())
        }));
    assert!(svc.ready().await.unwrap().call(0).await.is_err());
    let refused = events.with_message("retry budget exhausted");
    assert_eq!(refused.len(), 1, "{:?}", events.events());
    assert_eq!(refused[0].level, Level::WARN);
    assert_eq!(refused[0].field("name"), "api");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_debug_with_the_name_and_the_limit() {
    let (events, _guard) = capture();
    let mut svc = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .name("slow")
        .layer(service_fn(|_: u32| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<u32, BoxError>(0)
        }));
    assert!(svc.ready().await.unwrap().call(0).await.is_err());
    let cut = events.with_message("call timed out");
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].level, Level::DEBUG);
    assert_eq!(cut[0].target, "buttress::timeout");
    assert_eq!(
        (cut[0].field("name"), cut[0].field("after")),
        ("slow", "100ms")
    );
}

#[tokio::test(start_paused = true)]
async fn limiter_bulkhead_and_fallback_events_are_debug_with_the_name() {
    let (events, _guard) = capture();
    let mut limited = RateLimitLayer::builder()
        .name("api")
        .rate(1)
        .burst(1)
        .build()
        .unwrap()
        .layer(service_fn(|n: u32| async move { Ok::<u32, BoxError>(n) }));
    limited.ready().await.unwrap().call(0).await.unwrap();
    assert!(limited.ready().await.unwrap().call(0).await.is_err());
    let r = events.with_message("call rejected: rate limited");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].level, r[0].target.as_str()),
        (Level::DEBUG, "buttress::rate_limit")
    );
    assert_eq!(
        (r[0].field("name"), r[0].field("retry_after")),
        ("api", "1s")
    );

    let mut full = BulkheadLayer::builder()
        .name("pool")
        .max_concurrent(1)
        .build()
        .unwrap()
        .layer(service_fn(|_: u32| {
            std::future::pending::<Result<u32, BoxError>>()
        }));
    let _held = full.ready().await.unwrap().call(0);
    assert!(full.ready().await.unwrap().call(1).await.is_err());
    let b = events.with_message("call rejected: bulkhead full");
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].level, b[0].target.as_str()),
        (Level::DEBUG, "buttress::bulkhead")
    );
    assert_eq!(b[0].field("name"), "pool");

    let mut answered = FallbackLayer::value(7u32)
        .name("cache")
        .layer(service_fn(|_: u32| async {
            Err::<u32, BoxError>("miss".into())
        }));
    assert_eq!(answered.ready().await.unwrap().call(0).await.unwrap(), 7);
    let f = events.with_message("fallback taken");
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].level, f[0].target.as_str()),
        (Level::DEBUG, "buttress::fallback")
    );
    assert_eq!(f[0].field("name"), "cache");
}
