//! The response lint: `Lint<S>` as a tower service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::body::{BodyCheck, ResponseBody};
use super::{Lint, Violation};
use crate::headers::{is_hop_by_hop, status_forbids_body};
use crate::panic::log;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Lint<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            head: request.method() == Method::HEAD,
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Lint`] as a service.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        head: bool,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(Ok(match check_head(&response, *this.head) {
            Ok(check) => response.map(|body| ResponseBody::checked(body, check)),
            Err(violation) => {
                log(format_args!("{violation}"));
                error_response(violation)
            }
        }))
    }
}

/// The response sent in place of one that breaks a rule before its head: `500`, the
/// violation as text, and the [`Violation`] as an extension.
fn error_response<B>(violation: Violation) -> Response<ResponseBody<B>> {
    let body = format!("{violation}\n");
    let mut response = Response::new(ResponseBody::error(body.into()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.extensions_mut().insert(violation);
    response
}

/// The rules a response head breaks, or what its body must be checked for.
fn check_head<B: Body>(response: &Response<B>, head: bool) -> Result<BodyCheck, Violation> {
    let status = response.status();
    if !(100..=599).contains(&status.as_u16()) {
        return Err(Violation::new(
            "response.status",
            format!(
                "status {} is outside 100-599 (RFC 9110 §15)",
                status.as_u16()
            ),
        ));
    }
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    if status.is_informational() && !switching {
        return Err(Violation::new(
            "response.status",
            format!(
                "status {} is informational, not a final status (RFC 9110 §15.2)",
                status.as_u16()
            ),
        ));
    }
    for name in response.headers().keys() {
        if switching && (name == CONNECTION || name == UPGRADE) {
            continue;
        }
        if is_hop_by_hop(name.as_str()) {
            return Err(Violation::new(
                "response.hop-by-hop",
                format!("{name} is a hop-by-hop header: the server sets it (RFC 9110 §7.6.1)"),
            ));
        }
    }
    let no_body = head || status_forbids_body(status);
    let length = content_length(response)?;
    if length.is_some() && (status.is_informational() || status == StatusCode::NO_CONTENT) {
        return Err(Violation::new(
            "response.content-length",
            format!(
                "Content-Length on a {} response (RFC 9110 §8.6)",
                status.as_u16()
            ),
        ));
    }
    let hint = response.body().size_hint();
    if no_body && hint.lower() > 0 {
        return Err(Violation::new(
            "response.no-body",
            format!(
                "a body of at least {} bytes on a {} response to {} (RFC 9110 §6.4.1)",
                hint.lower(),
                status.as_u16(),
                if head { "HEAD" } else { "a request" }
            ),
        ));
    }
    // A HEAD or 304 response's Content-Length is the length the body would have had.
    let expected = length.filter(|_| !no_body);
    if let Some(length) = expected {
        if hint.lower() > length || hint.upper().is_some_and(|upper| upper < length) {
            return Err(Violation::new(
                "response.content-length",
                format!(
                    "Content-Length {length} but the body is {} bytes",
                    match hint.exact() {
                        Some(exact) => exact.to_string(),
                        None => format!("{}..{:?}", hint.lower(), hint.upper()),
                    }
                ),
            ));
        }
    }
    Ok(BodyCheck::new(no_body, expected))
}

/// The `Content-Length`, when there is one; repeated values must agree (RFC 9110 §8.6).
fn content_length<B>(response: &Response<B>) -> Result<Option<u64>, Violation> {
    let mut length = None;
    for value in response.headers().get_all(CONTENT_LENGTH) {
        let parsed = value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        match (parsed, length) {
            (None, _) => {
                return Err(Violation::new(
                    "response.content-length",
                    format!("Content-Length {value:?} is not a number of bytes"),
                ));
            }
            (Some(n), Some(previous)) if n != previous => {
                return Err(Violation::new(
                    "response.content-length",
                    format!("two different Content-Length values, {previous} and {n}"),
                ));
            }
            (Some(n), _) => length = Some(n),
        }
    }
    Ok(length)
}
