//! Every layer records under the names, labels and values the `observe` docs list,
//! through the `metrics` facade, with handles registered once per instance.
//!
//! Each test has its own debugging recorder, made current (`with_local_recorder`) while
//! the layers are built and make their services, which is when they register their
//! handles; the calls then use those handles, wherever they run.
#![cfg(feature = "metrics")]

use buttress::BoxError;
use buttress::Resilience;
use buttress::bulkhead::BulkheadLayer;
use buttress::bulkhead::error::BulkheadFull;
use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use buttress::fallback::FallbackLayer;
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::{Backoff, Decision, RetryBudget, RetryLayer};
use buttress::timeout::TimeoutLayer;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};

/// A recorder keeping every registered metric in `metrics-util`'s atomic registry, read
/// without resetting (unlike the debugging recorder's snapshots, which zero counters
/// and gauges), and counting registrations.
struct Rec {
    registry: Registry<Key, AtomicStorage>,
    registrations: AtomicUsize,
}

impl Rec {
    fn new() -> Self {
        Rec {
            registry: Registry::atomic(),
            registrations: AtomicUsize::new(0),
        }
    }

    /// Runs `f` with this recorder current (layers built or made inside register here).
    fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self, f)
    }

    fn registrations(&self) -> usize {
        self.registrations.load(Ordering::SeqCst)
    }

    fn key(name: &str, labels: &[(&str, &str)]) -> Key {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(k.to_string(), v.to_string()))
            .collect();
        Key::from_parts(name.to_string(), labels)
    }

    /// The key registered as `name` with exactly `labels` (in any order).
    fn find<V>(
        handles: impl IntoIterator<Item = (Key, V)>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<V> {
        let mut want = Self::key(name, labels)
            .labels()
            .cloned()
            .collect::<Vec<_>>();
        want.sort();
        handles.into_iter().find_map(|(key, v)| {
            let mut have = key.labels().cloned().collect::<Vec<_>>();
            have.sort();
            (key.name() == name && have == want).then_some(v)
        })
    }

    /// Whether a counter `name` with exactly `labels` is registered.
    fn has_counter(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        Self::find(self.registry.get_counter_handles(), name, labels).is_some()
    }

    /// A counter's value; panics if it was never registered.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        Self::find(self.registry.get_counter_handles(), name, labels)
            .unwrap_or_else(|| panic!("counter {name} {labels:?} not registered"))
            .load(Ordering::SeqCst)
    }

    /// A gauge's value; panics if it was never registered.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let bits = Self::find(self.registry.get_gauge_handles(), name, labels)
            .unwrap_or_else(|| panic!("gauge {name} {labels:?} not registered"))
            .load(Ordering::SeqCst);
        f64::from_bits(bits)
    }

    /// A histogram's samples; panics if it was never registered.
    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        Self::find(self.registry.get_histogram_handles(), name, labels)
            .unwrap_or_else(|| panic!("histogram {name} {labels:?} not registered"))
            .data()
    }

    /// Every metric name registered, sorted, without repeats.
    fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.registry
            .visit_counters(|k, _| names.push(k.name().to_string()));
        self.registry
            .visit_gauges(|k, _| names.push(k.name().to_string()));
        self.registry
            .visit_histograms(|k, _| names.push(k.name().to_string()));
        names.sort();
        names.dedup();
        names
    }
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        self.registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// An inner service answering call `n` (from 0) with `f(n)`.
fn scripted<T: Send + 'static>(
    f: impl Fn(u32) -> Result<T, BoxError> + Clone + Send + 'static,
) -> impl Service<u32, Response = T, Error = BoxError, Future: Send> + Clone {
    let n = Arc::new(AtomicUsize::new(0));
    service_fn(move |_: u32| {
        let i = n.fetch_add(1, Ordering::SeqCst) as u32;
        let r = f(i);
        async move { r }
    })
}

async fn call<S: Service<u32>>(svc: &mut S) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(0).await
}

