//! [`BufferRequestBodyLayer`]: configuration only.

use super::BufferRequestBody;
use tower_layer::Layer;

/// The default [`BufferRequestBodyLayer::max_bytes`]: 64 KiB.
///
/// Large enough for the JSON, form and protobuf payloads that make up most API calls;
/// small enough that holding one copy per request in flight costs little memory.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// Makes request bodies of at most `max_bytes` replayable: wraps a service in
/// [`BufferRequestBody`].
///
/// Configuration cannot be wrong here: every `max_bytes` is a valid limit (0 buffers
/// only empty bodies), so the setters take and return the layer directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRequestBodyLayer {
    pub(super) max_bytes: usize,
    pub(super) read_unknown_length: bool,
}

impl BufferRequestBodyLayer {
    /// Buffers bodies of at most [`DEFAULT_MAX_BYTES`] (64 KiB), and reads bodies of
    /// unknown length up to that limit.
    pub const fn new() -> Self {
        BufferRequestBodyLayer {
            max_bytes: DEFAULT_MAX_BYTES,
            read_unknown_length: true,
        }
    }

    /// Buffers bodies of at most `max_bytes` bytes. Larger ones are sent once, as they
    /// are.
    pub const fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Whether a body whose length is unknown (no `Content-Length`, no upper bound in
    /// its `size_hint`: a chunked upload, a stream) is read up to `max_bytes` to find out
    /// whether it fits (the default, `true`), or sent at once, as it is, never retried
    /// (`false`).
    ///
    /// Reading holds the request back until the body ends or passes the limit. Turn it
    /// off when request bodies are interactive streams whose sender waits for the
    /// response before finishing (a bidirectional stream), which reading would stall.
    pub const fn read_unknown_length(mut self, read: bool) -> Self {
        self.read_unknown_length = read;
        self
    }

    /// The limit in bytes.
    pub const fn limit(&self) -> usize {
        self.max_bytes
    }
}

impl Default for BufferRequestBodyLayer {
    fn default() -> Self {
        BufferRequestBodyLayer::new()
    }
}

impl<S> Layer<S> for BufferRequestBodyLayer {
    type Service = BufferRequestBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferRequestBody::new(inner, *self)
    }
}
