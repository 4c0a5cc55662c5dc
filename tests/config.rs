//! `buttress::config`: settings read from a file build the layers they describe, with
//! the builders' defaults and the builders' errors.
#![cfg(feature = "serde")]

use buttress::bulkhead::BulkheadLayer;
use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use buttress::config::{
    BackoffConfig, BackoffKind, BulkheadConfig, CircuitBreakerConfig, JitterKind,
    OpenBackoffConfig, RateLimitConfig, ResilienceConfig, RetryBudgetConfig, RetryConfig,
    TimeoutConfig, WindowConfig,
};
use buttress::error::{BoxError, RejectionKind, rejection};
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::{Backoff, RetryBudget, RetryLayer};
use buttress::timeout::TimeoutLayer;
use buttress::{ConfigError, Resilience};
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn kind(err: &BoxError) -> Option<RejectionKind> {
    rejection(&**err).map(|r| r.kind())
}

fn parse<T: DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// The error reading `json` as a `T`, as text.
fn parse_error<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
    serde_json::from_str::<T>(json)
        .expect_err(&format!("{json} should not read"))
        .to_string()
}

/// The times (since it was made) at which an inner service was called.
#[derive(Clone)]
struct Calls {
    start: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Calls {
    fn new() -> Self {
        Calls {
            start: Instant::now(),
            at: Arc::default(),
        }
    }

    fn record(&self) {
        self.at.lock().unwrap().push(self.start.elapsed());
    }

    fn times(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }

    /// A service that records each call and fails it.
    fn failing(&self) -> impl Service<u32, Response = u32, Error = BoxError> + Clone + use<> {
        let calls = self.clone();
        service_fn(move |_: u32| {
            calls.record();
            async { Err::<u32, BoxError>("backend down".into()) }
        })
    }
}

const FULL: &str = r#"{
    "name": "payments",
    "timeout": "1m",
    "retry": {
        "max_attempts": 4,
        "backoff": { "kind": "constant", "base": "100ms", "jitter": "none" },
        "budget": false
    },
    "circuit_breaker": {
        "name": "payments-breaker",
        "window": { "kind": "count", "calls": 4 },
        "minimum_calls": 4,
        "failure_rate_threshold": 75,
        "wait_in_open": "1h"
    },
    "rate_limit": { "rate": 1000, "burst": 100 },
    "attempt_timeout": "500ms",
    "bulkhead": { "name": "payments-pool", "max_concurrent": 2 }
}"#;

