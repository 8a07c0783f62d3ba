//! App bodies: [`AppBody`], [`Chunks`], [`FileWrapper`] and the blocking app's channel.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::start_response::Msg;
use crate::BoxError;
use crate::body::IntoBytes;
use crate::environ::{FileSlot, block_on, block_on_until};

/// The body of a gateway app: a sequence of chunks (PEP 3333: "an iterable yielding zero or
/// more bytestrings").
///
/// One type for every kind of body, so an app that answers different requests differently
/// returns one type: empty, one chunk, a list of [`Chunks`], a [`FileWrapper`], or any
/// [`http_body::Body`] (boxed). A stream of chunks that are not yet known is any `Body`,
/// for instance `http_body_util::StreamBody`.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body;
/// use towergate::gateway::AppBody;
///
/// assert_eq!(AppBody::from("Hello").size_hint().exact(), Some(5));
/// assert_eq!(AppBody::empty().size_hint().exact(), Some(0));
/// // Several chunks: the length is not announced (like `len(result) != 1` in wsgiref).
/// let body = AppBody::chunks([Bytes::from("ab"), Bytes::from("cd")]);
/// assert_eq!(body.size_hint().exact(), None);
/// ```
pub struct AppBody {
    kind: Kind,
}

enum Kind {
    One(Option<Bytes>),
    Chunks(Chunks),
    File(FileWrapper),
    Boxed(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl fmt::Debug for AppBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::One(c) => f.debug_tuple("AppBody").field(c).finish(),
            Kind::Chunks(c) => f.debug_tuple("AppBody").field(c).finish(),
            Kind::File(file) => f.debug_tuple("AppBody").field(file).finish(),
            Kind::Boxed(_) => f.debug_tuple("AppBody").field(&"Body").finish(),
        }
    }
}

impl Default for AppBody {
    fn default() -> Self {
        AppBody::empty()
    }
}

impl AppBody {
    /// A body with no chunks (`[]`).
    pub fn empty() -> Self {
        AppBody {
            kind: Kind::One(None),
        }
    }

    /// A body of the given chunks, sent as they are.
    pub fn chunks<I>(chunks: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        AppBody::from(Chunks::new(chunks))
    }

    /// Any body (boxed). Its `size_hint` and `is_end_stream` are forwarded, so a body that
    /// knows its exact length gets a `Content-Length`.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        AppBody {
            kind: Kind::Boxed(Box::pin(IntoBytes::new(body))),
        }
    }
}

impl From<Chunks> for AppBody {
    fn from(chunks: Chunks) -> Self {
        AppBody {
            kind: Kind::Chunks(chunks),
        }
    }
}

impl From<FileWrapper> for AppBody {
    fn from(file: FileWrapper) -> Self {
        AppBody {
            kind: Kind::File(file),
        }
    }
}

impl From<Bytes> for AppBody {
    fn from(chunk: Bytes) -> Self {
        AppBody {
            kind: Kind::One(Some(chunk)),
        }
    }
}

impl From<&'static str> for AppBody {
    fn from(chunk: &'static str) -> Self {
        AppBody::from(Bytes::from_static(chunk.as_bytes()))
    }
}

impl From<&'static [u8]> for AppBody {
    fn from(chunk: &'static [u8]) -> Self {
        AppBody::from(Bytes::from_static(chunk))
    }
}

impl From<String> for AppBody {
    fn from(chunk: String) -> Self {
        AppBody::from(Bytes::from(chunk))
    }
}

