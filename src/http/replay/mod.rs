//! Replayable request bodies, so that a retry can send an HTTP request again.
//!
//! A retry sends each attempt a copy of the request, and an `http::Request<B>` cannot be
//! copied while `B` is a stream that is consumed as it is sent. So, in front of the retry
//! layer, [`BufferRequestBodyLayer`] turns each `Request<B>` into a
//! `Request<`[`ReplayBody<B>`](ReplayBody)`>`:
//!
//! | the body | becomes | retried |
//! |---|---|---|
//! | empty | buffered, read nothing | yes |
//! | known length (`size_hint` upper bound or `Content-Length`) at most `max_bytes` | buffered: read once into one [`Bytes`](bytes::Bytes), trailers kept | yes |
//! | known to be longer than `max_bytes` | the original stream, unread | no, sent once |
//! | unknown length, ends within `max_bytes` | buffered | yes |
//! | unknown length, goes past `max_bytes` | what was read, then the rest of the stream: every byte sent once, in order | no, sent once |
//! | fails while being read | the service's error, [`BodyError`](error::BodyError); the request is not sent | — |
//!
//! `max_bytes` defaults to [`DEFAULT_MAX_BYTES`] (64 KiB). Reading unknown-length bodies
//! can be turned off ([`BufferRequestBodyLayer::read_unknown_length`]) for interactive
//! streams.
//!
//! The retry policy then asks for a copy before each attempt: [`clone_request`] copies a
//! request whose body is buffered (method, URI, version, headers, extensions, body),
//! [`clone_for_retry`] does so only for idempotent methods ([`is_idempotent`], RFC 9110),
//! and [`ReplayPolicy`] holds that rule as a value (other methods, `Idempotency-Key`).
//! Every one of them answers `None` for a streaming body: that request is sent once and
//! never retried, without a panic or an error.
//!
//! A buffered body reports its exact length as its `size_hint`, unless it has trailers:
//! then only a lower bound, so that hyper's HTTP/1.1 client sends it chunked, trailers
//! included (with an exact hint it would send `Content-Length`, and drop the trailers).
//! hyper sends only the trailer fields the request's `Trailer` header names.
//!
//! Put the layer outside the retry layer, which sees the `ReplayBody`:
//! `ServiceBuilder::new().layer(BufferRequestBodyLayer::new()).layer(retry)...`.
//!
//! ```
//! use buttress::http::{BufferRequestBodyLayer, ReplayBody, clone_for_retry};
//! use bytes::Bytes;
//! use http::{Method, Request};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), buttress::BoxError> {
//! // In place of a retry layer: send the request twice when a copy can be made.
//! let twice = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
//!     let mut sent = Vec::new();
//!     if let Some(copy) = clone_for_retry(&req) {
//!         sent.push(copy.into_body().collect().await?.to_bytes());
//!     }
//!     sent.push(req.into_body().collect().await?.to_bytes());
//!     Ok::<_, buttress::BoxError>(sent)
//! });
//! let client = ServiceBuilder::new()
//!     .layer(BufferRequestBodyLayer::new().max_bytes(1024))
//!     .service(twice);
//!
//! let put = Request::put("/items/7").body(Full::new(Bytes::from("{\"n\":7}")))?;
//! let sent = client.clone().oneshot(put).await?;
//! assert_eq!(sent, ["{\"n\":7}", "{\"n\":7}"]); // the same bytes, twice
//!
//! let post = Request::post("/items").body(Full::new(Bytes::from("{\"n\":8}")))?;
//! assert_eq!(client.clone().oneshot(post).await?.len(), 1); // not idempotent: once
//!
//! let big = Request::put("/blob").body(Full::new(Bytes::from(vec![0u8; 4096])))?;
//! assert_eq!(client.oneshot(big).await?.len(), 1); // over 1024 bytes: streamed once
//! # Ok(())
//! # }
//! ```

mod body;
pub mod error;
pub mod future;
mod layer;
mod policy;
mod service;

pub use body::ReplayBody;
pub use layer::{BufferRequestBodyLayer, DEFAULT_MAX_BYTES};
pub use policy::{IDEMPOTENCY_KEY, ReplayPolicy, clone_for_retry, clone_request, is_idempotent};
pub use service::BufferRequestBody;