#[tokio::test(start_paused = true)]
async fn a_full_document_builds_the_pipeline_it_describes() {
    let config: ResilienceConfig = parse(FULL);
    let payments = config.build().unwrap();
    assert_eq!(payments.name(), "payments");
    assert_eq!(
        payments.parts(),
        [
            "timeout",
            "retry",
            "circuit_breaker",
            "rate_limit",
            "attempt_timeout",
            "bulkhead"
        ]
    );
    assert!(
        payments.retry().unwrap().budget().is_none(),
        "budget: false"
    );
    let breaker = payments.circuit_breaker().unwrap().handle();
    assert_eq!(breaker.name(), Some("payments-breaker"));
    let bulkhead = payments.bulkhead().unwrap().handle();
    assert_eq!(bulkhead.max_concurrent(), 2);
    assert_eq!(bulkhead.name(), Some("payments-pool"));
    assert_eq!(payments.rate_limit().unwrap().quota().burst(), 100);

    let calls = Calls::new();
    let mut svc = payments.layer(calls.failing());

    // Four attempts (the configured max), a constant 100 ms apart, each a failure the
    // breaker counts: the fourth fills its window of four and opens it.
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(calls.times(), [ms(0), ms(100), ms(200), ms(300)]);
    assert!(err.to_string().contains("4 attempts"), "{err}");
    assert_eq!(breaker.state(), State::Open);

    // Open for an hour, longer than the retry's default 30 s max_wait: the retry gives
    // up at once and the backend is not called.
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::CircuitOpen));
    assert_eq!(calls.times().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_the_configured_minimum_calls_at_the_configured_rate() {
    let config: ResilienceConfig = parse(
        r#"{
            "name": "backend",
            "circuit_breaker": {
                "window": { "kind": "count", "calls": 10 },
                "minimum_calls": 5,
                "failure_rate_threshold": 60,
                "wait_in_open": "10s"
            }
        }"#,
    );
    let pipeline = config.build().unwrap();
    assert_eq!(pipeline.parts(), ["circuit_breaker"]);
    let handle = pipeline.circuit_breaker().unwrap().handle();
    let mut svc = pipeline.layer(service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    }));

    // 3 failures in 4 calls is 75 %, but fewer than minimum_calls: still closed.
    for fail in [true, true, true, false] {
        let _ = svc.ready().await.unwrap().call(fail).await;
    }
    assert_eq!(handle.state(), State::Closed);
    // The fifth call makes 3 in 5: 60 %, the threshold (inclusive).
    svc.ready().await.unwrap().call(false).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let err = svc.ready().await.unwrap().call(false).await.unwrap_err();
    let open = rejection(&*err).expect("a rejection");
    assert_eq!(open.kind(), RejectionKind::CircuitOpen);
    assert_eq!(open.retry_after(), Some(Duration::from_secs(10)));

    // Under the rate, a full window stays closed.
    let below: CircuitBreakerConfig = parse(
        r#"{ "window": { "kind": "count", "calls": 10 }, "minimum_calls": 5, "failure_rate_threshold": 60 }"#,
    );
    let layer = below.build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    }));
    for fail in [
        true, true, false, false, false, true, false, false, false, false,
    ] {
        let _ = svc.ready().await.unwrap().call(fail).await;
    }
    assert_eq!(handle.metrics().calls, 10);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_retry_makes_the_configured_attempts_with_the_configured_backoff() {
    let config: RetryConfig = parse(
        r#"{
            "max_attempts": 5,
            "backoff": { "kind": "linear", "base": "100ms", "jitter": "none" },
            "budget": null
        }"#,
    );
    let calls = Calls::new();
    let svc = config.build().unwrap().layer(calls.failing());
    let err = svc.oneshot(1).await.unwrap_err();
    assert!(err.to_string().contains("5 attempts"), "{err}");
    // Linear: 100 ms before the first retry, 200 before the second, ...
    assert_eq!(calls.times(), [ms(0), ms(100), ms(300), ms(600), ms(1000)]);

    // Exponential, capped before jitter.
    let config: RetryConfig = parse(
        r#"{
            "max_attempts": 5,
            "backoff": { "base": "100ms", "multiplier": 3, "cap": "1s", "jitter": "none" },
            "budget": false
        }"#,
    );
    let calls = Calls::new();
    let svc = config.build().unwrap().layer(calls.failing());
    svc.oneshot(1).await.unwrap_err();
    assert_eq!(calls.times(), [ms(0), ms(100), ms(400), ms(1300), ms(2300)]);
}

#[tokio::test(start_paused = true)]
async fn a_configured_budget_limits_the_retries() {
    // No floor and no ratio: not a single retry is allowed.
    let config: RetryConfig = parse(
        r#"{
            "max_attempts": 5,
            "backoff": { "kind": "constant", "base": "10ms", "jitter": "none" },
            "budget": { "retry_ratio": 0, "min_retries_per_sec": 0 }
        }"#,
    );
    let calls = Calls::new();
    let layer = config.build().unwrap();
    assert_eq!(layer.budget().unwrap().ttl(), Duration::from_secs(10));
    let err = layer.layer(calls.failing()).oneshot(1).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::BudgetExhausted));
    assert_eq!(calls.times(), [ms(0)]);
}