#[tokio::test(start_paused = true)]
async fn timeout_counts_the_calls_it_cuts() {
    let rec = Rec::new();
    let mut svc = rec.scope(|| {
        TimeoutLayer::new(Duration::from_millis(100))
            .unwrap()
            .name("db")
            .layer(service_fn(|ms: u64| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, BoxError>(ms)
            }))
    });
    let n = [("name", "db")];
    assert_eq!(rec.counter("buttress_timeout_elapsed_total", &n), 0);

    svc.ready().await.unwrap().call(10).await.unwrap();
    assert!(svc.ready().await.unwrap().call(500).await.is_err());
    assert!(svc.ready().await.unwrap().call(500).await.is_err());
    svc.ready().await.unwrap().call(0).await.unwrap();

    assert_eq!(rec.counter("buttress_timeout_elapsed_total", &n), 2);
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "db"), ("reason", "elapsed")]
        ),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn retry_counts_attempts_retries_and_exhaustion() {
    let rec = Rec::new();
    // Fails calls 0, 1 (retried, then succeeds on 2), then 3, 4, 5 (exhausted).
    let inner = scripted(|n| match n {
        2 => Ok(n),
        _ => Err("down".into()),
    });
    let mut svc = rec.scope(|| {
        RetryLayer::builder()
            .name("api")
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
            .no_budget()
            .build()
            .unwrap()
            .layer(inner)
    });
    let n = [("name", "api")];
    assert_eq!(call(&mut svc).await.unwrap(), 2);
    assert_eq!(rec.counter("buttress_retry_attempts_total", &n), 3);
    assert_eq!(
        rec.counter(
            "buttress_retry_retries_total",
            &[("name", "api"), ("reason", "error")]
        ),
        2
    );
    assert_eq!(rec.counter("buttress_retry_retries_exhausted_total", &n), 0);

    assert!(call(&mut svc).await.is_err());
    assert_eq!(rec.counter("buttress_retry_attempts_total", &n), 6);
    assert_eq!(
        rec.counter(
            "buttress_retry_retries_total",
            &[("name", "api"), ("reason", "error")]
        ),
        4
    );
    assert_eq!(rec.counter("buttress_retry_retries_exhausted_total", &n), 1);
    assert_eq!(
        rec.counter(
            "buttress_retry_retries_total",
            &[("name", "api"), ("reason", "pushback")]
        ),
        0
    );
    assert_eq!(rec.counter("buttress_retry_budget_exhausted_total", &n), 0);
}

/// A response the policy retries (a 503, say) counts as much as an error: when the
/// attempts run out and when the budget refuses.
#[tokio::test(start_paused = true)]
async fn retry_counts_a_retried_response_that_is_still_the_answer() {
    let rec = Rec::new();
    let unavailable = |_: &u32, r: &Result<u32, BoxError>| match r {
        Ok(503) | Err(_) => Decision::Retry,
        Ok(_) => Decision::Return,
    };
    let mut svc = rec.scope(|| {
        RetryLayer::builder()
            .name("api")
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
            .no_budget()
            .policy(unavailable)
            .build()
            .unwrap()
            .layer(scripted(|_| Ok::<u32, BoxError>(503)))
    });
    let n = [("name", "api")];
    assert_eq!(call(&mut svc).await.unwrap(), 503, "returned as it is");
    assert_eq!(rec.counter("buttress_retry_attempts_total", &n), 3);
    assert_eq!(rec.counter("buttress_retry_retries_exhausted_total", &n), 1);

    let empty = RetryBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    let mut svc = rec.scope(|| {
        RetryLayer::builder()
            .name("web")
            .budget(empty)
            .policy(unavailable)
            .build()
            .unwrap()
            .layer(scripted(|_| Ok::<u32, BoxError>(503)))
    });
    assert_eq!(call(&mut svc).await.unwrap(), 503);
    let n = [("name", "web")];
    assert_eq!(rec.counter("buttress_retry_budget_exhausted_total", &n), 1);
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "web"), ("reason", "budget_exhausted")]
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn retry_counts_budget_exhaustion_as_a_rejection() {
    let rec = Rec::new();
    let empty = RetryBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    let mut svc = rec.scope(|| {
        RetryLayer::builder()
            .name("api")
            .budget(empty)
            .build()
            .unwrap()
            .layer(scripted(|_| Err::<u32, _>("down".into())))
    });
    assert!(call(&mut svc).await.is_err());
    let n = [("name", "api")];
    assert_eq!(rec.counter("buttress_retry_attempts_total", &n), 1);
    assert_eq!(rec.counter("buttress_retry_budget_exhausted_total", &n), 1);
    assert_eq!(rec.counter("buttress_retry_retries_exhausted_total", &n), 0);
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "api"), ("reason", "budget_exhausted")]
        ),
        1
    );
}

