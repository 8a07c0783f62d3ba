//! The response rules, as the FastCGI side sees them: a `Response<B>` driven to its head,
//! then its remaining chunks.
//!
//! A small adapter in the shape of the crate's one response engine (`crate::respond`): the
//! rest of the module only calls [`start`], [`Head::next_chunk`], [`error_head`] and
//! [`encode_cgi_head`], so moving to the engine changes this file alone.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, Bytes};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body;

use crate::BoxError;
use crate::error_response::ErrorResponse;
use crate::headers::{HeadStyle, encode_head, status_forbids_body};
use crate::panic::{log, poll_frame};

/// A response ready for its head: status, headers (with the computed `Content-Length` and
/// `Content-Type`), the first chunk and the rest of the body.
pub(super) struct Head<B> {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) first: Option<Bytes>,
    /// `None` when the body is over (or must not be sent).
    body: Option<Pin<Box<B>>>,
}

/// Drives `response` to its head: the head waits for the first non-empty chunk (PEP 3333),
/// so a body that fails before any output is an error before the head; `Content-Length`
/// is added when the length is known; HEAD and 1xx/204/304 get no body (RFC 3875 §4.3.3);
/// a body without `Content-Type` gets one sniffed from its first bytes (RFC 3875 §6.3.1).
pub(super) async fn start<B>(response: Response<B>, head_only: bool) -> Result<Head<B>, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let status = parts.status;
    let mut body = Box::pin(body);
    let forbids_body = status_forbids_body(status);
    let no_body = head_only || forbids_body;
    let mut first = None;
    if !no_body {
        while let Some(frame) = poll_fn(|cx| poll_frame(body.as_mut(), cx)).await {
            if let Ok(mut data) = frame?.into_data() {
                if data.has_remaining() {
                    first = Some(data.copy_to_bytes(data.remaining()));
                    break;
                }
            }
        }
    }
    let ended = first.is_none() || body.is_end_stream();
    if !no_body && !headers.contains_key(CONTENT_LENGTH) {
        let first_len = first.as_ref().map_or(0, |d: &Bytes| d.len() as u64);
        let rest = if ended {
            Some(0)
        } else {
            body.size_hint().exact()
        };
        if let Some(rest) = rest {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(first_len + rest));
        }
    }
    if let Some(first) = &first {
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(sniff(first)));
        }
    }
    Ok(Head {
        status,
        headers,
        first,
        body: if no_body || ended { None } else { Some(body) },
    })
}

impl<B> Head<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// True when no chunk follows the first.
    pub(super) fn is_end(&self) -> bool {
        self.body.is_none()
    }

    /// The next non-empty chunk after the first; `None` at the end.
    pub(super) async fn next_chunk(&mut self) -> Option<Result<Bytes, BoxError>> {
        let body = self.body.as_mut()?;
        while let Some(frame) = poll_fn(|cx| poll_frame(body.as_mut(), cx)).await {
            match frame {
                Ok(frame) => {
                    if let Ok(mut data) = frame.into_data() {
                        if data.has_remaining() {
                            return Some(Ok(data.copy_to_bytes(data.remaining())));
                        }
                    }
                }
                Err(e) => {
                    self.body = None;
                    return Some(Err(e));
                }
            }
        }
        self.body = None;
        None
    }
}

/// The error hook's response for an error before the head: status, headers with the
/// length, and the body (empty for HEAD).
pub(super) fn error_head(
    hook: &mut impl ErrorResponse,
    error: &BoxError,
    head_only: bool,
) -> (StatusCode, HeaderMap, Bytes) {
    let (mut parts, body) = hook.error_response(error).into_parts();
    if status_forbids_body(parts.status) {
        return (parts.status, parts.headers, Bytes::new());
    }
    if !parts.headers.contains_key(CONTENT_LENGTH) {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let body = if head_only { Bytes::new() } else { body };
    (parts.status, parts.headers, body)
}

/// A short `text/plain` response for the transport's own errors (400 for a malformed
/// request).
pub(super) fn simple(
    status: StatusCode,
    body: &'static str,
    head_only: bool,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if head_only {
        Bytes::new()
    } else {
        Bytes::from_static(body.as_bytes())
    };
    (status, headers, body)
}

/// Appends the CGI header block (`Status: NNN Reason`, the headers, a blank line; RFC 3875
/// §6.3). Headers that would split the head are refused with a 500 in their place.
pub(super) fn encode_cgi_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    if let Err(e) = encode_head(out, HeadStyle::Cgi, status, None, headers) {
        log(format_args!("refusing the response: {e}"));
        out.clear();
        let mut fallback = HeaderMap::new();
        fallback.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        fallback.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        // A fixed head has no unsafe values.
        let _ = encode_head(
            out,
            HeadStyle::Cgi,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            &fallback,
        );
    }
}

/// A minimal stand-in for the engine's sniffing (WHATWG MIME sniffing, as Go's
/// `http.DetectContentType`): HTML, else UTF-8 text, else octets.
fn sniff(first: &[u8]) -> &'static str {
    let start = first.trim_ascii_start();
    let lower: Vec<u8> = start.iter().take(14).map(u8::to_ascii_lowercase).collect();
    if [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<p",
        b"<div",
    ]
    .iter()
    .any(|tag| lower.starts_with(tag))
    {
        return "text/html; charset=utf-8";
    }
    let text = match std::str::from_utf8(first) {
        Ok(_) => true,
        // A chunk may end inside a character.
        Err(e) => e.error_len().is_none(),
    };
    if text
        && !first
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
    {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};

    use super::*;

    #[test]
    fn sniffing_tells_html_text_and_octets_apart() {
        assert_eq!(sniff(b"  <!DOCTYPE html><p>"), "text/html; charset=utf-8");
        assert_eq!(sniff("héllo\n".as_bytes()), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\x00\x01binary"), "application/octet-stream");
        // A chunk cut inside a character is still text.
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain; charset=utf-8");
    }

    #[tokio::test]
    async fn a_whole_body_gets_its_length_and_a_sniffed_type() {
        let head = start(Response::new(Full::new(Bytes::from("hi"))), false)
            .await
            .unwrap();
        assert_eq!(head.headers["content-length"], "2");
        assert_eq!(head.headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(head.first.as_deref(), Some(&b"hi"[..]));
        assert!(head.is_end());
    }

    #[tokio::test]
    async fn head_and_204_get_no_body_and_a_stream_no_length() {
        let head = start(Response::new(Full::new(Bytes::from("hi"))), true)
            .await
            .unwrap();
        assert!(head.first.is_none() && head.is_end());
        assert!(!head.headers.contains_key(CONTENT_LENGTH));

        let mut response = Response::new(Full::new(Bytes::from("dropped")));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let head = start(response, false).await.unwrap();
        assert!(head.first.is_none() && head.headers.is_empty());

        let frames = futures_util::stream::iter(
            ["a", "b"].map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c)))),
        );
        let mut head = start(Response::new(StreamBody::new(frames)), false)
            .await
            .unwrap();
        assert!(!head.headers.contains_key(CONTENT_LENGTH));
        assert_eq!(head.next_chunk().await.unwrap().unwrap(), "b");
        assert!(head.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_body_failing_before_any_output_is_an_error_before_the_head() {
        let frames =
            futures_util::stream::iter([Err::<http_body::Frame<Bytes>, BoxError>("broken".into())]);
        let err = start(Response::new(StreamBody::new(frames)), false)
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "broken");
    }
}
