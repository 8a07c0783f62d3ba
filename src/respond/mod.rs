//! The response engine: the rules every transport follows, in one place.
//!
//! A [`Source`] is something that answers: a tower service's `http::Response` ([`ServiceSource`])
//! or a gateway app driven through its `start_response` (the gateway's exchange). A
//! [`Responder`] drives a source to its head and then chunk by chunk, applying the rules:
//!
//! - the head waits for the first non-empty chunk (PEP 3333 "The start_response()
//!   Callable"), so an error before any output still gets a proper error response;
//! - `Content-Length` is added when the source set none and the whole body is known when the
//!   head goes (one chunk and the end, an exact size hint); an empty body gets
//!   `Content-Length: 0`; output through `write()` is streamed without one;
//! - 204 and 304 get no body, and 204 no `Content-Length` (RFC 9110 §8.6, §15.3.5); a 1xx
//!   status is not a final response: it is an error (the error response and a log line);
//! - a `HEAD` request gets the head only (RFC 3875 §4.3.3);
//! - where the protocol requires `Content-Type` for a body (CGI and FastCGI, RFC 3875
//!   §6.3.1), one is sniffed from the first chunk when the source gave none ([`sniff`]);
//! - an error before the head is answered with the [`ErrorResponse`] hook's response, with
//!   its `Content-Length` ([`error_head`]); an error after the head ends the output.
//!
//! Transports only move bytes: [`write_to`] writes a response to a [`Transport`] (the CGI
//! program and the handler family), `AppService` turns a responder into an `http::Response`,
//! the FastCGI server into records.

pub(crate) mod sniff;
mod transport;

use std::fmt::Write as _;
use std::fs::File;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, SizeHint};

pub(crate) use transport::is_disconnect;
pub use transport::{Transport, WriteTransport};

use crate::BoxError;
use crate::error_response::ErrorResponse;
use crate::headers::{HeadStyle, encode_head};
use crate::panic::{log, poll_frame};

/// What the request asks of the response, beyond the source's own choices.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rules {
    /// A `HEAD` request: the head only.
    pub(crate) head_only: bool,
    /// The protocol requires `Content-Type` on a body (CGI, FastCGI): sniff one if missing.
    pub(crate) content_type: bool,
}

/// The status, reason and headers a source chose.
#[derive(Debug)]
pub(crate) struct SourceHead {
    pub(crate) status: StatusCode,
    /// `None` for the status code's canonical reason.
    pub(crate) reason: Option<Bytes>,
    pub(crate) headers: HeaderMap,
    /// The length of the rest cannot be announced (output came through `write()`).
    pub(crate) streamed: bool,
    /// A file to send after the head, whole (a gateway app's file wrapper).
    pub(crate) file: Option<(File, u64)>,
}

/// Something that answers: its head and its chunks.
pub(crate) trait Source {
    /// The status, when it is known before the body is polled.
    fn status(&self) -> Option<StatusCode>;

    /// The next non-empty chunk; `None` at the end.
    fn poll_data(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BoxError>>>;

    /// The head, taken once, when the first chunk (or the end) is in hand.
    fn take_head(self: Pin<&mut Self>) -> Result<SourceHead, BoxError>;

    /// Whether no chunk is left.
    fn is_end_stream(&self) -> bool;

    /// The size of what is left.
    fn size_hint(&self) -> SizeHint;
}

/// A response head ready to be sent, completed by the rules.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) reason: Option<Bytes>,
    pub(crate) headers: HeaderMap,
    /// The first chunk; `None` when no body is sent.
    pub(crate) first: Option<Bytes>,
    /// Whether chunks follow the first (or the file).
    pub(crate) more: bool,
    /// A file to send whole after the head.
    pub(crate) file: Option<(File, u64)>,
}

impl Head {
    /// A short `text/plain` answer, such as the `400 Bad Request` a transport gives a
    /// malformed request before calling anything.
    pub(crate) fn simple(status: StatusCode, text: &'static str, rules: Rules) -> Head {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        Head {
            status,
            reason: None,
            headers,
            first: (!rules.head_only).then(|| Bytes::from_static(text.as_bytes())),
            more: false,
            file: None,
        }
    }

    /// Appends the head (and the first chunk) to `out` in `style`. A header value that would
    /// split the head (CR, LF, NUL: only unchecked constructors can make one) is refused:
    /// a plain 500 goes instead, with a log line.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, style: HeadStyle<'_>) {
        if let Err(e) = encode_head(
            out,
            style,
            self.status,
            self.reason.as_deref(),
            &self.headers,
        ) {
            log(format_args!("refusing the response: {e}"));
            out.clear();
            let mut fallback = HeaderMap::new();
            fallback.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            fallback.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            // A fixed head has no unsafe values.
            let _ = encode_head(
                out,
                style,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &fallback,
            );
            return;
        }
        if let Some(first) = &self.first {
            out.extend_from_slice(first);
        }
    }
}