#[tokio::test]
async fn fallback_counts_the_calls_it_answers() {
    let rec = Rec::new();
    let mut svc = rec.scope(|| {
        FallbackLayer::value(7u32)
            .name("cache")
            .layer(scripted(|n| {
                if n % 2 == 0 {
                    Err("miss".into())
                } else {
                    Ok(n)
                }
            }))
    });
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(call(&mut svc).await.unwrap());
    }
    assert_eq!(answers, [7, 1, 7, 3]);
    assert_eq!(
        rec.counter("buttress_fallback_taken_total", &[("name", "cache")]),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn unnamed_parts_take_the_pipelines_name_and_named_ones_keep_theirs() {
    let rec = Rec::new();
    let mut svc = rec.scope(|| {
        Resilience::new("payments")
            .fallback(FallbackLayer::value(0u32))
            .retry(
                RetryLayer::builder()
                    .max_attempts(2)
                    .backoff(Backoff::constant(Duration::from_millis(1)))
                    .no_budget()
                    .build()
                    .unwrap(),
            )
            .timeout(TimeoutLayer::new(Duration::from_secs(5)).unwrap())
            .attempt_timeout(TimeoutLayer::new(Duration::from_millis(50)).unwrap())
            .service(service_fn(|_: u32| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<u32, BoxError>(1)
            }))
    });
    assert_eq!(call(&mut svc).await.unwrap(), 0, "the fallback answered");

    let p = [("name", "payments")];
    assert_eq!(rec.counter("buttress_retry_attempts_total", &p), 2);
    assert_eq!(rec.counter("buttress_fallback_taken_total", &p), 1);
    assert_eq!(rec.counter("buttress_timeout_elapsed_total", &p), 0);
    assert_eq!(
        rec.counter(
            "buttress_timeout_elapsed_total",
            &[("name", "payments.attempt")]
        ),
        2
    );

    // A part with a name of its own keeps it.
    let rec = Rec::new();
    let _svc = rec.scope(|| {
        Resilience::new("payments")
            .timeout(
                TimeoutLayer::new(Duration::from_secs(1))
                    .unwrap()
                    .name("own"),
            )
            .service(service_fn(|_: u32| async { Ok::<u32, BoxError>(1) }))
    });
    assert_eq!(
        rec.counter("buttress_timeout_elapsed_total", &[("name", "own")]),
        0
    );
    assert!(!rec.has_counter("buttress_timeout_elapsed_total", &[("name", "payments")]));
}

