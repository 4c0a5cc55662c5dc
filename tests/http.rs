//! The HTTP integration through tower's `Service` API and axum's `HandleErrorLayer`.
#![cfg(feature = "http")]

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use buttress::bulkhead::error::BulkheadFull;
use buttress::circuit_breaker::error::CircuitOpen;
use buttress::classify::{Classify, Outcome};
use buttress::error::BoxError;
use buttress::http::{ErrorResponse, HttpClassifier, error_response, handle_error};
use buttress::rate_limit::error::RateLimited;
use buttress::retry::error::BudgetExhausted;
use buttress::timeout::error::{DeadlinePassed, Elapsed};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::fmt;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A backend answering each request with the status in its path (`/503`), or failing
/// with no response at all for `/refused`.
async fn backend(req: Request<()>) -> Result<Response<()>, BoxError> {
    let path = req.uri().path().trim_start_matches('/');
    if path == "refused" {
        return Err("connection refused".into());
    }
    let code: u16 = path.parse()?;
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::from_u16(code)?;
    Ok(res)
}

async fn outcome_of<C>(classifier: &C, path: &str) -> Outcome
where
    C: Classify<Response<()>, BoxError>,
{
    let req = Request::builder()
        .uri(path)
        .body(())
        .expect("valid request");
    let result = service_fn(backend).oneshot(req).await;
    classifier.classify(&result)
}

#[tokio::test]
async fn classifier_judges_what_a_service_returns() {
    let c = HttpClassifier::new();
    assert_eq!(outcome_of(&c, "/200").await, Outcome::Success);
    assert_eq!(outcome_of(&c, "/404").await, Outcome::Success);
    assert_eq!(outcome_of(&c, "/429").await, Outcome::Failure);
    assert_eq!(outcome_of(&c, "/500").await, Outcome::Failure);
    assert_eq!(outcome_of(&c, "/503").await, Outcome::Failure);
    assert_eq!(outcome_of(&c, "/599").await, Outcome::Failure);
    assert_eq!(outcome_of(&c, "/refused").await, Outcome::Failure);

    let c = HttpClassifier::new()
        .ignore(StatusCode::NOT_FOUND)
        .success(StatusCode::NOT_IMPLEMENTED);
    assert_eq!(outcome_of(&c, "/404").await, Outcome::Ignored);
    assert_eq!(outcome_of(&c, "/501").await, Outcome::Success);
    assert_eq!(outcome_of(&c, "/502").await, Outcome::Failure);

    let c = HttpClassifier::from_fn(|s: StatusCode| {
        if s == StatusCode::CONFLICT {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    });
    assert_eq!(outcome_of(&c, "/409").await, Outcome::Failure);
    assert_eq!(outcome_of(&c, "/503").await, Outcome::Success);
    assert_eq!(outcome_of(&c, "/refused").await, Outcome::Failure);
}

async fn body_of<B>(res: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: fmt::Debug,
{
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn retry_after<B>(res: &Response<B>) -> Option<&str> {
    res.headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii"))
}

#[tokio::test]
async fn every_rejection_has_its_status_header_and_body() {
    let cases: Vec<(BoxError, u16, Option<&str>, &str)> = vec![
        (
            Box::new(CircuitOpen::new(Some(Duration::from_millis(2500)))),
            503,
            Some("3"),
            r#"{"error":"circuit_open","retry_after":3}"#,
        ),
        (
            Box::new(CircuitOpen::new(None)),
            503,
            None,
            r#"{"error":"circuit_open"}"#,
        ),
        (
            Box::new(BulkheadFull::new()),
            503,
            None,
            r#"{"error":"bulkhead_full"}"#,
        ),
        (
            Box::new(RateLimited::new(Duration::from_secs(1))),
            429,
            Some("1"),
            r#"{"error":"rate_limited","retry_after":1}"#,
        ),
        (
            Box::new(RateLimited::new(Duration::from_nanos(1))),
            429,
            Some("1"),
            r#"{"error":"rate_limited","retry_after":1}"#,
        ),
        (
            Box::new(Elapsed::new()),
            504,
            None,
            r#"{"error":"elapsed"}"#,
        ),
        (
            Box::new(BudgetExhausted::new()),
            503,
            None,
            r#"{"error":"budget_exhausted"}"#,
        ),
        (
            Box::new(DeadlinePassed::new()),
            504,
            None,
            r#"{"error":"deadline_passed"}"#,
        ),
    ];
    for (err, status, after, body) in cases {
        let res = error_response(&*err);
        assert_eq!(res.status(), status, "{err}");
        assert_eq!(retry_after(&res), after, "{err}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(body_of(res).await, body, "{err}");
    }
}

#[derive(Debug)]
struct Upstream(BoxError);
impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "call to http://10.0.0.7:8080/internal failed: {}",
            self.0
        )
    }
}
impl std::error::Error for Upstream {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test]
async fn a_wrapped_rejection_is_still_recognised() {
    let err: BoxError = Box::new(Upstream(Box::new(RateLimited::new(Duration::from_secs(4)))));
    let res = ErrorResponse::from(err);
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.retry_after_secs(), Some(4));
}

