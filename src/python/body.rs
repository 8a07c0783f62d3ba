//! [`WsgiBody`]: the chunks of a WSGI app's result.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pyo3::Py;
use pyo3::types::PyAny;
use tokio::sync::oneshot;

use super::app::close_on;
use super::pool::Pool;
use crate::BoxError;
use crate::gateway::{BlockingBody, FileWrapper};

/// The body of a [`WsgiApp`](super::WsgiApp): what the app's Python thread produces, in
/// order: `write()` output and the chunks of the result iterable, through a bounded channel
/// (a slow client slows the app, memory stays flat), or, when the result is a
/// `wsgi.file_wrapper` around a regular file, that file, read by Rust.
///
/// Dropping it ends the response: the app's result is closed (`close()`) on a Python
/// thread, also when the client went away.
pub struct WsgiBody {
    kind: Kind,
    // Held for its `Drop`: closes the result when the body goes.
    _closer: Option<Closer>,
}

enum Kind {
    /// The channel, and how the body ends once the channel is closed.
    Stream {
        chunks: BlockingBody,
        end: Option<oneshot::Receiver<End>>,
    },
    File(FileWrapper),
}

/// What a Python thread sends once it closes the channel, when the body does not just end
/// there.
pub(crate) enum End {
    /// A `wsgi.file_wrapper` result, and what closes it: served next.
    File(FileWrapper, Closer),
    /// The thread gave up with the channel full (the client stopped reading): the body
    /// fails with this error.
    Failed(BoxError),
}

impl fmt::Debug for WsgiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Stream { .. } => "stream",
            Kind::File(_) => "file",
        };
        f.debug_struct("WsgiBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl WsgiBody {
    /// The body of the channel `chunks`, followed by what `end` may bring once the
    /// channel is closed.
    pub(crate) fn new(chunks: BlockingBody, end: oneshot::Receiver<End>) -> Self {
        WsgiBody {
            kind: Kind::Stream {
                chunks,
                end: Some(end),
            },
            _closer: None,
        }
    }
}

impl Body for WsgiBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let (chunks, end) = match &mut this.kind {
                Kind::File(file) => return Pin::new(file).poll_frame(cx).map_err(Into::into),
                Kind::Stream { chunks, end } => (chunks, end),
            };
            match ready!(Pin::new(chunks).poll_frame(cx)) {
                // The thread sends its end before it closes the channel.
                None => match end.take().map(|mut rx| rx.try_recv()) {
                    Some(Ok(End::File(wrapper, closer))) => {
                        this.kind = Kind::File(wrapper);
                        this._closer = Some(closer);
                    }
                    Some(Ok(End::Failed(error))) => return Poll::Ready(Some(Err(error))),
                    _ => return Poll::Ready(None),
                },
                frame => return Poll::Ready(frame),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream { chunks, .. } => chunks.is_end_stream(),
            Kind::File(file) => file.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream { chunks, .. } => chunks.size_hint(),
            Kind::File(file) => file.size_hint(),
        }
    }
}

/// Calls the result's `close()` on a Python thread when dropped.
pub(crate) struct Closer {
    result: Option<Py<PyAny>>,
    pool: Pool,
}

impl Closer {
    pub(crate) fn new(result: Py<PyAny>, pool: Pool) -> Self {
        Closer {
            result: Some(result),
            pool,
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(result) = self.result.take() {
            close_on(&self.pool, result);
        }
    }
}