#[tokio::test]
async fn an_unnamed_layer_registers_under_the_empty_name_when_it_makes_a_service() {
    let rec = Rec::new();
    let layer = rec.scope(|| FallbackLayer::value(0u32));
    assert_eq!(
        rec.registrations(),
        0,
        "nothing registered before a service"
    );
    let mut svc = rec.scope(|| layer.layer(scripted(|_| Err::<u32, _>("x".into()))));
    call(&mut svc).await.unwrap();
    assert_eq!(
        rec.counter("buttress_fallback_taken_total", &[("name", "")]),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn handles_are_registered_once_per_instance_never_per_call() {
    let rec = Rec::new();
    let (mut a, mut b) = rec.scope(|| {
        let retry = RetryLayer::builder()
            .name("api")
            .backoff(Backoff::constant(Duration::from_millis(1)))
            .build()
            .unwrap();
        let inner = scripted(|n| if n % 3 == 0 { Err("x".into()) } else { Ok(n) });
        (retry.layer(inner.clone()), retry.layer(inner))
    });
    let registered = rec.registrations();
    assert!(registered > 0);
    // The calls run with this recorder current, so a registration made per call would
    // reach it and be counted (the runtime is current-thread: one thread, one guard).
    let _current = metrics::set_default_local_recorder(&rec);
    for _ in 0..20 {
        let _ = call(&mut a).await;
        let _ = call(&mut b.clone()).await;
    }
    let _ = call(&mut b).await;
    assert_eq!(rec.registrations(), registered, "calls registered nothing");
    // 41 calls through one shared inner service whose invocations 0, 3, 6, ... fail:
    // every other call (the 1st, 3rd, ..., 41st: 21 of them) fails once and succeeds
    // on its retry, so 41 first attempts + 21 retries.
    assert_eq!(
        rec.counter("buttress_retry_attempts_total", &[("name", "api")]),
        41 + 21
    );
    assert!(
        rec.names()
            .iter()
            .all(|n| n.starts_with("buttress_") && !n.contains('-')),
        "{:?}",
        rec.names()
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_counts_outcomes_rejections_states_and_transitions() {
    let rec = Rec::new();
    // Calls 0..4: success, failure, success, failure (trips at 50 %); call 4 is the
    // half-open probe and succeeds. Each takes 20 ms.
    let inner = service_fn(|fail: bool| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if fail {
            Err::<u32, BoxError>("down".into())
        } else {
            Ok(1)
        }
    });
    let (layer, mut svc) = rec.scope(|| {
        let layer = CircuitBreakerLayer::builder()
            .name("db")
            .count_window(4)
            .minimum_calls(4)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_secs(10))
            .permitted_calls_in_half_open(1)
            .slow_call_duration(Duration::from_secs(1))
            .build()
            .unwrap();
        let svc = layer.layer(inner);
        (layer, svc)
    });
    let handle = layer.handle();
    let db = |k: &'static str, v: &'static str| [("name", "db"), (k, v)];
    let state = |s: &'static str| rec.gauge("buttress_circuit_breaker_state", &db("state", s));
    assert_eq!(state("closed"), 1.0);
    assert_eq!(state("open"), 0.0);

    for fail in [false, true, false, true] {
        let _ = svc.ready().await.unwrap().call(fail).await;
    }
    assert_eq!(handle.state(), State::Open);
    let calls =
        |o: &'static str| rec.counter("buttress_circuit_breaker_calls_total", &db("outcome", o));
    assert_eq!(
        (calls("success"), calls("failure"), calls("ignored")),
        (2, 2, 0)
    );
    assert_eq!((state("closed"), state("open")), (0.0, 1.0));
    let transitions = |from: &str, to: &str| {
        rec.counter(
            "buttress_circuit_breaker_transitions_total",
            &[("name", "db"), ("from", from), ("to", to)],
        )
    };
    assert_eq!(transitions("closed", "open"), 1);

    assert!(svc.ready().await.unwrap().call(false).await.is_err());
    assert!(svc.ready().await.unwrap().call(false).await.is_err());
    assert_eq!(calls("rejected"), 2);
    assert_eq!(
        rec.counter("buttress_rejections_total", &db("reason", "circuit_open")),
        2
    );

    tokio::time::advance(Duration::from_secs(10)).await;
    svc.ready().await.unwrap().call(false).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(transitions("open", "half_open"), 1);
    assert_eq!(transitions("half_open", "closed"), 1);
    assert_eq!(
        (state("closed"), state("open"), state("half_open")),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(calls("success"), 3);

    // Timed calls (slow-call tracking is on): one sample per admitted call, 20 ms each.
    let durations = rec.histogram(
        "buttress_circuit_breaker_call_duration_seconds",
        &[("name", "db")],
    );
    assert_eq!(durations.len(), 5);
    assert!(
        durations.iter().all(|d| (*d - 0.020).abs() < 1e-9),
        "{durations:?}"
    );

    handle.force_open();
    assert_eq!(transitions("closed", "forced_open"), 1);
    assert_eq!((state("closed"), state("forced_open")), (0.0, 1.0));
    handle.reset();
    assert_eq!(transitions("forced_open", "closed"), 1);
    assert_eq!(state("closed"), 1.0);
}

#[tokio::test]
async fn breaker_counts_ignored_outcomes_and_registers_no_histogram_untimed() {
    let rec = Rec::new();
    let mut svc = rec.scope(|| {
        CircuitBreakerLayer::builder()
            .name("db")
            .build()
            .unwrap()
            .layer(scripted(|n| match n {
                // A bulkhead inside the breaker refused: not the backend's failure.
                0 => Err(BulkheadFull::new().into()),
                _ => Ok(n),
            }))
    });
    assert!(call(&mut svc).await.is_err());
    call(&mut svc).await.unwrap();
    let calls = |o: &'static str| {
        rec.counter(
            "buttress_circuit_breaker_calls_total",
            &[("name", "db"), ("outcome", o)],
        )
    };
    assert_eq!(
        (calls("ignored"), calls("success"), calls("failure")),
        (1, 1, 0)
    );
    assert!(
        !rec.names()
            .contains(&"buttress_circuit_breaker_call_duration_seconds".to_string()),
        "no clock read for metrics: no duration without slow-call tracking"
    );
}

#[tokio::test]
async fn an_unnamed_breaker_in_a_pipeline_shows_its_state_under_the_pipeline_name() {
    let rec = Rec::new();
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    let handle = breaker.handle();
    // Moved before the pipeline names it: the gauge shows the state at registration.
    handle.force_open();
    let _svc = rec.scope(|| {
        Resilience::new("orders")
            .circuit_breaker(breaker)
            .service(scripted(Ok::<u32, BoxError>))
    });
    let state = |s: &'static str| {
        rec.gauge(
            "buttress_circuit_breaker_state",
            &[("name", "orders"), ("state", s)],
        )
    };
    assert_eq!((state("closed"), state("forced_open")), (0.0, 1.0));
    handle.reset();
    assert_eq!((state("closed"), state("forced_open")), (1.0, 0.0));
}

/// A service whose calls wait until `gate` is notified (one call per notification).
fn gated(
    gate: Arc<tokio::sync::Semaphore>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |n: u32| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            Ok::<u32, BoxError>(n)
        }
    })
}