#[tokio::test]
async fn other_errors_are_a_500_that_leaks_nothing() {
    let err: BoxError = Box::new(Upstream("password authentication failed".into()));
    let res = error_response(&*err);
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(retry_after(&res), None);
    let body = body_of(res).await;
    assert_eq!(body, r#"{"error":"internal"}"#);
    assert!(!body.contains("10.0.0.7") && !body.contains("password"));
}

/// A handler stack whose inner layer fails with `err`: what an axum app with a buttress
/// layer under `HandleErrorLayer` answers.
async fn axum_answer(err: fn() -> BoxError) -> Response<axum::body::Body> {
    let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handle_error))
            .layer(tower::layer::layer_fn(move |_inner| {
                service_fn(move |_req: Request<axum::body::Body>| async move {
                    Err::<Response<axum::body::Body>, BoxError>(err())
                })
            })),
    );
    app.oneshot(
        Request::get("/")
            .body(axum::body::Body::empty())
            .expect("valid"),
    )
    .await
    .expect("infallible")
}

#[tokio::test]
async fn handle_error_answers_inside_axum() {
    let res = axum_answer(|| Box::new(RateLimited::new(Duration::from_millis(1200)))).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res), Some("2"));
    assert_eq!(
        body_of(res).await,
        r#"{"error":"rate_limited","retry_after":2}"#
    );

    let res = axum_answer(|| Box::new(CircuitOpen::new(Some(Duration::from_secs(30))))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&res), Some("30"));

    let res = axum_answer(|| Box::new(Elapsed::new())).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);

    let res = axum_answer(|| "disk full at /var/lib/secret".into()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_of(res).await, r#"{"error":"internal"}"#);
}

/// `ErrorResponse` comes from an error either way it is held (an owned `BoxError`, a
/// borrowed `&dyn Error`), and either gives what `from_error` gives; it goes into a
/// plain `http::Response` through `From` exactly as through `into_http`.
#[tokio::test]
async fn error_response_converts_from_owned_and_borrowed_errors_and_into_a_plain_response() {
    type Plain = Response<http_body_util::Full<Bytes>>;
    let rate_limited = || RateLimited::new(Duration::from_millis(1500));
    let owned: BoxError = Box::new(rate_limited());
    let borrowed = rate_limited();
    let borrowed: &(dyn std::error::Error + 'static) = &borrowed;
    let from_owned = ErrorResponse::from(owned);
    let from_borrowed = ErrorResponse::from(borrowed);
    assert_eq!(from_owned, ErrorResponse::from_error(&rate_limited()));
    assert_eq!(from_borrowed, from_owned);
    assert_eq!(from_owned.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(from_owned.retry_after(), Some(Duration::from_millis(1500)));

    let via_from: Plain = from_owned.into();
    let via_into_http = from_borrowed.into_http();
    assert_eq!(via_from.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(via_from.status(), via_into_http.status());
    assert_eq!(via_from.headers(), via_into_http.headers());
    assert_eq!(retry_after(&via_from), Some("2"));
    let (a, b) = (body_of(via_from).await, body_of(via_into_http).await);
    assert_eq!(a, r#"{"error":"rate_limited","retry_after":2}"#);
    assert_eq!(a, b);

    // And a rejection without a `retry_after`, owned and borrowed.
    let full: Plain = ErrorResponse::from(Box::new(BulkheadFull::new()) as BoxError).into();
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&full), None);
    let bulkhead_full = BulkheadFull::new();
    let borrowed: &(dyn std::error::Error + 'static) = &bulkhead_full;
    assert_eq!(
        body_of(Plain::from(ErrorResponse::from(borrowed))).await,
        body_of(full).await
    );
}

/// A `retry_after` past what a peer can take (a breaker that never half-opens has one of
/// about 584 years) is sent as `Retry-After: 2147483`, the span of gRPC's largest
/// pushback (`i32::MAX` milliseconds), never as the 11-digit seconds it would make.
#[tokio::test(start_paused = true)]
async fn a_retry_after_too_long_for_a_peer_is_capped() {
    use buttress::circuit_breaker::CircuitBreakerLayer;
    use tower::{Layer, Service};

    const CAP: &str = "2147483";
    let never = CircuitBreakerLayer::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::MAX)
        .build()
        .expect("valid config");
    let mut svc = never.layer(service_fn(backend));
    let get = || Request::get("/refused").body(()).expect("valid");
    let failed = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert_eq!(failed.to_string(), "connection refused");
    let err = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    let res = ErrorResponse::from_error(&*err);
    assert!(res.retry_after() > Some(Duration::from_secs(500 * 365 * 24 * 3600)));
    assert_eq!(res.retry_after_secs(), Some(2_147_483));
    let res = res.into_http();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&res), Some(CAP));
    assert_eq!(
        body_of(res).await,
        r#"{"error":"circuit_open","retry_after":2147483}"#
    );

    for (after, expect) in [
        (Duration::MAX, CAP),
        (Duration::from_secs(u64::MAX), CAP),
        (Duration::from_millis(i32::MAX as u64 + 1), CAP),
        // Rounding up would give 2147484: the cap wins.
        (Duration::from_millis(i32::MAX as u64), CAP),
        (Duration::from_secs(2_147_483), CAP),
        (Duration::from_millis(2_147_482_001), CAP),
        (Duration::from_secs(2_147_482), "2147482"),
    ] {
        let res = error_response(&RateLimited::new(after));
        assert_eq!(retry_after(&res), Some(expect), "{after:?}");
        let res = error_response(&CircuitOpen::new(Some(after)));
        assert_eq!(retry_after(&res), Some(expect), "{after:?}");
    }
}
