//! The request body: the request's STDIN stream, through a bounded channel.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::cgi;

/// The request body of a FastCGI request: its STDIN stream, as the web server sends it.
///
/// With `CONTENT_LENGTH` set, exactly that many bytes (anything past them is dropped); with
/// none, everything up to the end of the STDIN stream (Apache `mod_proxy_fcgi` streams a
/// chunked body that way); with an empty one (nginx on a `GET`), no body. The bytes come
/// through a bounded buffer ([`Builder::request_buffer`](super::Builder::request_buffer)):
/// while the service does not read, the connection stops reading from the web server.
///
/// Under [`towergate::run`](crate::run), a program started as CGI gets its standard input
/// in this type too, so one service serves both gateways.
///
/// ```
/// use http_body::Body;
/// use towergate::fastcgi::RequestBody;
///
/// let body = RequestBody::empty();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    Empty,
    Stream(Stream),
    /// In a mutex only to make the body `Sync` (polling uses `get_mut`, no lock).
    Cgi(Mutex<cgi::RequestBody>),
}

struct Stream {
    rx: mpsc::Receiver<Bytes>,
    /// Bytes still to come, when `CONTENT_LENGTH` says.
    remaining: Option<u64>,
    read: u64,
    state: Arc<StdinState>,
    done: bool,
}

/// What the connection and the body share about one request's STDIN.
#[derive(Debug, Default)]
pub(super) struct StdinState {
    /// The empty STDIN record arrived: a closed channel is the end, not a cut.
    complete: AtomicBool,
    /// The body ended before `CONTENT_LENGTH` bytes: the request is malformed (400).
    short: AtomicBool,
}

impl StdinState {
    pub(super) fn set_complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    pub(super) fn is_short(&self) -> bool {
        self.short.load(Ordering::Acquire)
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RequestBody");
        match &self.kind {
            Kind::Empty => d.field("kind", &"empty"),
            Kind::Stream(s) => d.field("remaining", &s.remaining).field("read", &s.read),
            Kind::Cgi(body) => d.field("cgi", body),
        };
        d.finish()
    }
}

impl RequestBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// A body fed by the connection: `length` bytes, or to the end of STDIN when `None`.
    /// (With no body at all, the connection makes an [`empty`](Self::empty) one and no
    /// channel.)
    pub(super) fn stream(
        rx: mpsc::Receiver<Bytes>,
        length: Option<u64>,
        state: Arc<StdinState>,
    ) -> Self {
        Self {
            kind: Kind::Stream(Stream {
                rx,
                remaining: length,
                read: 0,
                state,
                done: false,
            }),
        }
    }
}

impl From<cgi::RequestBody> for RequestBody {
    /// A CGI program's standard input, for a service that serves both gateways.
    fn from(body: cgi::RequestBody) -> Self {
        Self {
            kind: Kind::Cgi(Mutex::new(body)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let stream = match &mut self.get_mut().kind {
            Kind::Empty => return Poll::Ready(None),
            Kind::Cgi(body) => {
                let body = body.get_mut().unwrap_or_else(PoisonError::into_inner);
                return Pin::new(body)
                    .poll_frame(cx)
                    .map_err(|e| BodyError(ErrorKind::Cgi(e)));
            }
            Kind::Stream(stream) => stream,
        };
        if stream.done {
            return Poll::Ready(None);
        }
        match ready!(stream.rx.poll_recv(cx)) {
            Some(mut chunk) => {
                if let Some(remaining) = &mut stream.remaining {
                    // Bytes past CONTENT_LENGTH are dropped (RFC 3875 §4.2).
                    if chunk.len() as u64 >= *remaining {
                        chunk.truncate(usize::try_from(*remaining).unwrap_or(usize::MAX));
                        stream.done = true;
                        stream.rx.close();
                    }
                    *remaining -= chunk.len() as u64;
                }
                stream.read += chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => {
                stream.done = true;
                let complete = stream.state.complete.load(Ordering::Acquire);
                match stream.remaining {
                    Some(missing) if complete => {
                        stream.state.short.store(true, Ordering::Release);
                        Poll::Ready(Some(Err(BodyError(ErrorKind::Incomplete {
                            read: stream.read,
                            expected: stream.read + missing,
                        }))))
                    }
                    _ if !complete => Poll::Ready(Some(Err(BodyError(ErrorKind::Aborted)))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Stream(stream) => stream.done,
            Kind::Cgi(body) => body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Stream(Stream { done: true, .. }) => SizeHint::with_exact(0),
            Kind::Stream(Stream {
                remaining: Some(n), ..
            }) => SizeHint::with_exact(*n),
            Kind::Stream(_) => SizeHint::default(),
            Kind::Cgi(body) => body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .size_hint(),
        }
    }
}

/// An error reading a FastCGI request body.
#[derive(Debug)]
pub struct BodyError(ErrorKind);

#[derive(Debug)]
enum ErrorKind {
    /// The STDIN stream ended before `CONTENT_LENGTH` bytes.
    Incomplete {
        read: u64,
        expected: u64,
    },
    /// The request was aborted, or its connection closed or failed, before its STDIN ended.
    Aborted,
    Cgi(cgi::BodyError),
}

impl BodyError {
    /// True when the STDIN stream ended before `CONTENT_LENGTH` bytes: the request is
    /// malformed, and it is answered `400 Bad Request` if the head is not written yet.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.0, ErrorKind::Incomplete { .. })
            || matches!(&self.0, ErrorKind::Cgi(cgi::BodyError::Incomplete { .. }))
    }

    /// True when the web server aborted the request (ABORT_REQUEST) or its connection
    /// ended before the body did.
    pub fn is_aborted(&self) -> bool {
        matches!(self.0, ErrorKind::Aborted)
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorKind::Incomplete { read, expected } => write!(
                f,
                "the request body ended after {read} of its {expected} bytes"
            ),
            ErrorKind::Aborted => f.write_str("the request was aborted before its body ended"),
            ErrorKind::Cgi(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            ErrorKind::Cgi(e) => Some(e),
            _ => None,
        }
    }
}
