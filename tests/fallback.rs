//! The fallback layer through tower's `Service` API.

use buttress::BoxError;
use buttress::classify::Outcome;
use buttress::fallback::FallbackLayer;
use buttress::rate_limit::{RateLimitLayer, RateLimited};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Even numbers succeed; odd ones fail with an error naming the number.
fn flaky() -> impl Service<u32, Response = u32, Error = std::io::Error> + Clone {
    service_fn(|x: u32| async move {
        if x % 2 == 0 {
            Ok(x)
        } else {
            Err(std::io::Error::other(format!("odd {x}")))
        }
    })
}

#[tokio::test]
async fn value_answers_failures_and_passes_successes() {
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::value(999u32))
        .service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 999);
}

#[tokio::test]
async fn the_closure_gets_the_original_error() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let seen = Arc::clone(&seen);
        FallbackLayer::from_fn(move |failed: Result<u32, std::io::Error>| {
            let err = failed.expect_err("only failures reach the fallback");
            seen.lock().unwrap().push(err.to_string());
            0
        })
    };
    let mut svc = ServiceBuilder::new().layer(layer).service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 0);
    assert_eq!(svc.ready().await.unwrap().call(6).await.unwrap(), 6);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), vec!["odd 5", "odd 7"]);
}

#[tokio::test]
async fn a_fallback_service_gets_the_request() {
    let backup = service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 100) });
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::service(backup))
        .service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 300);
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 4);
}

#[tokio::test]
async fn a_failing_fallback_service_reports_its_own_error() {
    let backup =
        service_fn(|_: u32| async move { Err::<u32, _>(std::io::Error::other("backup down")) });
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::service(backup))
        .service(flaky());
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    assert_eq!(err.to_string(), "backup down");
}

#[tokio::test]
async fn the_predicate_chooses_which_errors_fall_back() {
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::value(0u32).on_error(|e: &std::io::Error| e.to_string() == "odd 3"))
        .service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 0);
    let err = svc.ready().await.unwrap().call(5).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "odd 5",
        "other errors pass through unchanged"
    );
    assert_eq!(svc.ready().await.unwrap().call(8).await.unwrap(), 8);
}

#[tokio::test]
async fn a_classifier_can_fail_an_ok_response() {
    // Status-like responses: 503 is an Ok at the tower level and still a failure.
    let statuses = service_fn(|s: u16| async move { Ok::<u16, std::io::Error>(s) });
    let classify = |r: &Result<u16, std::io::Error>| match r {
        Ok(s) if *s >= 500 => Outcome::Failure,
        Ok(404) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let mut svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(|failed: Result<u16, std::io::Error>| {
                assert_eq!(failed.unwrap(), 503);
                200
            })
            .classify(classify),
        )
        .service(statuses);
    assert_eq!(svc.ready().await.unwrap().call(503).await.unwrap(), 200);
    assert_eq!(svc.ready().await.unwrap().call(404).await.unwrap(), 404);
    assert_eq!(svc.ready().await.unwrap().call(201).await.unwrap(), 201);
}

#[tokio::test(start_paused = true)]
async fn rejections_of_inner_layers_can_fall_back() {
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(|failed: Result<u32, BoxError>| {
            let err = failed.unwrap_err();
            let limited = err.downcast_ref::<RateLimited>().expect("rate limited");
            limited.retry_after().as_millis() as u32
        }))
        .layer(RateLimitLayer::new(1, Duration::from_secs(1), 1).unwrap())
        .service(service_fn(
            |x: u32| async move { Ok::<_, std::io::Error>(x) },
        ));
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 1000);
}
