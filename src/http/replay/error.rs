//! Errors of [`BufferRequestBody`](super::BufferRequestBody).

use crate::error::BoxError;
use std::error::Error;
use std::fmt;

/// The request body failed while it was being buffered, before the request was sent.
///
/// The inner service was not called. [`source`](Error::source) is the body's own error
/// (for a hyper body, a `hyper::Error`), or a description of how the body broke the
/// `http-body` protocol (a data frame after its trailers).
///
/// This is not a [`Rejection`](crate::error::Rejection): the client's request was bad
/// or cut short, so [`ErrorResponse`](crate::http::ErrorResponse) answers it as any other
/// error (a 500 that does not repeat the message).
#[derive(Debug)]
pub struct BodyError {
    source: BoxError,
}

impl BodyError {
    /// The error, caused by `source`.
    pub fn new(source: impl Into<BoxError>) -> Self {
        BodyError {
            source: source.into(),
        }
    }

    /// The body's error.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body failed while buffering")
    }
}

impl Error for BodyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
