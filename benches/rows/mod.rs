//! The rows of the comparison: every service the suite measures, built once here and
//! handed to whichever bench binary is visiting (criterion timings, allocation counts,
//! instruction counts, the report), so that all of them measure exactly the same
//! thing.
//!
//! Every row is the trivial always-ready service wrapped in one layer (or a stack),
//! configured so that nothing is ever rejected, retried or timed out: the figures are
//! the cost of the happy path, which is what a healthy service pays on every call.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::peers;
use crate::services::Bare;

/// Which workload a row wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `Service<u64>`, answering at once with its request.
    Trivial,
    /// `Service<http::Request<()>>`, answering at once with an empty `http::Response`.
    Http,
}

impl Workload {
    /// The criterion group name (1 thread).
    pub fn group(self) -> &'static str {
        match self {
            Workload::Trivial => "trivial",
            Workload::Http => "http",
        }
    }
}

/// The criterion group of the 2-thread rows (trivial workload only).
pub const TWO_THREADS: &str = "trivial_2threads";

/// What a row is, for the report.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub workload: Workload,
    /// Unique within its workload; the criterion benchmark id, so `[a-z0-9_]` only.
    pub id: &'static str,
    /// Whose code it is: `bare`, `buttress`, or the peer crate.
    pub who: &'static str,
    /// What the row does, in a few words.
    pub what: &'static str,
    /// Whether the row is also measured on 2 threads sharing one instance.
    pub two_threads: bool,
    /// Whether every call is refused: the row measures a rejection path, so the
    /// harnesses take an error as the expected answer, and it is not held to the
    /// happy paths' 0 allocations (a rejection's boxed error allocates).
    pub refuses: bool,
}

/// Something that measures (or lists) rows.
pub trait Visit {
    fn visit<Req, S>(&mut self, row: Row, svc: S, req: fn(u64) -> Req)
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Error: std::fmt::Debug;
}

/// One call the way every row makes it: `ready().await` then `call().await`.
#[inline]
pub async fn call<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
{
    svc.ready().await?.call(req).await
}

/// The trivial HTTP service: always ready, answers every request with an empty 200.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpBare;

impl Service<http::Request<()>> for HttpBare {
    type Response = http::Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<http::Response<()>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _req: http::Request<()>) -> Self::Future {
        ready(Ok(http::Response::new(())))
    }
}

/// The bare service holding shared state, as a client handle does (a connection pool, a
/// channel): its clones share one `Arc`. Calling it does not touch the `Arc`; cloning
/// it counts a reference. A retry that clones its inner service on every call (tower's)
/// pays that count per call; buttress's clones only when it retries.
fn shared_bare() -> peers::Extra<Bare, impl Fn() + Clone> {
    let shared = std::sync::Arc::new(());
    // Held, never touched by a call (`Extra` runs it in place, without a clone).
    let held = move || {
        let _held = &shared;
    };
    assert_eq!(
        std::mem::size_of_val(&held),
        std::mem::size_of::<std::sync::Arc<()>>(),
        "the closure holds the `Arc`"
    );
    peers::Extra(Bare, held)
}

fn trivial_req(i: u64) -> u64 {
    i
}

fn http_req(_: u64) -> http::Request<()> {
    http::Request::new(())
}

/// A limit no row ever reaches: concurrency, queue, rate and burst alike.
const NEVER: usize = 1 << 20;
/// A timeout no row ever reaches.
const LONG: Duration = Duration::from_secs(30);

const fn row(workload: Workload, id: &'static str, who: &'static str, what: &'static str) -> Row {
    Row {
        workload,
        id,
        who,
        what,
        two_threads: matches!(workload, Workload::Trivial),
        refuses: false,
    }
}

/// Rows that are neither buttress nor a peer: what a building block costs here.
const REFERENCE: &str = "reference";
const TOWER: &str = "tower 0.5";
const TR: &str = "tower-resilience 0.13.0";
const GOVERNOR: &str = "governor 0.10.4";
const FAILSAFE: &str = "failsafe 1.3.0";
const RECLOSER: &str = "recloser 1.4.0";

