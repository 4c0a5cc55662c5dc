//! The gRPC integration against real tonic services, driven through tower's `Service`
//! API.
#![cfg(feature = "grpc")]

use buttress::bulkhead::error::BulkheadFull;
use buttress::circuit_breaker::error::CircuitOpen;
use buttress::classify::{Classify, Outcome};
use buttress::error::{BoxError, RejectionKind, rejection};
use buttress::grpc::{
    GrpcClassifier, Pushback, grpc_timeout, into_status, response_code, set_grpc_timeout,
};
use buttress::rate_limit::error::RateLimited;
use buttress::retry::error::BudgetExhausted;
use buttress::timeout::error::{DeadlinePassed, Elapsed};
use std::time::Duration;
use tonic::{Code, Request, Response, Status};
use tower::{Service, ServiceExt};

#[allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic)]
mod echo {
    include!("../examples/proto/echo.rs");
}

use echo::echo_server::{Echo, EchoServer};
use echo::{EchoRequest, EchoResponse};

/// Answers with the message, or with the status the message names.
#[derive(Debug, Clone, Copy)]
struct Server;

#[tonic::async_trait]
impl Echo for Server {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let message = req.into_inner().message;
        match message.as_str() {
            "unavailable" => Err(Status::unavailable("backend down")),
            "not_found" => Err(Status::not_found("no such thing")),
            "rate_limited" => Err(into_status(Box::new(RateLimited::new(
                Duration::from_millis(250),
            )))),
            _ => Ok(Response::new(EchoResponse { message })),
        }
    }
}

/// A unary gRPC request for `message`, framed by hand (flag byte, big-endian length,
/// protobuf bytes), as a client would send it.
fn grpc_request(message: &str) -> http::Request<tonic::body::Body> {
    let bytes = prost::Message::encode_to_vec(&EchoRequest {
        message: message.to_owned(),
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&bytes);
    http::Request::builder()
        .method("POST")
        .uri("/echo.Echo/Echo")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(frame),
        )))
        .expect("valid request")
}

async fn serve(message: &str) -> http::Response<tonic::body::Body> {
    let mut svc = EchoServer::new(Server);
    let req = grpc_request(message);
    let svc = ServiceExt::<http::Request<tonic::body::Body>>::ready(&mut svc)
        .await
        .expect("ready");
    svc.call(req).await.expect("infallible")
}

#[tokio::test]
async fn a_tonic_server_error_is_a_trailers_only_failure() {
    let classifier = GrpcClassifier::new();

    let res = serve("unavailable").await;
    assert_eq!(response_code(&res), Some(Code::Unavailable));
    assert_eq!(
        classifier.classify(&Ok::<_, BoxError>(res)),
        Outcome::Failure
    );

    let res = serve("not_found").await;
    assert_eq!(response_code(&res), Some(Code::NotFound));
    assert_eq!(
        classifier.classify(&Ok::<_, BoxError>(res)),
        Outcome::Success
    );

    // A successful call's status comes in the trailers: the headers say nothing yet.
    let res = serve("hello").await;
    assert_eq!(res.status(), http::StatusCode::OK);
    assert_eq!(response_code(&res), None);
    assert_eq!(
        classifier.classify(&Ok::<_, BoxError>(res)),
        Outcome::Success
    );
}

#[tokio::test]
async fn pushback_set_by_a_server_reaches_the_client_status() {
    let res = serve("rate_limited").await;
    assert_eq!(response_code(&res), Some(Code::ResourceExhausted));
    // What the client's tonic makes of the trailers-only response.
    let status = Status::from_header_map(res.headers()).expect("a grpc-status header");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "rate limited");
    assert_eq!(
        Pushback::from_status(&status),
        Some(Pushback::RetryAfter(Duration::from_millis(250)))
    );
}

