//! The gateway streams of an environ: the request body as [`Input`] (`wsgi.input`) and the
//! error sink [`Errors`] (`wsgi.errors`), PEP 3333 "Input and Error Streams".

use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, Read};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Bytes, BytesMut};
use http_body::Body;

use crate::BoxError;
use crate::body::IntoBytes;

/// How much a reader-backed input reads at a time.
const READ_SIZE: usize = 64 * 1024;

/// The request body an app reads (`wsgi.input`, PEP 3333 "Input and Error Streams").
///
/// It ends at the end of the body, which a server makes exactly `CONTENT_LENGTH` bytes long
/// (RFC 3875 §4.2): reading past it returns empty bytes, never blocks. Clones share the same
/// stream, as in Python, where every reference to `wsgi.input` reads the same file. Async apps
/// use [`read`](Self::read), [`read_line`](Self::read_line) and
/// [`read_to_end`](Self::read_to_end); blocking apps (on a blocking thread) use the
/// `blocking_*` forms, which must not be called from an async task.
///
/// The default input is empty. [`AppService`](crate::service::AppService) closes a
/// request's input when the response is over: reads then fail rather than wait.
///
/// ```
/// use towergate::environ::Input;
///
/// let input = Input::from_reader(std::io::Cursor::new(&b"line 1\nline 2\nrest, ignored"[..]), 18);
/// assert_eq!(input.blocking_read_line(usize::MAX).unwrap(), "line 1\n");
/// assert_eq!(input.blocking_read(3).unwrap(), "lin");
/// assert_eq!(input.blocking_read_to_end().unwrap(), "e 2\nrest"); // CONTENT_LENGTH is 18
/// assert_eq!(input.blocking_read(10).unwrap(), ""); // end of input
/// ```
#[derive(Clone, Default)]
pub struct Input {
    inner: Option<Arc<Mutex<InputState>>>,
}

struct InputState {
    source: Source,
    buf: Bytes,
    /// How many bytes came from the source so far.
    received: u64,
    /// The reader waiting for the body's next bytes (woken when the input is closed).
    waiting: Option<Waker>,
}

enum Source {
    Body(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
    Reader {
        reader: Box<dyn Read + Send>,
        remaining: u64,
    },
    Done,
    /// Closed by the server before its end: the response is over.
    #[cfg(feature = "gateway")]
    Closed,
}

impl Input {
    /// An input with no bytes.
    pub fn empty() -> Self {
        Input::default()
    }

    /// The input of a request body (what `AppService` gives its app).
    pub fn new<B>(body: B) -> Self
    where
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Input::from_source(Source::Body(Box::pin(IntoBytes::new(body))))
    }

    /// Exactly `length` bytes of `reader` (what a CGI handler gives its app: standard input
    /// and `CONTENT_LENGTH`). Reads block the calling thread.
    pub fn from_reader(reader: impl Read + Send + 'static, length: u64) -> Self {
        if length == 0 {
            return Input::empty();
        }
        Input::from_source(Source::Reader {
            reader: Box::new(reader),
            remaining: length,
        })
    }