/// The buttress rows over one workload: each layer alone, then the full pipeline.
/// A macro rather than a function: each row's service type is different, and a
/// generic function would have to restate every layer's `Service` bounds.
macro_rules! buttress_rows {
    ($v:expr, $workload:expr, $bare:expr, $req:expr) => {{
        let v = &mut *$v;
        v.visit(
            row(
                $workload,
                "buttress_circuit_breaker",
                BUTTRESS,
                "circuit breaker, closed",
            ),
            buttress_breaker().layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_retry",
                BUTTRESS,
                "retry, first attempt succeeds, no budget",
            ),
            buttress_retry(false).layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_retry_budget",
                BUTTRESS,
                "retry, first attempt succeeds, default budget",
            ),
            buttress_retry(true).layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_timeout",
                BUTTRESS,
                "timeout, ready at once",
            ),
            buttress_timeout().layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_bulkhead",
                BUTTRESS,
                "bulkhead, admitted",
            ),
            buttress_bulkhead().layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_rate_limit",
                BUTTRESS,
                "rate limiter, admitted (tokio clock)",
            ),
            buttress_rate_limit()
                .build()
                .expect("a valid rate limiter")
                .layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_rate_limit_monotonic",
                BUTTRESS,
                "rate limiter, admitted (`Instant` clock)",
            ),
            buttress_rate_limit()
                .clock(buttress_core::clock::MonotonicClock::new())
                .build()
                .expect("a valid rate limiter")
                .layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_rate_limit_quanta",
                BUTTRESS,
                "rate limiter, admitted (quanta clock)",
            ),
            buttress_rate_limit()
                .clock(buttress::clock::QuantaClock::new())
                .build()
                .expect("a valid rate limiter")
                .layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_fallback",
                BUTTRESS,
                "fallback, success path",
            ),
            buttress::fallback::FallbackLayer::value(Default::default()).layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_pipeline",
                BUTTRESS,
                "pipeline: timeout, retry + budget, breaker, rate limiter, bulkhead",
            ),
            buttress_pipeline().layer($bare),
            $req,
        );
        v.visit(
            row(
                $workload,
                "buttress_pipeline_quanta",
                BUTTRESS,
                "pipeline, its rate limiter on the quanta clock",
            ),
            buttress_pipeline_quanta().layer($bare),
            $req,
        );
    }};
}

const BUTTRESS: &str = "buttress";

/// Retry: 3 attempts (as the peers' rows), default backoff and policy; with the
/// default budget (20% of requests plus 10 per second) or none.
fn buttress_retry(budget: bool) -> buttress::retry::RetryLayer {
    let builder = buttress::retry::RetryLayer::builder().max_attempts(3);
    let builder = if budget { builder } else { builder.no_budget() };
    builder.build().expect("a valid retry")
}

/// The breaker with its defaults (a count window, no slow-call tracking): a closed
/// breaker that reads no clock.
fn buttress_breaker() -> buttress::circuit_breaker::CircuitBreakerLayer {
    buttress::circuit_breaker::CircuitBreakerLayer::builder()
        .build()
        .expect("a valid breaker")
}

/// The breaker of [`buttress_breaker`], tripped by real failures and waiting an hour:
/// every call is rejected, and decided on a clock read (is the wait over?).
fn open_breaker(
    builder: buttress::circuit_breaker::CircuitBreakerBuilder,
) -> buttress::circuit_breaker::CircuitBreakerLayer {
    let layer = builder
        .wait_in_open(Duration::from_secs(3600))
        .build()
        .expect("a valid breaker");
    let mut failing = layer.layer(crate::services::AlwaysFails);
    futures::executor::block_on(async {
        while layer.handle().state() != buttress::circuit_breaker::State::Open {
            let _ = call(&mut failing, 0).await;
        }
    });
    layer
}

fn buttress_bulkhead() -> buttress::bulkhead::BulkheadLayer {
    buttress::bulkhead::BulkheadLayer::new(NEVER).expect("a valid bulkhead")
}

/// A billion calls per second with a burst of `u32::MAX`: governor's quota.
fn buttress_rate_limit() -> buttress::rate_limit::RateLimitBuilder {
    buttress::rate_limit::RateLimitLayer::builder()
        .rate(1_000_000_000)
        .period(Duration::from_secs(1))
        .burst(u32::MAX)
}

/// The keyed limiter over 1,000 hot keys (the request modulo 1,000), each with the
/// direct rows' quota.
fn buttress_keyed_rate_limit() -> buttress::rate_limit::KeyedRateLimitLayer<u64, fn(&u64) -> u64> {
    buttress_rate_limit()
        .keyed(10_000, (|req: &u64| req % 1_000) as fn(&u64) -> u64)
        .expect("a valid keyed rate limiter")
}