/// Completes a source's head: the rules of the module docs.
fn finish(
    head: SourceHead,
    first: Option<Bytes>,
    rest: Option<u64>,
    rules: Rules,
) -> Result<Head, BoxError> {
    let SourceHead {
        status,
        reason,
        mut headers,
        streamed,
        file,
    } = head;
    if status.is_informational() {
        return Err(format!(
            "{status} is an interim status, not a final response (RFC 9110 §15.2)"
        )
        .into());
    }
    let no_body = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if status == StatusCode::NO_CONTENT {
        headers.remove(CONTENT_LENGTH);
    }
    if !no_body && !headers.contains_key(CONTENT_LENGTH) {
        let first_len = first.as_ref().map_or(0, |c| c.len() as u64);
        let total = match (&file, streamed) {
            (Some((_, len)), _) => Some(first_len + len),
            (None, true) => None,
            (None, false) => rest.map(|rest| first_len + rest),
        };
        if let Some(total) = total {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
        }
    }
    if rules.content_type && !no_body && !headers.contains_key(CONTENT_TYPE) {
        if let Some(first) = &first {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(sniff::sniff(first)));
        }
    }
    let send_body = !no_body && !rules.head_only;
    let more = send_body && first.is_some() && rest != Some(0);
    Ok(Head {
        status,
        reason,
        headers,
        first: first.filter(|_| send_body),
        more: more || (send_body && file.is_some()),
        file: file.filter(|_| send_body),
    })
}

/// The head for an error before the head was sent: the hook's response, with
/// `Content-Length` (none and no body for 204 and 304; an interim status from the hook is
/// replaced by a plain 500).
pub(crate) fn error_head<E: ErrorResponse + ?Sized>(
    hook: &E,
    error: &BoxError,
    rules: Rules,
) -> Head {
    let (parts, body) = hook.error_response(error).into_parts();
    let head = SourceHead {
        status: parts.status,
        reason: None,
        headers: parts.headers,
        streamed: false,
        file: None,
    };
    let first = Some(body).filter(|b| !b.is_empty());
    match finish(head, first, Some(0), rules) {
        Ok(head) => head,
        Err(e) => {
            log(format_args!("the error response is unusable: {e}"));
            Head::simple(StatusCode::INTERNAL_SERVER_ERROR, "", rules)
        }
    }
}

/// An error and its causes, `limit` deep (`None`: all of them).
pub(crate) fn error_chain(error: &BoxError, limit: Option<usize>) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if limit.is_some_and(|l| depth >= l) {
            text.push_str(": …");
            break;
        }
        let _ = write!(text, ": caused by: {cause}");
        source = cause.source();
        depth += 1;
    }
    text
}

pin_project_lite::pin_project! {
    /// Drives a [`Source`] to its head by the rules, then hands out its chunks.
    pub(crate) struct Responder<S> {
        #[pin]
        source: S,
        rules: Rules,
        started: bool,
    }
}

impl<S: Source> Responder<S> {
    pub(crate) fn new(source: S, rules: Rules) -> Self {
        Responder {
            source,
            rules,
            started: false,
        }
    }

    /// Polls until the head can be sent. An error here is an error before the head.
    pub(crate) fn poll_head(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Head, BoxError>> {
        let mut this = self.project();
        let forbids = this.source.status().is_some_and(|s| {
            s.is_informational() || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED
        });
        let first = if forbids {
            None
        } else {
            match this.source.as_mut().poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(chunk))) => Some(chunk),
                Poll::Ready(None) => None,
            }
        };
        let rest = if first.is_none() || this.source.is_end_stream() {
            Some(0)
        } else {
            this.source.size_hint().exact()
        };
        let head = this.source.as_mut().take_head()?;
        *this.started = true;
        Poll::Ready(finish(head, first, rest, *this.rules))
    }

    /// The next chunk after the head. An error here is an error after the head.
    pub(crate) fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.project().source.poll_data(cx)
    }

    /// Whether no chunk is left.
    pub(crate) fn is_end_stream(&self) -> bool {
        self.source.is_end_stream()
    }

    /// The size of what is left.
    pub(crate) fn size_hint(&self) -> SizeHint {
        self.source.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A tower service's response as a [`Source`].
    pub(crate) struct ServiceSource<B> {
        head: Option<http::response::Parts>,
        status: StatusCode,
        #[pin]
        body: B,
    }
}