    /// An input holding `bytes`.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Input {
            inner: Some(Arc::new(Mutex::new(InputState {
                source: Source::Done,
                buf: bytes,
                received: 0,
                waiting: None,
            }))),
        }
    }

    fn from_source(source: Source) -> Self {
        Input {
            inner: Some(Arc::new(Mutex::new(InputState {
                source,
                buf: Bytes::new(),
                received: 0,
                waiting: None,
            }))),
        }
    }

    fn state(&self) -> Option<MutexGuard<'_, InputState>> {
        self.inner
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Polls for up to `max` bytes; empty bytes at the end of the input.
    pub fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<Result<Bytes, BoxError>> {
        let Some(mut state) = self.state() else {
            return Poll::Ready(Ok(Bytes::new()));
        };
        match state.poll_fill(cx) {
            Poll::Ready(Ok(())) => {
                let n = max.min(state.buf.len());
                Poll::Ready(Ok(state.buf.split_to(n)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// How many bytes of the request body have come in so far (read by the app or not).
    #[cfg(feature = "python")]
    pub(crate) fn received(&self) -> u64 {
        self.state().map_or(0, |state| state.received)
    }

    /// Whether a read is waiting for the body's next bytes right now.
    #[cfg(feature = "python")]
    pub(crate) fn is_waiting(&self) -> bool {
        self.state().is_some_and(|state| state.waiting.is_some())
    }

    /// Reads up to `max` bytes (`read(size)`); empty bytes at the end of the input.
    pub async fn read(&self, max: usize) -> Result<Bytes, BoxError> {
        poll_fn(|cx| self.poll_read(cx, max)).await
    }

    /// Reads one line, up to and including `\n`, or at most `max` bytes (`readline(size)`);
    /// empty bytes at the end of the input.
    pub async fn read_line(&self, max: usize) -> Result<Bytes, BoxError> {
        let mut line = BytesMut::new();
        poll_fn(|cx| {
            let Some(mut state) = self.state() else {
                return Poll::Ready(Ok(()));
            };
            loop {
                if line.len() >= max {
                    return Poll::Ready(Ok(()));
                }
                match state.poll_fill(cx) {
                    Poll::Ready(Ok(())) if state.buf.is_empty() => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) => {
                        let want = max - line.len();
                        let (n, done) = match state.buf.iter().position(|&b| b == b'\n') {
                            Some(i) if i < want => (i + 1, true),
                            _ => (want.min(state.buf.len()), false),
                        };
                        line.extend_from_slice(&state.buf.split_to(n));
                        if done {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await?;
        Ok(line.freeze())
    }

    /// Reads `max` bytes, fewer only at the end of the input: what a buffered file's
    /// `read(size)` does (Python's `io.BufferedReader`, the `wsgi.input` of wsgiref and
    /// gunicorn), so that an app may read `CONTENT_LENGTH` bytes in one call. A chunk that
    /// is all there is comes back as it is, not copied.
    pub(crate) async fn read_full(&self, max: usize) -> Result<Bytes, BoxError> {
        let first = self.read(max).await?;
        if first.len() == max || first.is_empty() || self.is_drained() {
            return Ok(first);
        }
        let mut all = BytesMut::from(first);
        while all.len() < max {
            let chunk = self.read(max - all.len()).await?;
            if chunk.is_empty() {
                break;
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// Reads the rest of the input (`read()` without a size).
    pub async fn read_to_end(&self) -> Result<Bytes, BoxError> {
        self.read_full(usize::MAX).await
    }

    /// Ends a body input that is not over yet, for a server whose response is over (sent,
    /// failed, or the client gone): the body is released, and reads from now on, the one
    /// waiting included, fail rather than wait for bytes a client may never send (a
    /// blocking app's thread would wait for good). Buffered bytes are dropped too.
    #[cfg(feature = "gateway")]
    pub(crate) fn close(&self) {
        let Some(mut state) = self.state() else {
            return;
        };
        if matches!(state.source, Source::Body(_)) {
            state.source = Source::Closed;
            state.buf = Bytes::new();
        }
        let waiting = state.waiting.take();
        drop(state);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    fn is_drained(&self) -> bool {
        self.state()
            .is_none_or(|s| s.buf.is_empty() && matches!(s.source, Source::Done))
    }

    /// [`read`](Self::read), blocking the calling thread.
    pub fn blocking_read(&self, max: usize) -> Result<Bytes, BoxError> {
        block_on(self.read(max))
    }

    /// [`read_line`](Self::read_line), blocking the calling thread.
    pub fn blocking_read_line(&self, max: usize) -> Result<Bytes, BoxError> {
        block_on(self.read_line(max))
    }

    /// [`read_to_end`](Self::read_to_end), blocking the calling thread.
    pub fn blocking_read_to_end(&self) -> Result<Bytes, BoxError> {
        block_on(self.read_to_end())
    }
}

impl InputState {
    /// Makes `buf` non-empty, unless the input is over; notes the reader while it waits.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let filled = self.fill(cx);
        if filled.is_ready() {
            self.waiting = None;
        } else if !self
            .waiting
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.waiting = Some(cx.waker().clone());
        }
        filled
    }

    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        while self.buf.is_empty() {
            match &mut self.source {
                Source::Done => return Poll::Ready(Ok(())),
                #[cfg(feature = "gateway")]
                Source::Closed => {
                    return Poll::Ready(Err(
                        "the response is over: the request body can no longer be read".into(),
                    ));
                }
                Source::Body(body) => match body.as_mut().poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => self.source = Source::Done,
                    Poll::Ready(Some(Err(e))) => {
                        self.source = Source::Done;
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            self.received += data.len() as u64;
                            self.buf = data;
                        }
                    }
                },
                Source::Reader { reader, remaining } => {
                    if *remaining == 0 {
                        self.source = Source::Done;
                        continue;
                    }
                    let want = (*remaining).min(READ_SIZE as u64) as usize;
                    let mut buf = vec![0; want];
                    match reader.read(&mut buf) {
                        Ok(0) => {
                            let missing = *remaining;
                            self.source = Source::Done;
                            return Poll::Ready(Err(format!(
                                "the request body ended {missing} bytes before CONTENT_LENGTH"
                            )
                            .into()));
                        }
                        Ok(n) => {
                            *remaining -= n as u64;
                            self.received += n as u64;
                            buf.truncate(n);
                            self.buf = buf.into();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            self.source = Source::Done;
                            return Poll::Ready(Err(e.into()));
                        }
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl PartialEq for Input {
    /// Two inputs are equal when they are the same stream (or both empty defaults).
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Input {}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("empty", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

/// The input is a body too: a tower service behind
/// [`ServiceApp`](crate::service::ServiceApp) reads it as its request body.
impl Body for Input {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.poll_read(cx, usize::MAX) {
            Poll::Ready(Ok(chunk)) if chunk.is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(chunk)) => Poll::Ready(Some(Ok(http_body::Frame::data(chunk)))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_drained()
    }
}

/// Where an app writes error output (`wsgi.errors`, PEP 3333 "Input and Error Streams").
///
/// The default sink logs each write as one line (to `tracing` when a subscriber is set,
/// else to standard error with a `towergate: ` prefix); [`Errors::new`] writes to any
/// [`io::Write`] instead (a CGI handler uses standard error, which the web server logs).
/// Clones share the sink.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use towergate::environ::Errors;
///
/// #[derive(Clone, Default)]
/// struct Shared(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Shared {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(b)
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let log = Shared::default();
/// let errors = Errors::new(log.clone());
/// errors.write("disk almost full\n");
/// errors.write_lines(["a\n", "b\n"]);
/// errors.flush();
/// assert_eq!(&*log.0.lock().unwrap(), b"disk almost full\na\nb\n");
/// ```
#[derive(Clone, Default)]
pub struct Errors {
    sink: Option<Arc<Mutex<Box<dyn io::Write + Send>>>>,
}

impl Errors {
    /// Errors written to `sink`.
    pub fn new(sink: impl io::Write + Send + 'static) -> Self {
        Errors {
            sink: Some(Arc::new(Mutex::new(Box::new(sink)))),
        }
    }

    /// Errors logged as lines (the default).
    pub fn log() -> Self {
        Errors::default()
    }

    /// Writes `text` (`write(str)`). Failures to write error output are ignored.
    pub fn write(&self, text: impl AsRef<[u8]>) {
        let text = text.as_ref();
        match &self.sink {
            Some(sink) => {
                let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                let _ = sink.write_all(text);
            }
            None => {
                let text = String::from_utf8_lossy(text);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                if !text.is_empty() {
                    crate::panic::log(format_args!("{text}"));
                }
            }
        }
    }

    /// Writes each of `lines` (`writelines(seq)`).
    pub fn write_lines<I>(&self, lines: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for line in lines {
            self.write(line);
        }
    }

    /// Flushes the sink (`flush()`).
    pub fn flush(&self) {
        if let Some(sink) = &self.sink {
            let _ = sink.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
    }
}

impl PartialEq for Errors {
    /// Two sinks are equal when they are the same sink (or both the default log).
    fn eq(&self, other: &Self) -> bool {
        match (&self.sink, &other.sink) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Errors {}

impl fmt::Debug for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Errors")
            .field("log", &self.sink.is_none())
            .finish_non_exhaustive()
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling thread, parking it while the future waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    loop {
        // A day at a time: `Instant` has no "never".
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(86_400);
        if let Some(output) = block_on_until(future.as_mut(), deadline) {
            return output;
        }
    }
}

/// [`block_on`] until `deadline`: `None` when the future is still pending then (it is
/// dropped).
pub(crate) fn block_on_until<F: Future>(
    future: F,
    deadline: std::time::Instant,
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "gateway")]
    #[test]
    fn closing_the_input_ends_the_read_that_waits_and_every_later_one() {
        use futures_util::StreamExt;
        // One chunk, then nothing, and no end: a client that stopped sending.
        let frames = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            http_body::Frame::data(Bytes::from("abc")),
        )])
        .chain(futures_util::stream::pending());
        let input = Input::new(http_body_util::StreamBody::new(frames));
        assert_eq!(input.blocking_read(10).unwrap(), "abc");
        let reader = {
            let input = input.clone();
            std::thread::spawn(move || input.blocking_read(10))
        };
        // Closed while the reader waits (or before it starts: either way it fails).
        std::thread::sleep(std::time::Duration::from_millis(50));
        input.close();
        let over = "the response is over: the request body can no longer be read";
        assert_eq!(reader.join().unwrap().unwrap_err().to_string(), over);
        assert_eq!(input.blocking_read(10).unwrap_err().to_string(), over);
        assert!(!input.is_end_stream());
        // An input that has ended stays ended: closing it changes nothing.
        let done = Input::from_bytes("xyz");
        done.close();
        assert_eq!(done.blocking_read_to_end().unwrap(), "xyz");
    }

    #[test]
    fn body_input_reads_lines_across_frames() {
        let body = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from("ab\ncd"))),
            Ok(http_body::Frame::data(Bytes::from("ef\n"))),
        ]));
        let input = Input::new(body);
        assert_eq!(input.blocking_read_line(100).unwrap(), "ab\n");
        assert_eq!(input.blocking_read_line(100).unwrap(), "cdef\n");
        assert_eq!(input.blocking_read_line(100).unwrap(), "");
    }

    #[test]
    fn read_line_stops_at_the_size() {
        let input = Input::from_bytes("abcdef\n");
        assert_eq!(input.blocking_read_line(4).unwrap(), "abcd");
        assert_eq!(input.blocking_read_line(4).unwrap(), "ef\n");
    }

    #[test]
    fn short_reader_is_an_error() {
        let input = Input::from_reader(io::Cursor::new(&b"abc"[..]), 5);
        assert_eq!(input.blocking_read(10).unwrap(), "abc");
        let err = input.blocking_read(10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the request body ended 2 bytes before CONTENT_LENGTH"
        );
    }

    #[test]
    fn clones_share_the_stream_and_compare_equal() {
        let input = Input::from_bytes("abc");
        let clone = input.clone();
        assert_eq!(input, clone);
        assert_ne!(input, Input::from_bytes("abc"));
        assert_eq!(clone.blocking_read(1).unwrap(), "a");
        assert_eq!(input.blocking_read_to_end().unwrap(), "bc");
    }
}