/// The full pipeline of issue 5, through the pipeline builder (which puts the parts in
/// the order of DESIGN.md whatever order they are given in).
fn buttress_pipeline() -> Pipeline<buttress::clock::TokioClock> {
    pipeline_with(buttress_rate_limit().build().expect("a valid rate limiter"))
}

/// The pipeline of [`buttress_pipeline`] with its rate limiter on [`QuantaClock`]
/// (the time-stamp counter, as governor reads it), the one part that reads a clock on
/// every call.
///
/// [`QuantaClock`]: buttress::clock::QuantaClock
fn buttress_pipeline_quanta() -> Pipeline<buttress::clock::QuantaClock> {
    pipeline_with(
        buttress_rate_limit()
            .clock(buttress::clock::QuantaClock::new())
            .build()
            .expect("a valid rate limiter"),
    )
}

/// The pipeline's type, with its rate limiter on the clock `C`.
type Pipeline<C> = buttress::pipeline::Resilience<
    tower::layer::util::Identity,
    buttress::timeout::TimeoutLayer,
    buttress::retry::RetryLayer,
    buttress::circuit_breaker::CircuitBreakerLayer,
    buttress::rate_limit::RateLimitLayer<C>,
    tower::layer::util::Identity,
    buttress::bulkhead::BulkheadLayer,
>;

/// The full pipeline around the rate limiter `limiter`.
fn pipeline_with<C>(limiter: buttress::rate_limit::RateLimitLayer<C>) -> Pipeline<C> {
    buttress::pipeline::Resilience::new("bench")
        .timeout(buttress_timeout())
        .retry(buttress_retry(true))
        .circuit_breaker(buttress_breaker())
        .rate_limit(limiter)
        .bulkhead(buttress_bulkhead())
}

fn buttress_timeout() -> buttress::timeout::TimeoutLayer {
    buttress::timeout::TimeoutLayer::new(LONG).expect("a valid timeout")
}

/// Every row, in report order. Call it inside a tokio runtime context
/// (`Runtime::enter`): some rows need one to be built.
pub fn visit_all<V: Visit>(v: &mut V) {
    use Workload::{Http, Trivial};

    // ---- the trivial service -------------------------------------------------------
    v.visit(
        row(Trivial, "bare", "bare", "the bare service"),
        Bare,
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_instant_now",
            REFERENCE,
            "bare + one `std::time::Instant::now()`",
        ),
        peers::Extra(Bare, || {
            black_box(std::time::Instant::now());
        }),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_tokio_instant_now",
            REFERENCE,
            "bare + one `tokio::time::Instant::now()`",
        ),
        peers::Extra(Bare, || {
            black_box(tokio::time::Instant::now());
        }),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_tokio_clock_now",
            REFERENCE,
            "bare + one `TokioClock::now()` (tokio's instant, as nanoseconds)",
        ),
        {
            let clock = buttress::clock::TokioClock::new();
            peers::Extra(Bare, move || {
                black_box(buttress_core::Clock::now(&clock));
            })
        },
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_arc_clone",
            REFERENCE,
            "bare + one `Arc` clone and drop",
        ),
        {
            let shared = std::sync::Arc::new(0u64);
            peers::Extra(Bare, move || {
                drop(black_box(std::sync::Arc::clone(&shared)))
            })
        },
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_shared_cas",
            REFERENCE,
            "bare + one load and compare-and-swap of a word every clone shares",
        ),
        {
            // The shape of the rate limiter's decision, without the decision: on 2
            // threads, what one exact update of one shared word costs.
            let word = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            peers::Extra(Bare, move || {
                use std::sync::atomic::Ordering::Relaxed;
                let mut cur = word.load(Relaxed);
                while let Err(actual) =
                    word.compare_exchange_weak(cur, black_box(cur + 1), Relaxed, Relaxed)
                {
                    cur = actual;
                }
            })
        },
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "ref_box_error",
            REFERENCE,
            "bare + one 16-byte error boxed as a `BoxError` and dropped",
        ),
        peers::Extra(Bare, || {
            // A rejection's error: 16 bytes (an `Option<Duration>`), boxed.
            let err: buttress::BoxError = Box::new(buttress::rate_limit::error::RateLimited::new(
                black_box(Duration::from_millis(1)),
            ));
            drop(black_box(err));
        }),
        trivial_req,
    );
    buttress_rows!(v, Trivial, Bare, trivial_req);
    v.visit(
        Row {
            refuses: true,
            ..row(
                Trivial,
                "buttress_circuit_breaker_open",
                BUTTRESS,
                "circuit breaker, open: rejection",
            )
        },
        open_breaker(buttress::circuit_breaker::CircuitBreakerLayer::builder()).layer(Bare),
        trivial_req,
    );
    v.visit(
        Row {
            refuses: true,
            ..row(
                Trivial,
                "buttress_circuit_breaker_open_quanta",
                BUTTRESS,
                "circuit breaker, open: rejection (quanta clock)",
            )
        },
        open_breaker(buttress::circuit_breaker::CircuitBreakerLayer::builder().quanta_clock())
            .layer(Bare),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "buttress_retry_shared_inner",
            BUTTRESS,
            "retry over a service with shared state, first attempt succeeds, no budget",
        ),
        buttress_retry(false).layer(shared_bare()),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "buttress_rate_limit_keyed",
            BUTTRESS,
            "keyed rate limiter, 1,000 hot keys, admitted",
        ),
        buttress_keyed_rate_limit().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "buttress_rate_limit_keyed_quanta",
            BUTTRESS,
            "keyed rate limiter, 1,000 hot keys, admitted (quanta clock)",
        ),
        buttress_rate_limit()
            .clock(buttress::clock::QuantaClock::new())
            .keyed(10_000, (|req: &u64| req % 1_000) as fn(&u64) -> u64)
            .expect("a valid keyed rate limiter")
            .layer(Bare),
        trivial_req,
    );

    // ---- peers ---------------------------------------------------------------------
    trivial_peers(v);

    // ---- the HTTP service ----------------------------------------------------------
    v.visit(
        row(Http, "bare", "bare", "the bare service"),
        HttpBare,
        http_req,
    );
    buttress_rows!(v, Http, HttpBare, http_req);
}

