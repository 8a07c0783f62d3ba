//! The gateway app lint: `Lint<A>` as an [`App`], checked the way `wsgiref.validate` checks
//! one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{Lint, Violation};
use crate::gateway::{App, StartResponse};
use crate::panic::log;
use crate::{BoxError, Environ};

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
