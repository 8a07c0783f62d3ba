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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub use body::ResponseBody;
pub use layer::LintLayer;
pub use service::ResponseFuture;

use crate::gateway::{App, StartResponse};
use crate::panic::log;
use crate::{BoxError, Environ};

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

impl<A: App> App for Lint<A> {
    type Body = LintBody<A::Body>;
    type Future = LintFuture<A::Future>;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future {
        if let Err(violation) = check_environ(&environ) {
            return LintFuture {
                inner: None,
                violation: Some(violation),
                start_response,
            };
        }
        let checked = start_response.clone().with_check(Arc::new(
            |status: &[u8], headers: &[(Bytes, Bytes)]| {
                check_start(status, headers).map_err(Into::into)
            },
        ));
        LintFuture {
            inner: Some(self.inner.call(environ, checked)),
            violation: None,
            start_response,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Lint`] app.
    pub struct LintFuture<F> {
        #[pin]
        inner: Option<F>,
        violation: Option<Violation>,
        start_response: StartResponse,
    }
}

impl<F> fmt::Debug for LintFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LintFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for LintFuture<F>
where
    F: Future<Output = Result<B, BoxError>>,
{
    type Output = Result<LintBody<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(violation) = this.violation.take() {
            return Poll::Ready(Err(violation.into()));
        }
        match this.inner.as_pin_mut() {
            None => Poll::Ready(Err("polled after completion".into())),
            Some(inner) => inner.poll(cx).map_ok(|body| LintBody {
                inner: body,
                start_response: this.start_response.clone(),
                ended: false,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`Lint`] app.
    pub struct LintBody<B> {
        #[pin]
        inner: B,
        start_response: StartResponse,
        ended: bool,
    }
}

impl<B> fmt::Debug for LintBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LintBody").finish_non_exhaustive()
    }
}

impl<B> Body for LintBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(Some(Err(Violation::new(
                "body.after-end",
                "the body was read after it ended",
            )
            .into())));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.data_ref().is_some() && !this.start_response.is_called() {
                    return Poll::Ready(Some(Err(Violation::new(
                        "body.before-start-response",
                        "the body yielded a chunk, but start_response has not been called",
                    )
                    .into())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                *this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The environ rules.
pub(crate) fn check_environ(environ: &Environ) -> Result<(), Violation> {
    for key in ["REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT"] {
        if !environ.contains_key(key) {
            return Err(Violation::new(
                "environ.required",
                format!("{key} is not set"),
            ));
        }
    }
    for key in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        if environ.contains_key(key) {
            return Err(Violation::new(
                "environ.http-content",
                format!("{key} is set: it must be {}", &key[5..]),
            ));
        }
    }
    if !environ.contains_key("QUERY_STRING") {
        log(format_args!(
            "lint: warning: QUERY_STRING is not set: cgi.FieldStorage-style parsers expect it"
        ));
    }
    let method = environ.get("REQUEST_METHOD").unwrap_or_default();
    const METHODS: [&[u8]; 8] = [
        b"GET", b"HEAD", b"POST", b"OPTIONS", b"PATCH", b"PUT", b"DELETE", b"TRACE",
    ];
    if !METHODS.contains(&method) {
        log(format_args!(
            "lint: warning: unknown REQUEST_METHOD {:?}",
            String::from_utf8_lossy(method)
        ));
    }
    let script = environ.get("SCRIPT_NAME");
    if let Some(script) = script {
        if !script.is_empty() && !script.starts_with(b"/") {
            return Err(Violation::new(
                "environ.script-name",
                format!(
                    "SCRIPT_NAME {:?} does not start with /",
                    String::from_utf8_lossy(script)
                ),
            ));
        }
        if script == b"/" {
            return Err(Violation::new(
                "environ.script-name",
                "SCRIPT_NAME is / (the root is the empty SCRIPT_NAME)",
            ));
        }
    }
    match environ.get("PATH_INFO") {
        Some(path) if !path.is_empty() && !path.starts_with(b"/") => {
            return Err(Violation::new(
                "environ.path-info",
                format!(
                    "PATH_INFO {:?} does not start with /",
                    String::from_utf8_lossy(path)
                ),
            ));
        }
        None if script.is_none_or(<[u8]>::is_empty) => {
            return Err(Violation::new(
                "environ.path-info",
                "one of SCRIPT_NAME or PATH_INFO must be set (PATH_INFO should be / at the root)",
            ));
        }
        _ => {}
    }
    if let Some(length) = environ.get("CONTENT_LENGTH").filter(|v| !v.is_empty()) {
        if length.is_empty() || !length.iter().all(u8::is_ascii_digit) {
            return Err(Violation::new(
                "environ.content-length",
                format!(
                    "CONTENT_LENGTH {:?} is not a whole number",
                    String::from_utf8_lossy(length)
                ),
            ));
        }
    }
    Ok(())
}

/// The `start_response` rules.
pub(crate) fn check_start(status: &[u8], headers: &[(Bytes, Bytes)]) -> Result<(), Violation> {
    let shown = String::from_utf8_lossy(status);
    let code = status
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok());
    let code = match code {
        Some(code) if code >= 100 && status.get(3) == Some(&b' ') => code,
        _ => {
            return Err(Violation::new(
                "start_response.status",
                format!("status {shown:?} is not three digits from 100, a space and a reason"),
            ));
        }
    };
    let mut content_type = false;
    for (name, value) in headers {
        let shown_name = String::from_utf8_lossy(name);
        let valid = name.first().is_some_and(u8::is_ascii_alphabetic)
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !name.ends_with(b"-")
            && !name.ends_with(b"_");
        if !valid || name.eq_ignore_ascii_case(b"status") {
            return Err(Violation::new(
                "start_response.header-name",
                format!("header name {shown_name:?} is not allowed"),
            ));
        }
        if value.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(Violation::new(
                "start_response.header-value",
                format!("the value of header {shown_name:?} has a control character"),
            ));
        }
        content_type |= name.eq_ignore_ascii_case(b"content-type");
    }
    let bodiless = code == 204 || code == 304;
    if bodiless && content_type {
        return Err(Violation::new(
            "start_response.content-type",
            format!("a Content-Type header with status {code}, which has no body"),
        ));
    }
    if !bodiless && !content_type {
        return Err(Violation::new(
            "start_response.content-type",
            format!("no Content-Type header with status {code}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(environ: &[(&'static str, &'static str)]) -> Option<&'static str> {
        let mut vars = vec![
            ("REQUEST_METHOD", "GET"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("QUERY_STRING", ""),
        ];
        vars.extend_from_slice(environ);
        check_environ(&Environ::from_vars(vars))
            .err()
            .map(|v| v.rule())
    }

    #[test]
    fn root_script_name_is_a_violation() {
        assert_eq!(
            rule(&[("SCRIPT_NAME", "/"), ("PATH_INFO", "")]),
            Some("environ.script-name")
        );
        assert_eq!(rule(&[("SCRIPT_NAME", ""), ("PATH_INFO", "/")]), None);
    }

    #[test]
    fn path_info_must_exist_at_the_root() {
        assert_eq!(rule(&[("SCRIPT_NAME", "")]), Some("environ.path-info"));
        assert_eq!(rule(&[("SCRIPT_NAME", "/app")]), None);
    }

    #[test]
    fn http_content_type_is_a_violation() {
        assert_eq!(
            rule(&[("PATH_INFO", "/"), ("HTTP_CONTENT_TYPE", "x")]),
            Some("environ.http-content")
        );
        assert_eq!(
            rule(&[("PATH_INFO", "/"), ("CONTENT_LENGTH", "-1")]),
            Some("environ.content-length")
        );
    }

    #[test]
    fn no_content_type_is_a_violation_except_for_204() {
        let ct = [(Bytes::from("Content-Type"), Bytes::from("text/plain"))];
        assert!(check_start(b"200 OK", &ct).is_ok());
        assert_eq!(
            check_start(b"200 OK", &[]).unwrap_err().to_string(),
            "lint: start_response.content-type: no Content-Type header with status 200"
        );
        assert!(check_start(b"204 No Content", &[]).is_ok());
        assert_eq!(
            check_start(b"304 Not Modified", &ct).unwrap_err().rule(),
            "start_response.content-type"
        );
    }

    #[test]
    fn tab_in_a_value_and_odd_names_are_violations() {
        let tab = [(Bytes::from("X-A"), Bytes::from("a\tb"))];
        assert_eq!(
            check_start(b"200 OK", &tab).unwrap_err().rule(),
            "start_response.header-value"
        );
        let odd = [(Bytes::from("X-"), Bytes::from("a"))];
        assert_eq!(
            check_start(b"200 OK", &odd).unwrap_err().rule(),
            "start_response.header-name"
        );
        assert_eq!(
            check_start(b"099 Low", &[]).unwrap_err().rule(),
            "start_response.status"
        );
    }
}