impl From<Vec<u8>> for AppBody {
    fn from(chunk: Vec<u8>) -> Self {
        AppBody::from(Bytes::from(chunk))
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::One(c) => Poll::Ready(c.take().map(|c| Ok(Frame::data(c)))),
            Kind::Chunks(c) => Pin::new(c).poll_frame(cx).map_err(|e| match e {}),
            Kind::File(f) => Pin::new(f).poll_frame(cx).map_err(Into::into),
            Kind::Boxed(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::One(c) => c.is_none(),
            Kind::Chunks(c) => c.is_end_stream(),
            Kind::File(f) => f.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::One(c) => SizeHint::with_exact(c.as_ref().map_or(0, |c| c.len() as u64)),
            Kind::Chunks(c) => c.size_hint(),
            Kind::File(f) => f.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

/// A list of chunks, sent one by one (a Python list as the app's result).
///
/// Its length is exact, so announced as `Content-Length`, only when it holds at most one
/// chunk: wsgiref's rule (`len(result) == 1`), which keeps a deliberately chunked answer
/// streamed.
///
/// ```
/// use http_body::Body;
/// use towergate::gateway::Chunks;
///
/// assert_eq!(Chunks::new(["hello"]).size_hint().exact(), Some(5));
/// assert_eq!(Chunks::new(["ab", "cd"]).size_hint().lower(), 4);
/// assert_eq!(Chunks::new(["ab", "cd"]).size_hint().exact(), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    exact: bool,
}

impl Chunks {
    /// The chunks, in order.
    pub fn new<I>(chunks: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let chunks: VecDeque<Bytes> = chunks.into_iter().map(Into::into).collect();
        Chunks {
            remaining: chunks.iter().map(|c| c.len() as u64).sum(),
            exact: chunks.len() <= 1,
            chunks,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        Poll::Ready(this.chunks.pop_front().map(|chunk| {
            this.remaining -= chunk.len() as u64;
            Ok(Frame::data(chunk))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact || self.chunks.is_empty() {
            SizeHint::with_exact(self.remaining)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(self.remaining);
            hint
        }
    }
}

/// A file as a body (`wsgi.file_wrapper`, PEP 3333 "Optional Platform-Specific File
/// Handling"): the file from its current position to its end, in blocks.
///
/// Its length is known, so a handler announces it as `Content-Length`, and a handler whose
/// environ says [`file_wrapper`](crate::Environ::file_wrapper) hands the file to its
/// transport whole ([`Transport::send_file`](crate::handler::Transport::send_file): on Linux
/// a CGI program's output then goes out with `sendfile`/`splice`). Elsewhere it is read a
/// block at a time; reads block the thread briefly, as reads of a regular file do.
///
/// ```
/// use http_body::Body;
/// use towergate::gateway::FileWrapper;
///
/// let path = std::env::temp_dir().join(format!("towergate-doc-{}", std::process::id()));
/// std::fs::write(&path, "0123456789").unwrap();
/// let file = FileWrapper::new(std::fs::File::open(&path).unwrap()).unwrap().block_size(4);
/// assert_eq!(file.size_hint().exact(), Some(10));
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct FileWrapper {
    file: Option<File>,
    remaining: u64,
    block_size: usize,
    /// Where the file goes whole, for a server that sends files itself.
    slot: Option<FileSlot>,
}

impl FileWrapper {
    /// Wraps `file`, from its current position to its end. Fails when the file's length or
    /// position cannot be read.
    pub fn new(mut file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let position = file.stream_position()?;
        Ok(FileWrapper {
            file: Some(file),
            remaining: len.saturating_sub(position),
            block_size: 8192,
            slot: None,
        })
    }

    /// Hands the file to `slot` on the first poll instead of reading it.
    pub(crate) fn with_slot(mut self, slot: FileSlot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// How much is read at a time (`block_size`). Defaults to 8192 bytes, wsgiref's.
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes.max(1);
        self
    }

    /// How many bytes are left to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn read_block(&mut self) -> Option<io::Result<Bytes>> {
        let file = self.file.as_mut()?;
        if self.remaining == 0 {
            self.file = None;
            return None;
        }
        let want = (self.remaining).min(self.block_size as u64) as usize;
        let mut buf = vec![0; want];
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    self.file = None;
                    let missing = self.remaining;
                    return Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended {missing} bytes early"),
                    )));
                }
                Ok(n) => {
                    buf.truncate(n);
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.file = None;
                    }
                    return Some(Ok(buf.into()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.file = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Body for FileWrapper {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(slot) = this.slot.take() {
            if let Some(file) = this.file.take() {
                slot.put(file, std::mem::take(&mut this.remaining));
                return Poll::Ready(None);
            }
        }
        Poll::Ready(this.read_block().map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.file.is_none() || self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// How many chunks a blocking app may have in flight towards the client.
const CHANNEL_CAPACITY: usize = 2;

/// The default of [`BlockingAppFn::send_timeout`](super::BlockingAppFn::send_timeout) and
/// of [`python::Builder::send_timeout`](crate::python::Builder::send_timeout): 60 seconds.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking app's channel: the [`Sink`] its thread sends chunks and `write()` output
/// to, and the [`BlockingBody`] that gives them out; a wait for room in it lasts at most
/// `send_timeout`.
pub(crate) fn channel(send_timeout: Duration) -> (Sink, BlockingBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stalled = Arc::new(AtomicBool::new(false));
    let sink = Sink {
        tx,
        timeout: send_timeout,
        stalled: stalled.clone(),
    };
    let body = BlockingBody {
        rx,
        done: false,
        stalled,
        send_timeout,
    };
    (sink, body)
}

/// Where a blocking app's thread sends its output: chunks, `write()` output, the error that
/// ended the app. A send waits while the channel is full (the client is slow: backpressure),
/// but at most the send timeout: past it the client is taken to have stopped reading,
/// nothing more is sent, and the body fails once it has given out what was sent (the
/// response is cut, not ended as if complete). Without the limit a client that stops
/// reading would keep the thread for as long as its connection lives.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
    timeout: Duration,
    stalled: Arc<AtomicBool>,
}

/// Why a response whose output waited `send_timeout` for the client is cut: the body's
/// error, and the line its app's thread logs.
pub(crate) fn stalled(send_timeout: Duration) -> String {
    format!("the client took no output for {send_timeout:?}: the response is cut")
}

/// Why a [`Sink`] did not send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsent {
    /// The channel is full ([`Sink::try_send`] only).
    Full,
    /// The body is gone: the client went away, or the response ended.
    Gone,
    /// The client took nothing for the send timeout (now, or at an earlier send).
    Stalled,
}

impl Sink {
    /// How long a send waits for room.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the body is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether a send gave up waiting for room.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Sends `msg` if there is room now, or gives it back.
    pub(crate) fn try_send(&self, msg: Msg) -> Result<(), (Unsent, Msg)> {
        if self.is_stalled() {
            return Err((Unsent::Stalled, msg));
        }
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(msg) => (Unsent::Full, msg),
            mpsc::error::TrySendError::Closed(msg) => (Unsent::Gone, msg),
        })
    }

    /// Sends `msg`, blocking the thread while the channel is full, at most the send
    /// timeout; or gives it back.
    pub(crate) fn send(&self, msg: Msg) -> Result<(), (Unsent, Msg)> {
        match self.try_send(msg) {
            Err((Unsent::Full, msg)) => self.wait_send(msg),
            sent => sent,
        }
    }

    /// [`send`](Self::send) past a full channel: waits for room.
    pub(crate) fn wait_send(&self, msg: Msg) -> Result<(), (Unsent, Msg)> {
        let reserve = self.tx.reserve();
        // A timeout too large for the clock waits as long as it takes.
        let reserved = match Instant::now().checked_add(self.timeout) {
            Some(deadline) => block_on_until(reserve, deadline),
            None => Some(block_on(reserve)),
        };
        match reserved {
            Some(Ok(permit)) => {
                permit.send(msg);
                Ok(())
            }
            Some(Err(_)) => Err((Unsent::Gone, msg)),
            None => {
                self.stalled.store(true, Ordering::Release);
                Err((Unsent::Stalled, msg))
            }
        }
    }
}

/// The body of a blocking app: chunks from the app's thread, through a bounded channel.
///
/// Dropping it (the response finished, failed, or the client went away) makes the app's
/// next `write` or chunk fail, so its thread stops and drops the app's iterator. When the
/// thread gave up sending because the client took nothing for the send timeout, the body
/// fails after the chunks that were sent.
pub struct BlockingBody {
    rx: mpsc::Receiver<Msg>,
    done: bool,
    /// The app's thread gave up sending (see [`Sink`]).
    stalled: Arc<AtomicBool>,
    send_timeout: Duration,
}

impl fmt::Debug for BlockingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Body for BlockingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                if self.stalled.load(Ordering::Acquire) {
                    return Poll::Ready(Some(Err(stalled(self.send_timeout).into())));
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok((chunk, last)))) => {
                self.done = last;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn file_wrapper_reads_from_the_current_position() {
        let path = std::env::temp_dir().join(format!("towergate-fw-{}", std::process::id()));
        std::fs::write(&path, "0123456789").unwrap();
        let mut file = File::open(&path).unwrap();
        file.seek(io::SeekFrom::Start(3)).unwrap();
        let body = FileWrapper::new(file).unwrap().block_size(4);
        assert_eq!(body.size_hint().exact(), Some(7));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "3456789");
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_send_that_waits_past_the_timeout_stalls_the_sink_and_cuts_the_body() {
        let (sink, body) = channel(Duration::from_millis(20));
        let chunk = |s: &'static str| Ok((Bytes::from(s), false));
        let (a, b, c) = tokio::task::spawn_blocking(move || {
            let a = sink.send(chunk("a")).map_err(|e| e.0);
            let b = sink.send(chunk("b")).map_err(|e| e.0);
            // Full: waits 20 ms, then gives up for good.
            let c = sink.send(chunk("c")).map_err(|e| e.0);
            assert!(sink.is_stalled());
            assert_eq!(
                sink.try_send(chunk("d")).map_err(|e| e.0),
                Err(Unsent::Stalled)
            );
            (a, b, c)
        })
        .await
        .unwrap();
        assert_eq!((a, b, c), (Ok(()), Ok(()), Err(Unsent::Stalled)));
        // What was sent comes out, then the error: not a clean end.
        let mut body = body;
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "b"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap_err().to_string(),
            "the client took no output for 20ms: the response is cut"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_send_timeout_too_large_for_the_clock_waits_for_room() {
        let (sink, mut body) = channel(Duration::MAX);
        let sender = std::thread::spawn(move || {
            for s in ["a", "b", "c"] {
                sink.send(Ok((Bytes::from(s), s == "c"))).map_err(|e| e.0)?;
            }
            Ok::<_, Unsent>(())
        });
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(sender.join().unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_send_to_a_dropped_body_gives_the_message_back() {
        let (sink, body) = channel(DEFAULT_SEND_TIMEOUT);
        drop(body);
        assert!(sink.is_closed());
        let (unsent, msg) = sink.send(Ok((Bytes::from("a"), true))).unwrap_err();
        assert_eq!(unsent, Unsent::Gone);
        assert_eq!(msg.unwrap().0, "a");
    }

    #[tokio::test]
    async fn one_chunk_has_an_exact_length_and_two_do_not() {
        let one = AppBody::chunks(["abc"]);
        assert_eq!(one.size_hint().exact(), Some(3));
        let two = AppBody::chunks(["ab", "cd"]);
        assert_eq!(two.size_hint().exact(), None);
        assert_eq!(two.collect().await.unwrap().to_bytes(), "abcd");
    }
}