#[tokio::test]
async fn bulkhead_shows_calls_in_flight_and_counts_rejections() {
    let rec = Rec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let svc = rec.scope(|| {
        BulkheadLayer::builder()
            .name("pool")
            .max_concurrent(2)
            .build()
            .unwrap()
            .layer(gated(gate.clone()))
    });
    let n = [("name", "pool")];
    let in_flight = || rec.gauge("buttress_bulkhead_in_flight", &n);
    assert_eq!(in_flight(), 0.0);
    let mut a = svc.clone();
    let mut b = svc.clone();
    let mut c = svc.clone();
    let fa = a.ready().await.unwrap().call(1);
    let fb = b.ready().await.unwrap().call(2);
    assert_eq!(in_flight(), 2.0);
    assert!(c.ready().await.unwrap().call(3).await.is_err(), "full");
    assert_eq!(rec.counter("buttress_bulkhead_rejected_total", &n), 1);
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "pool"), ("reason", "bulkhead_full")]
        ),
        1
    );
    gate.add_permits(1);
    assert_eq!(fa.await.unwrap(), 1);
    assert_eq!(in_flight(), 1.0);
    drop(fb); // cancelled: the slot and the gauge come back all the same
    assert_eq!(in_flight(), 0.0);
    assert!(
        !rec.names()
            .contains(&"buttress_bulkhead_waiting".to_string()),
        "no waiting gauge when calls never wait"
    );
}