impl<B> ServiceSource<B> {
    pub(crate) fn new(response: Response<B>) -> Self {
        let (parts, body) = response.into_parts();
        ServiceSource {
            status: parts.status,
            head: Some(parts),
            body,
        }
    }
}

impl<B> Source for ServiceSource<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn status(&self) -> Option<StatusCode> {
        Some(self.status)
    }

    fn poll_data(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BoxError>>> {
        let mut body = self.project().body;
        loop {
            return match poll_frame(body.as_mut(), cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) if data.has_remaining() => {
                        Poll::Ready(Some(Ok(data.copy_to_bytes(data.remaining()))))
                    }
                    // Empty chunks and trailers carry nothing for the client.
                    _ => continue,
                },
            };
        }
    }

    fn take_head(self: Pin<&mut Self>) -> Result<SourceHead, BoxError> {
        let parts = self
            .project()
            .head
            .take()
            .ok_or("the response head was taken twice")?;
        Ok(SourceHead {
            status: parts.status,
            reason: None,
            headers: parts.headers,
            streamed: false,
            file: None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Records that a transport's request body was malformed (shorter than `CONTENT_LENGTH`, or
/// over the limit), so that it answers `400 Bad Request` or `413 Content Too Large` instead of
/// whatever the service made of the failed read, when the head is not yet written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Failure(Arc<AtomicU16>);

impl Failure {
    pub(crate) fn set(&self, status: StatusCode) {
        let _ = self
            .0
            .compare_exchange(0, status.as_u16(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The status the request deserves, if its body was malformed.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            code => StatusCode::from_u16(code).ok(),
        }
    }

    /// The answer for a malformed request body, if it was.
    fn head(&self, rules: Rules) -> Option<Head> {
        let status = self.status()?;
        log(format_args!(
            "the request body was malformed: answering {status} instead of the response"
        ));
        Some(if status == StatusCode::PAYLOAD_TOO_LARGE {
            Head::simple(status, "Content Too Large\n", rules)
        } else {
            Head::simple(status, "Bad Request\n", rules)
        })
    }
}

/// How writing a response to a [`Transport`] failed. Each has been logged, except an I/O
/// error, which the caller judges.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The source failed after the head was written: the output is cut short.
    Body(BoxError),
    /// The transport failed.
    Io(std::io::Error),
}

/// Where and how [`write_to`] writes.
pub(crate) struct Output<'a, T> {
    pub(crate) transport: T,
    pub(crate) style: HeadStyle<'a>,
    pub(crate) rules: Rules,
    /// A transport's record of a malformed request body, checked before any head.
    pub(crate) failure: Option<Failure>,
    /// How many causes of an error are logged.
    pub(crate) traceback_limit: Option<usize>,
    /// Who failed, for the log line: `app`, `service`.
    pub(crate) who: &'static str,
}

impl<T: Transport> Output<'_, T> {
    /// Writes a complete head (and its first chunk), and the file that follows it.
    pub(crate) fn write_head(&mut self, mut head: Head) -> Result<(), WriteError> {
        if let Some(failed) = self.failure.as_ref().and_then(|f| f.head(self.rules)) {
            head = failed;
        }
        let mut out = Vec::with_capacity(256 + head.first.as_ref().map_or(0, Bytes::len));
        head.encode(&mut out, self.style);
        let transport = &mut self.transport;
        transport
            .write(&out)
            .and_then(|()| transport.flush())
            .map_err(WriteError::Io)?;
        match head.file {
            Some((file, len)) => self.send_file(file, len),
            None => Ok(()),
        }
    }

    /// Logs an error before the head and writes the error response.
    pub(crate) fn write_error<E: ErrorResponse + ?Sized>(
        &mut self,
        hook: &E,
        error: &BoxError,
    ) -> Result<(), WriteError> {
        log(format_args!(
            "{} failed: {}",
            self.who,
            error_chain(error, self.traceback_limit)
        ));
        let head = error_head(hook, error, self.rules);
        self.write_head(head)
    }

    fn send_file(&mut self, mut file: File, len: u64) -> Result<(), WriteError> {
        match self.transport.send_file(&mut file, len) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(self.failed_after_head(e.into())),
        }
        // The transport cannot take a file: read it block by block.
        let mut left = len;
        let mut block = vec![0; 64 * 1024];
        while left > 0 {
            let want = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match std::io::Read::read(&mut file, &mut block[..want]) {
                Ok(0) => {
                    let e = format!("the file ended {left} bytes early");
                    return Err(self.failed_after_head(e.into()));
                }
                Ok(n) => {
                    left -= n as u64;
                    self.write_chunk(&block[..n])?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed_after_head(e.into())),
            }
        }
        Ok(())
    }

    fn write_chunk(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let transport = &mut self.transport;
        transport
            .write(data)
            .and_then(|()| transport.flush())
            .map_err(WriteError::Io)
    }

    fn failed_after_head(&self, error: BoxError) -> WriteError {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if is_disconnect(io) {
                return WriteError::Io(std::io::Error::new(io.kind(), io.to_string()));
            }
        }
        log(format_args!(
            "{} failed after the head was sent: {}",
            self.who,
            error_chain(&error, self.traceback_limit)
        ));
        WriteError::Body(error)
    }

    /// Drives `responder` and writes its response: the head (or the error response), then
    /// every chunk, each flushed as it comes.
    pub(crate) async fn write<S: Source, E: ErrorResponse + ?Sized>(
        &mut self,
        responder: Pin<&mut Responder<S>>,
        hook: &E,
    ) -> Result<(), WriteError> {
        let mut responder = responder;
        let head = match poll_fn(|cx| responder.as_mut().poll_head(cx)).await {
            Ok(head) => head,
            Err(e) => return self.write_error(hook, &e),
        };
        let more = head.more && head.file.is_none();
        self.write_head(head)?;
        if !more {
            return Ok(());
        }
        while let Some(chunk) = poll_fn(|cx| responder.as_mut().poll_chunk(cx)).await {
            match chunk {
                Ok(chunk) => self.write_chunk(&chunk)?,
                Err(e) => return Err(self.failed_after_head(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> SourceHead {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        SourceHead {
            status: StatusCode::from_u16(status).unwrap(),
            reason: None,
            headers: map,
            streamed: false,
            file: None,
        }
    }

    const CGI: Rules = Rules {
        head_only: false,
        content_type: true,
    };

    #[test]
    fn a_known_length_is_announced_and_a_type_sniffed() {
        let done = finish(head(200, &[]), Some(Bytes::from("<html>")), Some(0), CGI).unwrap();
        assert_eq!(done.headers["content-length"], "6");
        assert_eq!(done.headers["content-type"], "text/html; charset=utf-8");
        assert!(!done.more);
    }

    #[test]
    fn no_content_has_no_length_and_no_body() {
        let done = finish(
            head(204, &[("content-length", "0")]),
            Some(Bytes::from("x")),
            Some(0),
            CGI,
        )
        .unwrap();
        assert!(done.headers.is_empty());
        assert!(done.first.is_none());
    }

    #[test]
    fn an_interim_status_is_an_error() {
        let err = finish(head(103, &[]), None, Some(0), CGI).unwrap_err();
        assert_eq!(
            err.to_string(),
            "103 Early Hints is an interim status, not a final response (RFC 9110 §15.2)"
        );
    }

    #[test]
    fn streamed_output_gets_no_length_and_head_gets_no_body() {
        let mut streamed = head(200, &[("content-type", "text/plain")]);
        streamed.streamed = true;
        let rules = Rules {
            head_only: true,
            content_type: true,
        };
        let done = finish(streamed, Some(Bytes::from("ab")), Some(0), rules).unwrap();
        assert!(!done.headers.contains_key("content-length"));
        assert!(done.first.is_none() && !done.more);
    }

    #[test]
    fn an_empty_body_gets_length_zero_and_no_sniffed_type() {
        let done = finish(head(200, &[]), None, Some(0), CGI).unwrap();
        assert_eq!(done.headers["content-length"], "0");
        assert!(!done.headers.contains_key("content-type"));
    }
}