#[tokio::test(start_paused = true)]
async fn sections_left_out_are_not_in_the_pipeline() {
    let bare: ResilienceConfig = parse(r#"{ "name": "bare", "retry": null }"#);
    let pipeline = bare.build().unwrap();
    assert!(pipeline.parts().is_empty());
    let calls = Calls::new();
    let err = pipeline
        .layer(calls.failing())
        .oneshot(1)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "backend down");
    assert_eq!(calls.times().len(), 1, "no retry");

    let echo = service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
    let only: ResilienceConfig =
        parse(r#"{ "name": "only", "bulkhead": { "max_concurrent": 1 } }"#);
    let pipeline = only.build().unwrap();
    assert_eq!(pipeline.parts(), ["bulkhead"]);
    assert_eq!(pipeline.layer(echo).oneshot(7).await.unwrap(), 7);

    // An empty section is there, with every default.
    let defaults: ResilienceConfig = parse(r#"{ "name": "defaults", "retry": {} }"#);
    assert_eq!(defaults.retry, Some(RetryConfig::default()));
    assert_eq!(defaults.build().unwrap().parts(), ["retry"]);
}

/// Two layers built the same way show the same state and configuration.
fn same<L: std::fmt::Debug>(a: L, b: L) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[tokio::test(start_paused = true)]
async fn defaults_are_the_builders_defaults() {
    // An empty table is the default, for every struct.
    assert_eq!(
        parse::<CircuitBreakerConfig>("{}"),
        CircuitBreakerConfig::default()
    );
    assert_eq!(parse::<RetryConfig>("{}"), RetryConfig::default());
    assert_eq!(parse::<BackoffConfig>("{}"), BackoffConfig::default());
    assert_eq!(
        parse::<RetryBudgetConfig>("{}"),
        RetryBudgetConfig::default()
    );
    assert_eq!(
        parse::<OpenBackoffConfig>("{}"),
        OpenBackoffConfig::default()
    );
    assert_eq!(parse::<TimeoutConfig>("{}"), TimeoutConfig::default());
    assert_eq!(parse::<BulkheadConfig>("{}"), BulkheadConfig::default());
    assert_eq!(parse::<RateLimitConfig>("{}"), RateLimitConfig::default());
    assert_eq!(parse::<ResilienceConfig>("{}"), ResilienceConfig::default());

    // And it builds what the builder builds with nothing set (time is paused, so both
    // layers' clocks start at the same instant).
    same(
        CircuitBreakerConfig::default().build().unwrap(),
        CircuitBreakerLayer::builder().build().unwrap(),
    );
    same(
        RetryConfig::default().build().unwrap(),
        RetryLayer::builder().build().unwrap(),
    );
    assert_eq!(
        BackoffConfig::default().build().unwrap(),
        Backoff::exponential(ms(50), 2.0)
            .unwrap()
            .with_cap(Duration::from_secs(5))
    );
    same(
        RetryBudgetConfig::default().build().unwrap(),
        RetryBudget::builder().build().unwrap(),
    );

    // Where the builder requires a value, the default has none and builds what the
    // builder builds with just that value.
    let mut bulkhead = BulkheadConfig::default();
    bulkhead.max_concurrent = Some(8);
    same(bulkhead.build().unwrap(), BulkheadLayer::new(8).unwrap());
    let mut limit = RateLimitConfig::default();
    limit.rate = Some(100);
    limit.burst = Some(10);
    same(
        limit.build().unwrap(),
        RateLimitLayer::new(100, Duration::from_secs(1), 10).unwrap(),
    );
    let mut timeout = TimeoutConfig::default();
    timeout.timeout = Some(Duration::from_secs(2));
    same(
        timeout.build().unwrap(),
        TimeoutLayer::new(Duration::from_secs(2)).unwrap(),
    );

    // The documented numbers.
    let d = CircuitBreakerConfig::default();
    assert_eq!(d.window, WindowConfig::Count { calls: 100 });
    assert_eq!(d.minimum_calls, 10);
    assert_eq!(d.failure_rate_threshold, 50.0);
    assert_eq!(d.wait_in_open, Duration::from_secs(30));
    assert_eq!(d.max_wait_in_half_open, Some(Duration::from_secs(60)));
    let r = RetryConfig::default();
    assert_eq!(r.max_attempts, 3);
    assert_eq!(r.backoff.kind, BackoffKind::Exponential);
    assert_eq!(r.backoff.jitter, JitterKind::Full);
    assert_eq!(r.budget, Some(RetryBudgetConfig::default()));
    assert_eq!(r.max_wait, Duration::from_secs(30));
}

#[test]
fn an_unknown_field_is_an_error() {
    for (json, field) in [
        (r#"{ "name": "x", "circuit_breakr": {} }"#, "circuit_breakr"),
        (
            r#"{ "name": "x", "circuit_breaker": { "failure_rate_treshold": 50 } }"#,
            "failure_rate_treshold",
        ),
        (
            r#"{ "name": "x", "retry": { "backoff": { "multiplyer": 2 } } }"#,
            "multiplyer",
        ),
        (
            r#"{ "name": "x", "retry": { "budget": { "ratio": 0.1 } } }"#,
            "ratio",
        ),
        (
            r#"{ "name": "x", "circuit_breaker": { "window": { "kind": "count", "call": 5 } } }"#,
            "call",
        ),
        (
            r#"{ "name": "x", "bulkhead": { "max_concurrency": 5 } }"#,
            "max_concurrency",
        ),
        (r#"{ "name": "x", "rate_limit": { "per": "1s" } }"#, "per"),
    ] {
        let err = parse_error::<ResilienceConfig>(json);
        assert!(
            err.contains(&format!("unknown field `{field}`")),
            "{json}: {err}"
        );
    }
    let err = parse_error::<TimeoutConfig>(r#"{ "duration": "1s" }"#);
    assert!(err.contains("unknown field `duration`"), "{err}");
    // An unknown kind is an error too.
    let err = parse_error::<BackoffConfig>(r#"{ "kind": "fibonacci" }"#);
    assert!(err.contains("unknown variant `fibonacci`"), "{err}");
    let err = parse_error::<CircuitBreakerConfig>(r#"{ "window": { "kind": "sliding" } }"#);
    assert!(err.contains("unknown variant `sliding`"), "{err}");
}

#[test]
fn a_malformed_duration_is_an_error() {
    for json in [
        r#"{ "wait_in_open": "10 parsecs" }"#,
        r#"{ "wait_in_open": "10" }"#,
        r#"{ "wait_in_open": 10 }"#,
        r#"{ "wait_in_open": "-1s" }"#,
        r#"{ "slow_call_duration": "fast" }"#,
        r#"{ "max_wait_in_half_open": "soon" }"#,
        r#"{ "max_wait_in_half_open": 60 }"#,
        r#"{ "max_wait_in_half_open": true }"#,
        r#"{ "open_backoff": { "max_wait": "5 minutes and a bit" } }"#,
        r#"{ "window": { "kind": "time", "duration": "1 fortnight", "buckets": 6 } }"#,
    ] {
        let err = parse_error::<CircuitBreakerConfig>(json);
        assert!(
            err.contains("duration") || err.contains("invalid"),
            "{json}: {err}"
        );
    }
    let err = parse_error::<ResilienceConfig>(r#"{ "name": "x", "attempt_timeout": "300" }"#);
    assert!(err.contains("expected a duration"), "{err}");
    let err = parse_error::<RetryConfig>(r#"{ "backoff": { "base": "fifty ms" } }"#);
    assert!(err.contains("expected a duration"), "{err}");
    // A budget is a table, or false/null.
    let err = parse_error::<RetryConfig>(r#"{ "budget": "10s" }"#);
    assert!(err.contains("false (or null) for none"), "{err}");
}

/// The field a config's build refuses.
fn refused<T>(built: Result<T, ConfigError>) -> ConfigError {
    match built {
        Ok(_) => panic!("built, but should have been refused"),
        Err(e) => e,
    }
}

#[test]
fn an_invalid_value_is_a_config_error_naming_the_field() {
    let breaker = |json: &str| refused(parse::<CircuitBreakerConfig>(json).build()).field();
    assert_eq!(
        breaker(r#"{ "failure_rate_threshold": 0 }"#),
        "failure_rate_threshold"
    );
    assert_eq!(
        breaker(r#"{ "slow_call_rate_threshold": 101 }"#),
        "slow_call_rate_threshold"
    );
    assert_eq!(breaker(r#"{ "minimum_calls": 0 }"#), "minimum_calls");
    assert_eq!(
        breaker(r#"{ "window": { "kind": "count", "calls": 0 } }"#),
        "count_window"
    );
    assert_eq!(
        breaker(r#"{ "window": { "kind": "time", "duration": "1m", "buckets": 0 } }"#),
        "time_window"
    );
    assert_eq!(
        breaker(r#"{ "open_backoff": { "multiplier": 0.5 } }"#),
        "open_backoff"
    );
    assert_eq!(
        breaker(r#"{ "wait_in_open": "10m", "open_backoff": { "max_wait": "1m" } }"#),
        "open_backoff"
    );
    assert_eq!(breaker(r#"{ "open_jitter": 2 }"#), "open_jitter");
    assert_eq!(
        breaker(r#"{ "permitted_calls_in_half_open": 0 }"#),
        "permitted_calls_in_half_open"
    );
    assert_eq!(
        breaker(r#"{ "max_wait_in_half_open": "0s" }"#),
        "max_wait_in_half_open"
    );
    // A long wait_in_open with no max_wait is fine: the cap follows it, as the
    // builder's default does.
    parse::<CircuitBreakerConfig>(r#"{ "wait_in_open": "10m" }"#)
        .build()
        .unwrap();

    let retry = |json: &str| refused(parse::<RetryConfig>(json).build()).field();
    assert_eq!(retry(r#"{ "max_attempts": 0 }"#), "max_attempts");
    assert_eq!(retry(r#"{ "deadline": "0s" }"#), "deadline");
    assert_eq!(
        retry(r#"{ "deadline": "1s", "min_attempt_time": "1s" }"#),
        "min_attempt_time"
    );
    assert_eq!(
        retry(r#"{ "backoff": { "multiplier": -1 } }"#),
        "multiplier"
    );
    assert_eq!(
        retry(r#"{ "budget": { "retry_ratio": 2000 } }"#),
        "retry_ratio"
    );
    assert_eq!(retry(r#"{ "budget": { "slots": 0 } }"#), "slots");
    assert_eq!(retry(r#"{ "budget": { "ttl": "2d" } }"#), "ttl");
    assert_eq!(
        refused(
            parse::<RetryConfig>(r#"{ "max_attempts": 0 }"#)
                .builder()
                .and_then(|b| b.build())
        )
        .field(),
        "max_attempts"
    );

    let bulkhead = |json: &str| refused(parse::<BulkheadConfig>(json).build()).field();
    assert_eq!(bulkhead("{}"), "max_concurrent");
    assert_eq!(bulkhead(r#"{ "max_concurrent": 0 }"#), "max_concurrent");
    assert_eq!(
        bulkhead(r#"{ "max_concurrent": 1, "max_waiting": 5 }"#),
        "max_waiting"
    );
    assert_eq!(
        bulkhead(r#"{ "max_concurrent": 1, "max_wait": "1s", "backpressure": true }"#),
        "backpressure"
    );

    let limit = |json: &str| refused(parse::<RateLimitConfig>(json).build()).field();
    assert_eq!(limit("{}"), "rate");
    assert_eq!(limit(r#"{ "rate": 10 }"#), "burst");
    assert_eq!(limit(r#"{ "rate": 0, "burst": 1 }"#), "rate");
    assert_eq!(limit(r#"{ "rate": 10, "burst": 0 }"#), "burst");

    let timeout = |json: &str| refused(parse::<TimeoutConfig>(json).build()).field();
    assert_eq!(timeout("{}"), "timeout");
    assert_eq!(timeout(r#"{ "timeout": "0s" }"#), "timeout");

    // In a pipeline: the field as its builder names it, and the section in the text.
    let pipeline = |json: &str| refused(parse::<ResilienceConfig>(json).build());
    let err = pipeline(r#"{ "name": "p", "retry": { "max_attempts": 0 } }"#);
    assert_eq!(err.field(), "max_attempts");
    assert!(err.to_string().contains(", in section `retry`"), "{err}");
    let err = pipeline(r#"{ "name": "p", "circuit_breaker": { "failure_rate_threshold": 0 } }"#);
    assert_eq!(err.field(), "failure_rate_threshold");
    assert!(
        err.to_string().contains(", in section `circuit_breaker`"),
        "{err}"
    );
    assert_eq!(
        pipeline(r#"{ "name": "p", "bulkhead": {} }"#).field(),
        "max_concurrent"
    );
    assert_eq!(
        pipeline(r#"{ "name": "p", "rate_limit": { "rate": 5 } }"#).field(),
        "burst"
    );
    assert_eq!(
        pipeline(r#"{ "name": "p", "timeout": "0s" }"#).field(),
        "timeout"
    );
    assert_eq!(
        pipeline(r#"{ "name": "p", "attempt_timeout": "0s" }"#).field(),
        "attempt_timeout"
    );
    assert_eq!(pipeline(r#"{ "retry": {} }"#).field(), "name");
    assert_eq!(pipeline(r#"{ "name": "" }"#).field(), "name");
}

/// Every field away from its default.
fn everything() -> ResilienceConfig {
    let mut breaker = CircuitBreakerConfig::default();
    breaker.name = Some("breaker".into());
    breaker.window = WindowConfig::Time {
        duration: Duration::from_secs(90),
        buckets: 9,
    };
    breaker.minimum_calls = 7;
    breaker.failure_rate_threshold = 33.33;
    breaker.slow_call_rate_threshold = 80.5;
    breaker.slow_call_duration = Some(Duration::from_millis(1_500));
    breaker.wait_in_open = Duration::from_secs(5 * 60 + 1);
    breaker.open_backoff.multiplier = 1.5;
    breaker.open_backoff.max_wait = Some(Duration::from_secs(3 * 3600));
    breaker.open_jitter = 0.25;
    breaker.permitted_calls_in_half_open = 3;
    breaker.max_wait_in_half_open = None;

    let mut retry = RetryConfig::default();
    retry.name = Some("retry".into());
    retry.max_attempts = 6;
    retry.backoff.kind = BackoffKind::Linear;
    retry.backoff.base = Duration::from_nanos(1_000_001);
    retry.backoff.multiplier = 0.5;
    retry.backoff.cap = Duration::from_secs(2);
    retry.backoff.jitter = JitterKind::Decorrelated;
    retry.budget = None;
    retry.deadline = Some(Duration::from_secs(12));
    retry.min_attempt_time = Duration::from_millis(250);
    retry.max_wait = Duration::from_secs(3);
    retry.seed = Some(u64::MAX);

    let mut limit = RateLimitConfig::default();
    limit.name = Some("limit".into());
    limit.rate = Some(250);
    limit.period = Duration::from_secs(60);
    limit.burst = Some(25);
    limit.max_wait = Some(Duration::from_millis(40));

    let mut bulkhead = BulkheadConfig::default();
    bulkhead.name = Some("pool".into());
    bulkhead.max_concurrent = Some(16);
    bulkhead.max_wait = Some(Duration::from_millis(20));
    bulkhead.max_waiting = Some(64);

    let mut config = ResilienceConfig::default();
    config.name = "everything".into();
    config.timeout = Some(Duration::from_secs(3600 + 30 * 60));
    config.retry = Some(retry);
    config.circuit_breaker = Some(breaker);
    config.rate_limit = Some(limit);
    config.attempt_timeout = Some(Duration::from_micros(300_500));
    config.bulkhead = Some(bulkhead);
    config
}

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, value, "{json}");
}

#[test]
fn a_round_trip_is_identity() {
    let config = everything();
    config.build().expect("a valid configuration");
    round_trip(&config);
    round_trip(&ResilienceConfig::default());
    round_trip(&CircuitBreakerConfig::default());
    round_trip(&RetryConfig::default());
    round_trip(&BulkheadConfig::default());
    round_trip(&RateLimitConfig::default());
    round_trip(&TimeoutConfig::default());
    let mut with_budget = RetryConfig::default();
    let mut budget = RetryBudgetConfig::default();
    budget.ttl = Duration::from_secs(30);
    with_budget.budget = Some(budget);
    round_trip(&with_budget);

    // What is written is what a person would write.
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["timeout"], "1h 30m");
    assert_eq!(json["attempt_timeout"], "300ms 500us");
    assert_eq!(json["retry"]["budget"], false);
    assert_eq!(json["retry"]["backoff"]["kind"], "linear");
    assert_eq!(json["retry"]["backoff"]["jitter"], "decorrelated");
    assert_eq!(json["circuit_breaker"]["max_wait_in_half_open"], false);
    assert_eq!(
        json["circuit_breaker"]["window"],
        serde_json::json!({ "kind": "time", "duration": "1m 30s", "buckets": 9 })
    );
    let defaults = serde_json::to_value(CircuitBreakerConfig::default()).unwrap();
    assert_eq!(defaults["wait_in_open"], "30s");
    assert_eq!(defaults["max_wait_in_half_open"], "1m");
    assert!(defaults.get("name").is_none(), "unset options are left out");
}

#[test]
fn a_setting_on_by_default_is_turned_off_with_false_or_null() {
    for off in ["false", "null"] {
        let retry: RetryConfig = parse(&format!(r#"{{ "budget": {off} }}"#));
        assert_eq!(retry.budget, None);
        assert!(retry.build().unwrap().budget().is_none());
        let breaker: CircuitBreakerConfig =
            parse(&format!(r#"{{ "max_wait_in_half_open": {off} }}"#));
        assert_eq!(breaker.max_wait_in_half_open, None);
        breaker.build().unwrap();
    }
    let retry: RetryConfig = parse(r#"{ "budget": true }"#);
    assert_eq!(retry.budget, Some(RetryBudgetConfig::default()));
    let retry: RetryConfig = parse(r#"{ "budget": { "min_retries_per_sec": 1 } }"#);
    assert_eq!(retry.budget.unwrap().min_retries_per_sec, 1);
    let breaker: CircuitBreakerConfig = parse(r#"{ "max_wait_in_half_open": "5s" }"#);
    assert_eq!(breaker.max_wait_in_half_open, Some(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn a_section_gives_its_builder_for_what_a_file_cannot_hold() {
    // A keyed rate limiter: the key function is code.
    let config: RateLimitConfig = parse(r#"{ "rate": 1, "period": "1m", "burst": 1 }"#);
    let per_client = config
        .builder()
        .keyed(1_000, |req: &(u32, u32)| req.0)
        .unwrap();
    let mut svc = per_client.layer(service_fn(|req: (u32, u32)| async move {
        Ok::<_, BoxError>(req.1)
    }));
    assert_eq!(svc.ready().await.unwrap().call((1, 10)).await.unwrap(), 10);
    assert_eq!(svc.ready().await.unwrap().call((2, 20)).await.unwrap(), 20);
    let err = svc.ready().await.unwrap().call((1, 11)).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::RateLimited));

    // A breaker with a transition listener, in a pipeline put together in code.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let breaker: CircuitBreakerConfig =
        parse(r#"{ "window": { "kind": "count", "calls": 2 }, "minimum_calls": 2 }"#);
    let breaker = breaker
        .builder()
        .on_transition(move |t| s.lock().unwrap().push((t.from, t.to)))
        .build()
        .unwrap();
    let retry: RetryConfig = parse(r#"{ "max_attempts": 1 }"#);
    let pipeline = Resilience::new("custom")
        .retry(retry.builder().unwrap().build().unwrap())
        .circuit_breaker(breaker);
    let calls = Calls::new();
    let mut svc = pipeline.layer(calls.failing());
    for _ in 0..2 {
        let _ = svc.ready().await.unwrap().call(0).await;
    }
    assert_eq!(*seen.lock().unwrap(), [(State::Closed, State::Open)]);
}

/// A breaker section's builder leaves the open wait's cap to the builder unless the
/// file gives one: a longer `wait_in_open` set in code then moves the default cap with
/// it, as on a builder of its own; a cap written in the file still holds.
#[tokio::test(start_paused = true)]
async fn a_breaker_sections_builder_takes_a_longer_wait_in_open() {
    let long = Duration::from_secs(600);
    let defaults: CircuitBreakerConfig = parse("{}");
    same(
        defaults.builder().wait_in_open(long).build().unwrap(),
        CircuitBreakerLayer::builder()
            .wait_in_open(long)
            .build()
            .unwrap(),
    );
    // A multiplier alone keeps the default cap too.
    let grows: CircuitBreakerConfig = parse(r#"{ "open_backoff": { "multiplier": 3 } }"#);
    same(
        grows.builder().wait_in_open(long).build().unwrap(),
        CircuitBreakerLayer::builder()
            .wait_in_open(long)
            .open_backoff_multiplier(3.0)
            .build()
            .unwrap(),
    );
    // A cap from the file below the wait is refused, naming it.
    let capped: CircuitBreakerConfig = parse(r#"{ "open_backoff": { "max_wait": "1m" } }"#);
    let err = refused(capped.builder().wait_in_open(long).build());
    assert_eq!(err.field(), "open_backoff");
}