#[tokio::test(start_paused = true)]
async fn bulkhead_shows_waiting_calls_and_times_their_waits() {
    let rec = Rec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let svc = rec.scope(|| {
        BulkheadLayer::builder()
            .name("pool")
            .max_concurrent(1)
            .max_wait(Duration::from_millis(100))
            .build()
            .unwrap()
            .layer(gated(gate.clone()))
    });
    let n = [("name", "pool")];
    let holder = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    assert_eq!(rec.gauge("buttress_bulkhead_in_flight", &n), 1.0);

    // Waits 30 ms and gets the slot; a second waiter gives up after 100 ms.
    let waiter = tokio::spawn(svc.clone().oneshot(2));
    let late = tokio::spawn(svc.clone().oneshot(3));
    tokio::task::yield_now().await;
    assert_eq!(rec.gauge("buttress_bulkhead_waiting", &n), 2.0);
    tokio::time::sleep(Duration::from_millis(30)).await;
    gate.add_permits(1);
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    tokio::task::yield_now().await;
    assert_eq!(rec.gauge("buttress_bulkhead_waiting", &n), 1.0);
    assert!(late.await.unwrap().is_err(), "waited too long");
    gate.add_permits(1);
    assert_eq!(waiter.await.unwrap().unwrap(), 2);

    assert_eq!(rec.gauge("buttress_bulkhead_waiting", &n), 0.0);
    assert_eq!(rec.gauge("buttress_bulkhead_in_flight", &n), 0.0);
    assert_eq!(rec.counter("buttress_bulkhead_rejected_total", &n), 1);
    let mut waits = rec.histogram("buttress_bulkhead_wait_duration_seconds", &n);
    waits.sort_by(f64::total_cmp);
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!((waits[0] - 0.030).abs() < 1e-3, "{waits:?}");
    assert!((waits[1] - 0.100).abs() < 1e-3, "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_counts_rejections_and_waits() {
    let rec = Rec::new();
    // One call per 100 ms, no burst beyond one.
    let mut strict = rec.scope(|| {
        RateLimitLayer::builder()
            .name("api")
            .rate(10)
            .burst(1)
            .build()
            .unwrap()
            .layer(scripted(Ok::<u32, BoxError>))
    });
    call(&mut strict).await.unwrap();
    assert!(call(&mut strict).await.is_err());
    assert!(call(&mut strict).await.is_err());
    let n = [("name", "api")];
    assert_eq!(rec.counter("buttress_rate_limit_rejected_total", &n), 2);
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "api"), ("reason", "rate_limited")]
        ),
        2
    );
    assert!(!rec.has_counter("buttress_rate_limit_waited_total", &n));

    let rec = Rec::new();
    let mut patient = rec.scope(|| {
        RateLimitLayer::builder()
            .name("api")
            .rate(10)
            .burst(1)
            .max_wait(Duration::from_secs(1))
            .build()
            .unwrap()
            .layer(scripted(Ok::<u32, BoxError>))
    });
    for _ in 0..3 {
        call(&mut patient).await.unwrap();
    }
    assert_eq!(rec.counter("buttress_rate_limit_waited_total", &n), 2);
    assert_eq!(rec.counter("buttress_rate_limit_rejected_total", &n), 0);
    let waits = rec.histogram("buttress_rate_limit_wait_duration_seconds", &n);
    assert_eq!(waits, [0.1, 0.1]);
}

#[tokio::test(start_paused = true)]
async fn every_layer_of_a_pipeline_records_under_its_name() {
    let rec = Rec::new();
    let mut svc = rec.scope(|| {
        Resilience::new("checkout")
            .fallback(FallbackLayer::value(0u32))
            .timeout(TimeoutLayer::new(Duration::from_secs(5)).unwrap())
            .retry(
                RetryLayer::builder()
                    .max_attempts(2)
                    .no_budget()
                    .build()
                    .unwrap(),
            )
            .circuit_breaker(CircuitBreakerLayer::builder().build().unwrap())
            .rate_limit(RateLimitLayer::new(1, Duration::from_secs(60), 1).unwrap())
            .attempt_timeout(TimeoutLayer::new(Duration::from_secs(1)).unwrap())
            .bulkhead(BulkheadLayer::new(4).unwrap())
            .service(scripted(|n| Ok::<u32, BoxError>(n + 1)))
    });
    assert_eq!(call(&mut svc).await.unwrap(), 1);
    // The limiter refuses the second call; the breaker ignores that refusal, the retry
    // does not wait its `retry_after` of a minute (over `max_wait`), and the fallback
    // answers.
    assert_eq!(call(&mut svc).await.unwrap(), 0);
    let c = [("name", "checkout")];
    let calls = |o: &'static str| {
        rec.counter(
            "buttress_circuit_breaker_calls_total",
            &[("name", "checkout"), ("outcome", o)],
        )
    };
    assert_eq!((calls("success"), calls("ignored")), (1, 1));
    assert_eq!(rec.counter("buttress_rate_limit_rejected_total", &c), 1);
    assert_eq!(rec.counter("buttress_retry_attempts_total", &c), 2);
    assert_eq!(rec.counter("buttress_fallback_taken_total", &c), 1);
    assert_eq!(rec.gauge("buttress_bulkhead_in_flight", &c), 0.0);
    assert_eq!(
        rec.counter(
            "buttress_timeout_elapsed_total",
            &[("name", "checkout.attempt")]
        ),
        0
    );
    assert_eq!(
        rec.counter(
            "buttress_rejections_total",
            &[("name", "checkout"), ("reason", "rate_limited")]
        ),
        1
    );
    assert!(rec.names().iter().all(|n| n.starts_with("buttress_")));
}
