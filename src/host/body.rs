//! [`ResponseBody`]: the body of a response from the CGI host.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::ChildStdout;
use tokio::time::Sleep;

use super::process::{self, Ending, KillSwitch, Output, State};
use crate::BoxError;
use crate::panic::log;

/// A short text response for the host's own errors: `502 Bad Gateway` and so on; a 503
/// (the host is busy or shutting down) comes with `Retry-After: 1`.
pub(crate) fn error_response(status: StatusCode) -> Response<ResponseBody> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

/// How much is read from a program's standard output at a time: the first read is small
/// (most CGI responses are), and each read that fills its buffer doubles the next. A read
/// that fills the pipe's default capacity means the program writes faster than the body
/// is read: its pipe is grown ([`process::grow_pipe`]) and reads go on doubling.
const FIRST_READ: usize = 8 * 1024;
/// A quarter of a grown pipe: larger reads bought no more throughput, only memory.
const MAX_READ: usize = 256 * 1024;

/// The body of a response from [`CgiProgram`](super::CgiProgram) or
/// [`CgiBin`](super::CgiBin): the program's output after its head, streamed as it is
/// written, or a short text for the host's own error responses.
///
/// Dropping the body before its end (the client went away) kills the program
/// (RFC 3875 §3.4). When the program's time limit expires mid-body (or it is killed for
/// another reason: a stalled request body, a shutdown), or when it ends before the
/// `Content-Length` it declared, the body ends with an error, so the server aborts the
/// response instead of passing a truncated body off as whole. Output past a declared
/// `Content-Length` is not sent. Once the program has exited, the body ends with what it
/// wrote, even if members of its process group still hold its standard output.
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    Full(Option<Bytes>),
    Stream(Box<Stream>),
    Boxed(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + 'static>>),
}

struct Stream {
    first: Option<Bytes>,
    /// Taken when the body is cut at its `Content-Length`.
    stdout: Option<Output<ChildStdout>>,
    buf: BytesMut,
    read_size: usize,
    deadline: Option<Pin<Box<Sleep>>>,
    kill: Option<KillSwitch>,
    state: State,
    /// What is left to send of a declared `Content-Length`.
    remaining: Option<u64>,
    done: bool,
}

/// What the body of a program's response is made of.
pub(crate) struct Source {
    /// Output read with the head.
    pub(crate) first: Bytes,
    pub(crate) stdout: Output<ChildStdout>,
    pub(crate) deadline: Option<tokio::time::Instant>,
    pub(crate) kill: KillSwitch,
    pub(crate) state: State,
    /// The program's `Content-Length`, if it declared one.
    pub(crate) content_length: Option<u64>,
}

impl ResponseBody {
    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            inner: Inner::Full(None),
        }
    }

    /// A body of one chunk.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ResponseBody {
            inner: Inner::Full(Some(data).filter(|d| !d.is_empty())),
        }
    }

    /// Any other body, boxed (the response of a local-redirect service).
    pub(crate) fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        struct MapErr<B>(B);
        impl<B> Body for MapErr<B>
        where
            B: Body<Data = Bytes> + Unpin,
            B::Error: Into<BoxError>,
        {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Pin::new(&mut self.0).poll_frame(cx).map_err(Into::into)
            }
            fn is_end_stream(&self) -> bool {
                self.0.is_end_stream()
            }
            fn size_hint(&self) -> SizeHint {
                self.0.size_hint()
            }
        }
        ResponseBody {
            inner: Inner::Boxed(Box::pin(MapErr(Box::pin(body)))),
        }
    }

    /// The program's output: what was read with the head, then the rest of its standard
    /// output.
    pub(crate) fn stream(source: Source) -> Self {
        let mut stream = Stream {
            first: None,
            stdout: Some(source.stdout),
            buf: BytesMut::new(),
            read_size: FIRST_READ,
            deadline: source
                .deadline
                .map(|d| Box::pin(tokio::time::sleep_until(d))),
            kill: Some(source.kill),
            state: source.state,
            remaining: source.content_length,
            done: false,
        };
        if !source.first.is_empty() || stream.remaining == Some(0) {
            stream.first = Some(stream.take(source.first)).filter(|f| !f.is_empty());
        }
        ResponseBody {
            inner: Inner::Stream(Box::new(stream)),
        }
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        ResponseBody::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Full(_) => "Full",
            Inner::Stream(_) => "Stream",
            Inner::Boxed(_) => "Boxed",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            Inner::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inner::Boxed(body) => body.as_mut().poll_frame(cx),
            Inner::Stream(stream) => stream.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(data) => data.is_none(),
            Inner::Boxed(body) => body.is_end_stream(),
            Inner::Stream(stream) => stream.done && stream.first.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Boxed(body) => body.size_hint(),
            Inner::Stream(stream) => match (&stream.first, stream.remaining) {
                (None, _) if stream.done => SizeHint::with_exact(0),
                (first, Some(remaining)) => {
                    SizeHint::with_exact(remaining + first.as_ref().map_or(0, |f| f.len() as u64))
                }
                (first, None) => {
                    let mut hint = SizeHint::new();
                    hint.set_lower(first.as_ref().map_or(0, |f| f.len() as u64));
                    hint
                }
            },
        }
    }
}