#[test]
fn every_rejection_survives_the_trip_over_http() {
    let cases: [(BoxError, Code, &str, Option<Pushback>); 7] = [
        (
            Box::new(CircuitOpen::new(Some(Duration::from_secs(2)))),
            Code::Unavailable,
            "circuit open",
            Some(Pushback::RetryAfter(Duration::from_secs(2))),
        ),
        (
            // Sent in whole milliseconds, rounded up.
            Box::new(RateLimited::new(Duration::from_micros(1500))),
            Code::ResourceExhausted,
            "rate limited",
            Some(Pushback::RetryAfter(Duration::from_millis(2))),
        ),
        (
            Box::new(BulkheadFull::new()),
            Code::ResourceExhausted,
            "bulkhead full",
            None,
        ),
        (
            Box::new(Elapsed::new()),
            Code::DeadlineExceeded,
            "request timed out",
            None,
        ),
        (
            Box::new(BudgetExhausted::new()),
            Code::Unavailable,
            "retry budget exhausted",
            None,
        ),
        (
            Box::new(DeadlinePassed::new()),
            Code::DeadlineExceeded,
            "deadline passed before the request was sent",
            None,
        ),
        (
            "secret: db at 10.0.0.7".into(),
            Code::Internal,
            "internal error",
            None,
        ),
    ];
    // Every kind of rejection is among the cases.
    let kinds: Vec<_> = cases
        .iter()
        .filter_map(|(err, ..)| rejection(&**err).map(|r| r.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            RejectionKind::CircuitOpen,
            RejectionKind::RateLimited,
            RejectionKind::BulkheadFull,
            RejectionKind::Elapsed,
            RejectionKind::BudgetExhausted,
            RejectionKind::DeadlinePassed,
        ]
    );
    for (err, code, message, pushback) in cases {
        let sent = into_status(err);
        let res = sent.into_http::<()>();
        let got = Status::from_header_map(res.headers()).expect("a grpc-status header");
        assert_eq!(got.code(), code, "{message}");
        assert_eq!(got.message(), message);
        assert_eq!(Pushback::from_status(&got), pushback, "{message}");
    }
}

#[test]
fn classifier_on_generated_client_results() {
    let c = GrpcClassifier::new().ignore(Code::NotFound);
    let ok: Result<Response<EchoResponse>, Status> = Ok(Response::new(EchoResponse {
        message: "hi".into(),
    }));
    assert_eq!(c.classify(&ok), Outcome::Success);
    let err = |s| -> Result<Response<EchoResponse>, Status> { Err(s) };
    assert_eq!(
        c.classify(&err(Status::deadline_exceeded("slow"))),
        Outcome::Failure
    );
    assert_eq!(c.classify(&err(Status::not_found("x"))), Outcome::Ignored);
    assert_eq!(
        c.classify(&err(Status::invalid_argument("x"))),
        Outcome::Success
    );
}

#[test]
fn grpc_timeout_propagates_through_request_headers() {
    // A client with 1.5 s left sets the header; the server reads the same bound back.
    let mut req = Request::new(EchoRequest::default());
    let mut headers = std::mem::take(req.metadata_mut()).into_headers();
    set_grpc_timeout(&mut headers, Duration::from_millis(1500));
    // The finest unit that fits the spec's 8 digits: 1 500 000 microseconds.
    assert_eq!(headers["grpc-timeout"], "1500000u");
    assert_eq!(
        grpc_timeout(&headers),
        Ok(Some(Duration::from_millis(1500)))
    );

    // A malformed header is an error for the server to handle, not a panic.
    headers.insert("grpc-timeout", "1500".parse().expect("ascii"));
    assert!(grpc_timeout(&headers).is_err());
}

/// A `retry_after` past `i32::MAX` milliseconds (a breaker that never half-opens has one
/// of about 584 years) is sent as `grpc-retry-pushback-ms: 2147483647`, the largest
/// value gRPC's retry design (A6) allows, and reads back as that.
#[tokio::test(start_paused = true)]
async fn a_pushback_too_long_for_grpc_is_capped() {
    use buttress::circuit_breaker::CircuitBreakerLayer;
    use buttress::grpc::{RETRY_PUSHBACK_MS, set_retry_pushback};
    use tonic::metadata::MetadataMap;
    use tower::Layer;

    const CAP: &str = "2147483647";
    let never = CircuitBreakerLayer::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::MAX)
        .build()
        .expect("valid config");
    let mut svc = never.layer(tower::service_fn(|()| async {
        Err::<(), BoxError>("backend down".into())
    }));
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    let status = into_status(err);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.metadata().get(RETRY_PUSHBACK_MS).expect("set"), CAP);
    // Over the wire and back, as a client reads it.
    let res = status.into_http::<()>();
    assert_eq!(res.headers()[RETRY_PUSHBACK_MS], CAP);
    let got = Status::from_header_map(res.headers()).expect("a grpc-status header");
    assert_eq!(
        Pushback::from_status(&got),
        Some(Pushback::RetryAfter(Duration::from_millis(i32::MAX as u64)))
    );

    let mut md = MetadataMap::new();
    for (after, expect) in [
        (Duration::MAX, CAP),
        (Duration::from_millis(u64::MAX), CAP),
        (
            Duration::from_millis(i32::MAX as u64) + Duration::from_nanos(1),
            CAP,
        ),
        (Duration::from_millis(i32::MAX as u64), CAP),
        (Duration::from_millis(i32::MAX as u64 - 1), "2147483646"),
    ] {
        set_retry_pushback(&mut md, after);
        assert_eq!(md.get(RETRY_PUSHBACK_MS).expect("set"), expect, "{after:?}");
        let status = into_status(Box::new(RateLimited::new(after)));
        assert_eq!(
            status.metadata().get(RETRY_PUSHBACK_MS).expect("set"),
            expect,
            "{after:?}"
        );
    }
}
