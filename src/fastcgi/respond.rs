//! The response rules, from the crate's one response engine (`crate::respond`): a
//! `Response<B>` driven to its head, then its remaining chunks, and the CGI header block the
//! head is written as in STDOUT.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Body;

use crate::BoxError;
use crate::error_response::ErrorResponse;
use crate::headers::HeadStyle;
use crate::respond::{self, Head, Responder, Rules, ServiceSource};

/// The rules for a FastCGI response: `Content-Type` is required on a body (RFC 3875
/// §6.3.1, as FastCGI responses are CGI responses), none for a `HEAD` request.
fn rules(head_only: bool) -> Rules {
    Rules {
        head_only,
        content_type: true,
    }
}

/// The chunks of a response after its head's first.
pub(super) struct Chunks<B> {
    more: bool,
    rest: Pin<Box<Responder<ServiceSource<B>>>>,
}

/// Drives `response` to its head by the engine's rules (the head waits for the first
/// non-empty chunk, `Content-Length` when known, no body for HEAD/204/304, `Content-Type`
/// sniffed). An error here is an error before the head.
pub(super) async fn start<B>(
    response: Response<B>,
    head_only: bool,
) -> Result<(Head, Chunks<B>), BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut rest = Box::pin(Responder::new(
        ServiceSource::new(response),
        rules(head_only),
    ));
    let head = poll_fn(|cx| rest.as_mut().poll_head(cx)).await?;
    let more = head.more;
    Ok((head, Chunks { more, rest }))
}

impl<B> Chunks<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// True when no chunk follows the head's first.
    pub(super) fn is_end(&self) -> bool {
        !self.more
    }

    /// The next chunk; `None` at the end. An error here is an error after the head.
    pub(super) async fn next_chunk(&mut self) -> Option<Result<Bytes, BoxError>> {
        if !self.more {
            return None;
        }
        let chunk = poll_fn(|cx| self.rest.as_mut().poll_chunk(cx)).await;
        if !matches!(chunk, Some(Ok(_))) {
            self.more = false;
        }
        chunk
    }
}

/// The error hook's head (and body) for an error before the head.
pub(super) fn error_head(hook: &impl ErrorResponse, error: &BoxError, head_only: bool) -> Head {
    respond::error_head(hook, error, rules(head_only))
}

/// A short `text/plain` answer of the transport's own (400 for a malformed request).
pub(super) fn simple(status: StatusCode, text: &'static str, head_only: bool) -> Head {
    Head::simple(status, text, rules(head_only))
}

/// Appends the CGI header block (`Status: NNN Reason`, the headers, a blank line; RFC 3875
/// §6.3) and the head's first chunk.
pub(super) fn encode(head: &Head, out: &mut Vec<u8>) {
    head.encode(out, HeadStyle::Cgi);
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};

    use super::*;

    fn text(head: &Head) -> String {
        let mut out = Vec::new();
        encode(head, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn a_whole_body_gets_its_length_and_a_sniffed_type() {
        let (head, chunks) = start(Response::new(Full::new(Bytes::from("hi"))), false)
            .await
            .unwrap();
        assert!(chunks.is_end());
        assert_eq!(
            text(&head),
            "Status: 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi"
        );
    }

    #[tokio::test]
    async fn head_gets_no_body_and_a_stream_no_length() {
        let (head, chunks) = start(Response::new(Full::new(Bytes::from("hi"))), true)
            .await
            .unwrap();
        assert!(chunks.is_end());
        assert!(head.first.is_none());

        let frames = futures_util::stream::iter(
            ["a", "b"].map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c)))),
        );
        let (head, mut chunks) = start(Response::new(StreamBody::new(frames)), false)
            .await
            .unwrap();
        assert_eq!(
            text(&head),
            "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\na"
        );
        assert_eq!(chunks.next_chunk().await.unwrap().unwrap(), "b");
        assert!(chunks.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_body_failing_before_any_output_is_an_error_before_the_head() {
        let frames =
            futures_util::stream::iter([Err::<http_body::Frame<Bytes>, BoxError>("broken".into())]);
        let result = start(Response::new(StreamBody::new(frames)), false).await;
        assert_eq!(result.err().unwrap().to_string(), "broken");
    }
}