impl Stream {
    /// `data` cut at the declared length; once the length is reached the rest of the
    /// output is discarded on a task of its own (the program exits by itself) and the
    /// body ends.
    fn take(&mut self, mut data: Bytes) -> Bytes {
        if let Some(remaining) = &mut self.remaining {
            if data.len() as u64 >= *remaining {
                data.truncate(*remaining as usize);
                if let (Some(stdout), Some(kill)) = (self.stdout.take(), self.kill.take()) {
                    process::spawn_discard(stdout, kill);
                }
                self.done = true;
            }
            *remaining -= data.len() as u64;
        }
        data
    }

    /// The end of the output: whole, or an error.
    fn end(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        self.done = true;
        let killed = match self.state.get() {
            Ending::Natural => None,
            Ending::Timeout => Some("its time limit expired"),
            Ending::Stalled => Some("the request body stalled"),
            Ending::Shutdown => Some("the host shut down"),
            Ending::Abandoned => Some("its response was abandoned"),
        };
        if let Some(why) = killed.or_else(|| {
            self.deadline
                .as_ref()
                .filter(|d| d.is_elapsed())
                .map(|_| "its time limit expired")
        }) {
            return Some(Err(format!(
                "the CGI program was killed while its body was sent: {why}"
            )
            .into()));
        }
        if let Some(remaining) = self.remaining.filter(|&r| r > 0) {
            log(format_args!(
                "a CGI program's body ended {remaining} bytes short of its Content-Length"
            ));
            return Some(Err(format!(
                "the CGI program's body ended {remaining} bytes short of its Content-Length"
            )
            .into()));
        }
        let held = self.stdout.as_ref().is_some_and(Output::held);
        if let Some(kill) = &mut self.kill {
            if !held {
                kill.disarm();
            }
        }
        // Held by members of its group: the armed switch, dropped, ends them.
        self.kill.take();
        None
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            if !first.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(first))));
            }
        }
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = &mut self.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                self.done = true;
                return Poll::Ready(Some(Err(
                    "the CGI program's time limit expired while its body was sent".into(),
                )));
            }
        }
        let Some(stdout) = self.stdout.as_mut() else {
            self.done = true;
            return Poll::Ready(None);
        };
        if self.buf.len() < self.read_size {
            self.buf.resize(self.read_size, 0);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[..]);
        let result = ready!(Pin::new(&mut *stdout).poll_read(cx, &mut read_buf));
        let n = read_buf.filled().len();
        match result {
            Ok(()) if n == 0 => Poll::Ready(self.end()),
            Ok(()) => {
                if n == self.buf.len() {
                    if n == process::DEFAULT_PIPE_SIZE {
                        process::grow_pipe(stdout.pipe());
                    }
                    self.read_size = (self.read_size * 2).min(MAX_READ);
                }
                let data = self.buf.split_to(n).freeze();
                let data = self.take(data);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(error) => {
                self.done = true;
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }
}

use std::future::Future as _;
