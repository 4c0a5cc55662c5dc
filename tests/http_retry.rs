//! HTTP retries through tower's `Service` API on paused time: request bodies buffered
//! and replayed, `Retry-After` honoured, non-idempotent and streaming requests sent once.
#![cfg(feature = "http")]

use buttress::error::BoxError;
use buttress::http::{HttpRetryPolicy, ReplayBody};
use buttress::retry::{Backoff, Jitter, RetryLayer};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// What the server received, in order.
type Log = Arc<Mutex<Vec<Seen>>>;

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: Method,
    body: Bytes,
}

/// A server that answers the `n`-th request (from 0) with `answers[n]` (or the last
/// one), and logs every request it receives. `Err(())` stands for a refused connection.
fn server<B>(
    answers: Vec<Result<(u16, Option<&'static str>), ()>>,
) -> (
    impl Service<Request<ReplayBody<B>>, Response = Response<()>, Error = BoxError> + Clone,
    Log,
)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let answers = Arc::new(answers);
    let svc = service_fn(move |req: Request<ReplayBody<B>>| {
        let log = seen.clone();
        let answers = answers.clone();
        async move {
            let at = Instant::now();
            let method = req.method().clone();
            let body = req.into_body().collect().await?.to_bytes();
            let n = {
                let mut log = log.lock().expect("not poisoned");
                log.push(Seen { at, method, body });
                log.len() - 1
            };
            match answers[n.min(answers.len() - 1)] {
                Ok((code, retry_after)) => {
                    let mut res = Response::builder().status(code);
                    if let Some(v) = retry_after {
                        res = res.header("retry-after", v);
                    }
                    Ok(res.body(()).expect("valid response"))
                }
                Err(()) => Err(
                    Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                        as BoxError,
                ),
            }
        }
    });
    (svc, log)
}

fn full(method: Method, body: &'static str) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
    *req.method_mut() = method;
    *req.uri_mut() = "/items/7".parse().expect("valid uri");
    req
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().expect("not poisoned").clone()
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_exactly_and_the_body_is_sent_again() {
    let (svc, log) = server(vec![
        Ok((503, Some("2"))),
        Ok((503, Some("2"))),
        Ok((200, None)),
    ]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder().max_attempts(4))
        .expect("valid config");
    let client = ServiceBuilder::new().layer(retry).service(svc);

    let start = Instant::now();
    let res = client
        .oneshot(full(Method::PUT, "{\"n\":7}"))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);

    let seen = seen(&log);
    assert_eq!(seen.len(), 3);
    let at: Vec<Duration> = seen.iter().map(|s| s.at - start).collect();
    assert_eq!(
        at,
        [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    for s in &seen {
        assert_eq!(s.method, Method::PUT);
        assert_eq!(s.body, "{\"n\":7}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_is_sent_once() {
    let (svc, log) = server(vec![
        Ok((503, Some("1"))),
        Ok((503, Some("1"))),
        Ok((200, None)),
    ]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder().max_attempts(4))
        .expect("valid config");
    let client = ServiceBuilder::new().layer(retry).service(svc);

    let start = Instant::now();
    let res = client
        .clone()
        .oneshot(full(Method::POST, "{\"n\":8}"))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen(&log).len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);

    // The same server and policy retry a GET, after the second's wait.
    let start = Instant::now();
    let res = client
        .oneshot(full(Method::GET, ""))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen(&log).len(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_large_streaming_body_is_sent_once_and_whole() {
    let (svc, log) = server(vec![Ok((503, None)), Ok((200, None))]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder().max_attempts(4))
        .expect("valid config");
    let client = ServiceBuilder::new().layer(retry).service(svc);

    // 100 chunks of 1 KiB, no length known in advance: past the 64 KiB buffer.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..100u8)
        .map(|i| Ok(http_body::Frame::data(Bytes::from(vec![i; 1024]))))
        .collect();
    let mut req = Request::new(StreamBody::new(futures::stream::iter(chunks)));
    *req.method_mut() = Method::PUT;

    let res = client.oneshot(req).await.expect("a response");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "not retried");
    let seen = seen(&log);
    assert_eq!(seen.len(), 1);
    let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 1024]).collect();
    assert_eq!(seen[0].body, expected, "every byte, once, in order");
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_max_wait_negative_or_malformed_stops() {
    for value in ["31", "-1", "soon", "1.5"] {
        let (svc, log) = server(vec![Ok((503, Some(value))), Ok((200, None))]);
        let retry = HttpRetryPolicy::new()
            .retry_layer(
                RetryLayer::builder()
                    .max_attempts(4)
                    .max_wait(Duration::from_secs(30)),
            )
            .expect("valid config");
        let client = ServiceBuilder::new().layer(retry).service(svc);
        let start = Instant::now();
        let res = client
            .oneshot(full(Method::GET, ""))
            .await
            .expect("a response");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{value}");
        assert_eq!(res.headers()["retry-after"], value);
        assert_eq!(seen(&log).len(), 1, "{value}");
        assert_eq!(start.elapsed(), Duration::ZERO, "{value}");
    }

    // At the bound itself, it waits.
    let (svc, log) = server(vec![Ok((429, Some("30"))), Ok((200, None))]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder().max_wait(Duration::from_secs(30)))
        .expect("valid config");
    let client = ServiceBuilder::new().layer(retry).service(svc);
    let start = Instant::now();
    let res = client
        .oneshot(full(Method::GET, ""))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen(&log).len(), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn connection_errors_and_5xx_without_retry_after_back_off() {
    let (svc, log) = server(vec![Err(()), Ok((502, None)), Ok((204, None))]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(
            RetryLayer::builder()
                .max_attempts(3)
                .backoff(Backoff::constant(Duration::from_millis(300)).with_jitter(Jitter::None)),
        )
        .expect("valid config");
    let client = ServiceBuilder::new().layer(retry).service(svc);
    let start = Instant::now();
    let res = client
        .oneshot(full(Method::DELETE, ""))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let at: Vec<Duration> = seen(&log).iter().map(|s| s.at - start).collect();
    assert_eq!(
        at,
        [
            Duration::ZERO,
            Duration::from_millis(300),
            Duration::from_millis(600)
        ]
    );

    // A status outside the set is an answer, not an outage.
    let (svc, log) = server(vec![Ok((404, None)), Ok((200, None))]);
    let retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder())
        .expect("valid config");
    let res = ServiceBuilder::new()
        .layer(retry)
        .service(svc)
        .oneshot(full(Method::GET, ""))
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(seen(&log).len(), 1);
}
