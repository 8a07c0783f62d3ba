//! The response sent when a service or app fails before its head is written: wsgiref's
//! `error_status`, `error_headers` and `error_body`, as a hook.
//!
//! [`DefaultErrorResponse`] answers `500 Internal Server Error`, `Content-Type: text/plain`
//! and wsgiref's body, `A server error occurred.  Please contact the administrator.`; its
//! setters change each part. An app that ran past its time limit ([`TimedOut`]) gets
//! `504 Gateway Timeout` instead of the status, one that waited that long for a request
//! body that stopped arriving ([`BodyStalled`]) `408 Request Timeout`, and one too busy to
//! take a request ([`Overloaded`]) `503 Service Unavailable` with `Retry-After: 1`. Any
//! `Fn(&BoxError) -> http::Response<Bytes>` is an [`ErrorResponse`] too, for full control.
//! The hook takes `&self`: a service shares one hook between all its requests with no lock.
//!
//! ```
//! use bytes::Bytes;
//! use std::time::Duration;
//! use towergate::error_response::{
//!     BodyStalled, DefaultErrorResponse, ErrorResponse, Overloaded, TimedOut,
//! };
//! use towergate::BoxError;
//!
//! let default = DefaultErrorResponse::new();
//! let response = default.error_response(&BoxError::from("boom"));
//! assert_eq!(response.status(), 500);
//! assert_eq!(response.headers()["content-type"], "text/plain");
//! assert_eq!(
//!     response.body(),
//!     &Bytes::from_static(b"A server error occurred.  Please contact the administrator.")
//! );
//!
//! // An app past its time limit: the gateway's timeout (RFC 9110 §15.6.5).
//! let timed_out = BoxError::from(TimedOut::new(Duration::from_secs(60)));
//! assert_eq!(timed_out.to_string(), "the app produced no output for 60s");
//! assert_eq!(default.error_response(&timed_out).status(), 504);
//!
//! // A client that stopped sending the body the app waited for (RFC 9110 §15.5.9).
//! let stalled = BoxError::from(BodyStalled::new(Duration::from_secs(60)));
//! assert_eq!(stalled.to_string(), "the request body stopped arriving: nothing came for 60s");
//! assert_eq!(default.error_response(&stalled).status(), 408);
//!
//! // An app with too many requests waiting for it (RFC 9110 §15.6.4, §10.2.3).
//! let busy = default.error_response(&BoxError::from(Overloaded::new(1024)));
//! assert_eq!(busy.status(), 503);
//! assert_eq!(busy.headers()["retry-after"], "1");
//!
//! let custom = DefaultErrorResponse::new()
//!     .status(http::StatusCode::SERVICE_UNAVAILABLE)
//!     .body("try again later\n");
//! assert_eq!(custom.error_response(&BoxError::from("boom")).status(), 503);
//!
//! let closure = |err: &BoxError| {
//!     http::Response::builder()
//!         .status(502)
//!         .body(Bytes::from(format!("upstream said: {err}")))
//!         .unwrap()
//! };
//! assert_eq!(closure.error_response(&BoxError::from("no")).body(), "upstream said: no");
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};

use crate::BoxError;

/// The error of an app that produced no output within its time limit (a Python WSGI app's
/// `timeout`, feature `python`): [`DefaultErrorResponse`] answers it with
/// `504 Gateway Timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    limit: Duration,
}

impl TimedOut {
    /// An app that produced no output for `limit`.
    pub fn new(limit: Duration) -> Self {
        TimedOut { limit }
    }

    /// The time limit that expired.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the app produced no output for {:?}", self.limit)
    }
}

impl std::error::Error for TimedOut {}

/// The error of an app whose client stopped sending the request body: the app waited for
/// it, and nothing came within the app's time limit (a Python WSGI app's `timeout`, feature
/// `python`). [`DefaultErrorResponse`] answers it with `408 Request Timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyStalled {
    limit: Duration,
}

impl BodyStalled {
    /// A request body of which nothing came for `limit` while the app waited for it.
    pub fn new(limit: Duration) -> Self {
        BodyStalled { limit }
    }

    /// The time limit that expired.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body stopped arriving: nothing came for {:?}",
            self.limit
        )
    }
}

impl std::error::Error for BodyStalled {}

/// The error of an app that refused a request because too many wait for it already (a
/// Python WSGI app's `max_queued`, feature `python`): [`DefaultErrorResponse`] answers it
/// with `503 Service Unavailable` and `Retry-After: 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overloaded {
    waiting: usize,
}

impl Overloaded {
    /// An app with `waiting` requests waiting for it already.
    pub fn new(waiting: usize) -> Self {
        Overloaded { waiting }
    }

    /// How many requests were waiting: the app's limit.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the app is busy: its queue is full ({} waiting)",
            self.waiting
        )
    }
}

impl std::error::Error for Overloaded {}

/// Builds the response for an error that happened before the response head was written.
///
/// The error has been logged already; the response should not reveal it to the client
/// unless that is intended. Implemented by [`DefaultErrorResponse`] and by every
/// `Fn(&BoxError) -> http::Response<Bytes>`.
///
/// The response's status must be final (not 1xx); `Content-Length` is added from the body,
/// and 204 and 304 go without a body. A 1xx status is replaced by a plain
/// `500 Internal Server Error`.
pub trait ErrorResponse {
    /// The response for `error`.
    fn error_response(&self, error: &BoxError) -> Response<Bytes>;
}

impl<F> ErrorResponse for F
where
    F: Fn(&BoxError) -> Response<Bytes>,
{
    fn error_response(&self, error: &BoxError) -> Response<Bytes> {
        self(error)
    }
}

/// wsgiref's error response, with each part configurable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DefaultErrorResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// wsgiref's `error_body` (with its two spaces after the period).
const ERROR_BODY: &[u8] = b"A server error occurred.  Please contact the administrator.";

impl Default for DefaultErrorResponse {
    fn default() -> Self {
        DefaultErrorResponse::new()
    }
}

impl DefaultErrorResponse {
    /// The defaults below.
    pub fn new() -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        DefaultErrorResponse {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            headers,
            body: Bytes::from_static(ERROR_BODY),
        }
    }

    /// The status (`error_status`). Defaults to `500 Internal Server Error`. Whatever the
    /// status, a [`TimedOut`] error is answered with `504 Gateway Timeout`, a
    /// [`BodyStalled`] one with `408 Request Timeout`, and an [`Overloaded`] one with
    /// `503 Service Unavailable` and `Retry-After: 1`.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a header (`error_headers`), replacing one of the same name. Defaults to
    /// `Content-Type: text/plain` alone.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The body (`error_body`). Defaults to `A server error occurred.  Please contact the
    /// administrator.`
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

impl ErrorResponse for DefaultErrorResponse {
    fn error_response(&self, error: &BoxError) -> Response<Bytes> {
        let mut response = Response::new(self.body.clone());
        *response.headers_mut() = self.headers.clone();
        *response.status_mut() = if error.is::<TimedOut>() {
            StatusCode::GATEWAY_TIMEOUT
        } else if error.is::<BodyStalled>() {
            StatusCode::REQUEST_TIMEOUT
        } else if error.is::<Overloaded>() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            self.status
        };
        response
    }
}
