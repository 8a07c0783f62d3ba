//! A lint layer for gateway apps, like Python's `wsgiref.validate`, and for the responses of
//! any tower service.
//!
//! [`LintLayer`] makes a [`Lint`]: over a gateway [`App`], an app whose environ,
//! [`StartResponse`] calls and body are checked; over any tower `Service`, a service whose
//! responses are checked against HTTP's rules. Use it in tests (in a
//! `tower::ServiceBuilder`) and during development. Each broken rule is a [`Violation`]
//! whose message names the rule (`lint: environ.script-name: …`) and a log line; before the
//! head, the client gets an error response (`500`), after it the body ends with an error.
//!
//! # Gateway apps
//!
//! The stricter rules (a `Content-Type` on every response but 204 and 304, header names of
//! letters, digits, `-` and `_`) are `wsgiref.validate`'s, stricter than the contract.
//!
//! | rule | checks (REFERENCE: `wsgiref.validate`) |
//! |---|---|
//! | `environ.required` | `REQUEST_METHOD`, `SERVER_NAME` and `SERVER_PORT` are set |
//! | `environ.http-content` | no `HTTP_CONTENT_TYPE` or `HTTP_CONTENT_LENGTH` (they are `CONTENT_*`) |
//! | `environ.script-name` | `SCRIPT_NAME` is empty or starts with `/`, and is not `/` |
//! | `environ.path-info` | `PATH_INFO` is empty or starts with `/`; it is set when `SCRIPT_NAME` is empty |
//! | `environ.content-length` | a non-empty `CONTENT_LENGTH` is a whole number |
//! | `start_response.status` | three digits from 100, a space, then the reason |
//! | `start_response.header-name` | letters, digits, `-`, `_`, starting with a letter, not ending with `-` or `_`, not `Status` |
//! | `start_response.header-value` | no control characters (tab included) |
//! | `start_response.content-type` | `Content-Type` present, except for 204 and 304, where it is forbidden |
//! | `body.before-start-response` | the body yields no chunk before `start_response` was called |
//! | `body.after-end` | the body is not polled after it ended |
//!
//! A missing `QUERY_STRING` and an unusual `REQUEST_METHOD` are logged as warnings, as
//! `wsgiref.validate` warns. The input and error streams need no wrapper: their Rust types
//! allow only what PEP 3333 allows (reads return bytes, end at the body's end, cannot close
//! the stream; error output takes text), and so do chunk types (bytes only).
//!
//! ```
//! use towergate::gateway::{app_fn, AppBody};
//! use towergate::handler::SimpleHandler;
//! use towergate::lint::Lint;
//! use towergate::{BoxError, Environ};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // No Content-Type: the contract allows it, the lint does not.
//! let app = Lint::new(app_fn(|_environ, start_response| async move {
//!     start_response.start("200 OK", Vec::<(String, String)>::new())?;
//!     Ok::<_, BoxError>(AppBody::from("hi"))
//! }));
//! let environ = Environ::from_vars([
//!     ("REQUEST_METHOD", "GET"),
//!     ("SERVER_NAME", "localhost"),
//!     ("SERVER_PORT", "80"),
//!     ("SCRIPT_NAME", ""),
//!     ("PATH_INFO", "/"),
//!     ("QUERY_STRING", ""),
//! ]);
//! let mut handler = SimpleHandler::base_cgi(Vec::new(), environ);
//! handler.run(&app).await.unwrap();
//! assert!(handler.transport().starts_with(b"Status: 500 Internal Server Error\r\n"));
//! # }
//! ```
//!
//! # Responses of any tower service
//!
//! | rule | checks |
//! |---|---|
//! | `response.status` | the status is from 100 to 599 (RFC 9110 §15) and not informational, except `101 Switching Protocols` (§15.2: 1xx is never a final status) |
//! | `response.hop-by-hop` | no `Connection`, `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailers`, `Transfer-Encoding`, `Upgrade` ([`is_hop_by_hop`](crate::headers::is_hop_by_hop)): the server sets those (§7.6.1); a 101 may have `Connection` and `Upgrade` |
//! | `response.content-length` | every `Content-Length` value is a number and they agree; none on 1xx and 204 (§8.6); the body is exactly that long, except for HEAD and 304, where it is the length the body would have had |
//! | `response.no-body` | no body data on a response to HEAD, or with 1xx, 204 or 304 (§6.4.1) |
//!
//! Rules that the head and the body's size hint show are checked before the head: the
//! response is replaced by `500 Internal Server Error` whose body is the violation's text,
//! with the [`Violation`] as a response extension. Rules only the body shows (a streamed
//! body longer or shorter than its `Content-Length`, data on a HEAD response) end the body
//! with the violation as its error. Either way a log line says why.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use towergate::lint::{LintLayer, Violation};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(LintLayer::new())
//!     .service_fn(|_request: http::Request<()>| async {
//!         let response = http::Response::builder()
//!             .header("content-length", "10")
//!             .body(Full::new(Bytes::from("too short")))
//!             .unwrap();
//!         Ok::<_, std::convert::Infallible>(response)
//!     });
//! let response = service.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 500);
//! let violation = response.extensions().get::<Violation>().unwrap();
//! assert_eq!(violation.rule(), "response.content-length");
//! # }
//! ```

use std::fmt;

pub use app::{LintBody, LintFuture};
pub use body::ResponseBody;
pub use layer::LintLayer;
pub use service::ResponseFuture;

#[cfg(doc)]
use crate::gateway::{App, StartResponse};

mod app;
mod body;
mod layer;
mod service;

/// A broken lint rule: [`rule`](Self::rule) names it.
#[derive(Clone, Debug)]
pub struct Violation {
    rule: &'static str,
    message: String,
}

impl Violation {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Violation {
            rule,
            message: message.into(),
        }
    }

    /// The rule's name, such as `environ.script-name` (see the [module](self) docs).
    pub fn rule(&self) -> &'static str {
        self.rule
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lint: {}: {}", self.rule, self.message)
    }
}

impl std::error::Error for Violation {}

/// An app whose environ, `start_response` calls and body are checked, or a service whose
/// responses are checked (see the [module](self) docs).
#[derive(Clone, Debug)]
pub struct Lint<A> {
    inner: A,
}

impl<A> Lint<A> {
    /// Checks `inner`.
    pub fn new(inner: A) -> Self {
        Lint { inner }
    }

    /// The app.
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The app.
    pub fn into_inner(self) -> A {
        self.inner
    }
}
