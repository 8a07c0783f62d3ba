//! [`ResponseBody`]: the body of a response from the CGI host.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::ChildStdout;
use tokio::time::Sleep;

use super::process::{self, KillSwitch};
use crate::BoxError;

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
/// (RFC 3875 §3.4). When the program's time limit expires mid-body, the body ends with an
/// error, so the server aborts the response instead of passing a truncated body off as whole.
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
    stdout: ChildStdout,
    buf: BytesMut,
    read_size: usize,
    deadline: Option<Pin<Box<Sleep>>>,
    kill: KillSwitch,
    done: bool,
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

    /// The program's output: `first` (read with the head), then the rest of `stdout`.
    pub(crate) fn stream(
        first: Bytes,
        stdout: ChildStdout,
        deadline: Option<tokio::time::Instant>,
        kill: KillSwitch,
    ) -> Self {
        ResponseBody {
            inner: Inner::Stream(Box::new(Stream {
                first: Some(first).filter(|f| !f.is_empty()),
                stdout,
                buf: BytesMut::new(),
                read_size: FIRST_READ,
                deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                kill,
                done: false,
            })),
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
            Inner::Stream(stream) => stream.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Boxed(body) => body.size_hint(),
            Inner::Stream(stream) if stream.done => SizeHint::with_exact(0),
            Inner::Stream(_) => SizeHint::default(),
        }
    }
}

impl Stream {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
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
        if self.buf.len() < self.read_size {
            self.buf.resize(self.read_size, 0);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[..]);
        let result = ready!(Pin::new(&mut self.stdout).poll_read(cx, &mut read_buf));
        let n = read_buf.filled().len();
        match result {
            Ok(()) if n == 0 => {
                self.done = true;
                if self.deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
                    // Killed at the deadline: not a complete body.
                    return Poll::Ready(Some(Err(
                        "the CGI program's time limit expired while its body was sent".into(),
                    )));
                }
                self.kill.disarm();
                Poll::Ready(None)
            }
            Ok(()) => {
                if n == self.buf.len() {
                    if n == process::DEFAULT_PIPE_SIZE {
                        process::grow_pipe(&self.stdout);
                    }
                    self.read_size = (self.read_size * 2).min(MAX_READ);
                }
                Poll::Ready(Some(Ok(Frame::data(self.buf.split_to(n).freeze()))))
            }
            Err(error) => {
                self.done = true;
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }
}

use std::future::Future as _;