fn trivial_peers<V: Visit>(v: &mut V) {
    use Workload::Trivial;

    // tower's own middleware.
    v.visit(
        row(Trivial, "tower_timeout", TOWER, "`Timeout`, ready at once"),
        tower::timeout::Timeout::new(Bare, LONG),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "tower_concurrency_limit",
            TOWER,
            "`ConcurrencyLimit`",
        ),
        tower::limit::ConcurrencyLimit::new(Bare, NEVER),
        trivial_req,
    );
    // tower's `RateLimit` is not `Clone` (each service keeps its own state), so it
    // has no shared 2-thread row; a 1-thread row goes through a `Buffer`-free adapter
    // that is the rate limit itself.
    v.visit(
        Row {
            two_threads: false,
            ..row(Trivial, "tower_rate_limit", TOWER, "`RateLimit`")
        },
        CloneByRebuild(tower::limit::RateLimit::new(Bare, rate())),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "tower_retry",
            TOWER,
            "`Retry`, first attempt succeeds",
        ),
        tower::retry::Retry::new(peers::NeverRetry, Bare),
        trivial_req,
    );
    // A layer of buttress answers with a `BoxError` (so that layers stack); tower's
    // `Retry` answers with its service's error, which for the bare service cannot
    // happen. This row gives tower's the same error type, to show what it costs.
    v.visit(
        row(
            Trivial,
            "tower_retry_box_error",
            TOWER,
            "`Retry` over the bare service with its error boxed, first attempt succeeds",
        ),
        tower::retry::Retry::new(
            peers::NeverRetry,
            tower::ServiceExt::map_err(Bare, |e: Infallible| -> buttress::BoxError { match e {} }),
        ),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "tower_retry_shared_inner",
            TOWER,
            "`Retry` over a service with shared state, first attempt succeeds",
        ),
        tower::retry::Retry::new(peers::NeverRetry, shared_bare()),
        trivial_req,
    );

    // tower-resilience, each layer alone, then its stack of four.
    v.visit(
        row(Trivial, "tr_circuit_breaker", TR, "circuit breaker, closed"),
        tr_breaker().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(Trivial, "tr_retry", TR, "retry, first attempt succeeds"),
        tr_retry().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "tr_time_limiter",
            TR,
            "time limiter, ready at once",
        ),
        tr_time_limiter().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(Trivial, "tr_bulkhead", TR, "bulkhead, admitted"),
        tr_bulkhead().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(Trivial, "tr_rate_limiter", TR, "rate limiter, admitted"),
        tr_rate_limiter().layer(Bare),
        trivial_req,
    );
    v.visit(
        row(Trivial, "tr_fallback", TR, "fallback, success path"),
        tower_resilience::fallback::FallbackLayer::<u64, u64, Infallible>::value(0).layer(Bare),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "tr_stack4",
            TR,
            "stack: time limiter, breaker, bulkhead, retry",
        ),
        ServiceBuilder::new()
            .layer(tr_time_limiter())
            .layer(tr_breaker())
            .layer(tr_bulkhead())
            .layer(tr_retry())
            .service(Bare),
        trivial_req,
    );

    // governor's direct limiter, checked once per call.
    v.visit(
        row(
            Trivial,
            "governor_check",
            GOVERNOR,
            "direct `check()`, default (quanta) clock",
        ),
        peers::Governor::with_clock(Bare, governor::clock::DefaultClock::default()),
        trivial_req,
    );
    v.visit(
        row(
            Trivial,
            "governor_check_monotonic",
            GOVERNOR,
            "direct `check()`, `Instant` clock",
        ),
        peers::Governor::with_clock(Bare, governor::clock::MonotonicClock),
        trivial_req,
    );

    // The breakers without a tower layer, through the thinnest adapter.
    v.visit(
        row(Trivial, "failsafe_breaker", FAILSAFE, "breaker, closed"),
        peers::Failsafe::new(Bare, peers::failsafe_default()),
        trivial_req,
    );
    v.visit(
        row(Trivial, "recloser_breaker", RECLOSER, "breaker, closed"),
        peers::Recloser::new(Bare),
        trivial_req,
    );
}

