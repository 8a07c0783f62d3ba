//! [`WsgiBody`]: the chunks of a WSGI app's result.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pyo3::Py;
use pyo3::types::PyAny;

use super::app::close_on;
use super::pool::Pool;
use crate::BoxError;
use crate::gateway::{BlockingBody, FileWrapper};

/// The body of a [`WsgiApp`](super::WsgiApp): the chunks of the app's result iterable, as the
/// Python thread produces them (a bounded channel: a slow client slows the app), or a file
/// that a `wsgi.file_wrapper` result wrapped, read by Rust.
///
/// Dropping it ends the response: the app's result is closed (`close()`) on a Python
/// thread, also when the client went away.
pub struct WsgiBody {
    kind: Kind,
    // Held for its `Drop`: closes the result when the body goes.
    _closer: Option<Closer>,
}

enum Kind {
    Stream(BlockingBody),
    File(FileWrapper),
}

impl fmt::Debug for WsgiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Stream(_) => "stream",
            Kind::File(_) => "file",
        };
        f.debug_struct("WsgiBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl WsgiBody {
    pub(crate) fn stream(body: BlockingBody) -> Self {
        WsgiBody {
            kind: Kind::Stream(body),
            _closer: None,
        }
    }

    pub(crate) fn file(file: FileWrapper, closer: Closer) -> Self {
        WsgiBody {
            kind: Kind::File(file),
            _closer: Some(closer),
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
        match &mut self.get_mut().kind {
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
            Kind::File(file) => Pin::new(file).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream(body) => body.is_end_stream(),
            Kind::File(file) => file.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream(body) => body.size_hint(),
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