fn rate() -> tower::limit::rate::Rate {
    tower::limit::rate::Rate::new(NEVER as u64, Duration::from_millis(1))
}

/// tower's `RateLimit` is not `Clone`; its rows only need a fresh limiter of the same
/// configuration for each measurement, which this gives.
pub struct CloneByRebuild(tower::limit::RateLimit<Bare>);

impl Clone for CloneByRebuild {
    fn clone(&self) -> Self {
        CloneByRebuild(tower::limit::RateLimit::new(Bare, rate()))
    }
}

impl Service<u64> for CloneByRebuild {
    type Response = u64;
    type Error = Infallible;
    type Future = <tower::limit::RateLimit<Bare> as Service<u64>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        self.0.call(req)
    }
}

fn tr_breaker() -> tower_resilience::circuitbreaker::CircuitBreakerLayer {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("a valid tower-resilience breaker")
}

fn tr_retry() -> tower_resilience::retry::RetryLayer<u64, u64, Infallible> {
    tower_resilience::retry::RetryLayer::<u64, u64, Infallible>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(100))
        .build()
}

fn tr_time_limiter() -> tower_resilience::timelimiter::TimeLimiterLayer {
    tower_resilience::timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(LONG)
        .build()
}

fn tr_bulkhead() -> tower_resilience::bulkhead::BulkheadLayer {
    tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(NEVER)
        .build()
        .expect("a valid tower-resilience bulkhead")
}

fn tr_rate_limiter() -> tower_resilience::ratelimiter::RateLimiterLayer {
    tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(NEVER * 1000)
        .refresh_period(Duration::from_secs(1))
        .build()
        .expect("a valid tower-resilience rate limiter")
}

/// Where the bench binaries leave their figures for the report: `$BUTTRESS_BENCH_DIR`
/// if set, else `bench-report/` in the cargo target directory (found from the running
/// binary, `<target>/<profile>/deps/<bench>`). Created if missing.
pub fn report_dir() -> std::path::PathBuf {
    let dir = match std::env::var_os("BUTTRESS_BENCH_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => target_dir().join("bench-report"),
    };
    std::fs::create_dir_all(&dir).expect("create the report directory");
    dir
}

/// The cargo target directory this bench binary was built in.
pub fn target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the path of this bench binary");
    exe.ancestors()
        .nth(3)
        .expect("bench binaries live in <target>/<profile>/deps")
        .to_path_buf()
}
