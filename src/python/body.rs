//! [`WsgiBody`]: the chunks of a WSGI app's result.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pyo3::Py;
use pyo3::types::PyAny;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::app::close_on;
use super::pool::Pool;
use crate::BoxError;
use crate::environ::Input;
use crate::error_response::{BodyStalled, TimedOut};
use crate::gateway::{BlockingBody, FileWrapper};

/// The body of a [`WsgiApp`](super::WsgiApp): what the app's Python thread produces, in
/// order: `write()` output and the chunks of the result iterable, through a bounded channel
/// (a slow client slows the app, memory stays flat), or, when the result is a
/// `wsgi.file_wrapper` around a regular file, that file, read by Rust.
///
/// Dropping it ends the response: the app's result is closed (`close()`) on a Python
/// thread, also when the client went away.
///
/// While it waits for the app's next output it counts the app's time limit
/// ([`Builder::timeout`](super::Builder::timeout)); past it, it fails with
/// [`TimedOut`], or with [`BodyStalled`] when the app was waiting in a read of the request
/// body.
pub struct WsgiBody {
    kind: Kind,
    // Held for its `Drop`: closes the result when the body goes.
    _closer: Option<Closer>,
    limit: Option<Limit>,
}

/// The app's time limit without output, and its timer.
struct Limit {
    limit: Duration,
    /// Made at the first wait (a runtime with a time driver is then at hand); reset at
    /// each later one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer counts the current wait.
    armed: bool,
    /// The request body, and how much of it had come in when the timer was set: an app
    /// reading a body that is still arriving waits for its client, not the reverse.
    input: Input,
    received: u64,
}

impl Limit {
    /// Whether the current wait has lasted past the limit with no request body coming in
    /// (it starts now if it had not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if !self.armed {
                self.armed = true;
                self.received = self.input.received();
                let Some(deadline) = Instant::now().checked_add(self.limit) else {
                    return false;
                };
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
            let rang = self
                .timer
                .as_mut()
                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
            if !rang {
                return false;
            }
            if self.input.received() == self.received {
                return true;
            }
            // The body came in meanwhile: a new wait starts.
            self.armed = false;
        }
    }
}

enum Kind {
    /// The channel, and how the body ends once the channel is closed.
    Stream {
        chunks: BlockingBody,
        end: Option<oneshot::Receiver<End>>,
    },
    File(FileWrapper),
    /// Failed: nothing more comes.
    Ended,
}

/// What a Python thread sends before it closes the channel when the result is a
/// `wsgi.file_wrapper`: the file, served next, and what closes the result.
pub(crate) struct End(pub(crate) FileWrapper, pub(crate) Closer);

impl fmt::Debug for WsgiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Stream { .. } => "stream",
            Kind::File(_) => "file",
            Kind::Ended => "ended",
        };
        f.debug_struct("WsgiBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl WsgiBody {
    /// The body of the channel `chunks`, followed by what `end` may bring once the
    /// channel is closed; `limit` is the app's time limit without output, if any, with its
    /// request body.
    pub(crate) fn new(
        chunks: BlockingBody,
        end: oneshot::Receiver<End>,
        limit: Option<(Duration, Input)>,
    ) -> Self {
        WsgiBody {
            kind: Kind::Stream {
                chunks,
                end: Some(end),
            },
            _closer: None,
            limit: limit.map(|(limit, input)| Limit {
                limit,
                timer: None,
                armed: false,
                input,
                received: 0,
            }),
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
                Kind::Ended => return Poll::Ready(None),
                Kind::Stream { chunks, end } => (chunks, end),
            };
            let polled = Pin::new(chunks).poll_frame(cx);
            if let Some(limit) = &mut this.limit {
                if polled.is_ready() {
                    limit.armed = false;
                } else if limit.expired(cx) {
                    // The app waiting in a read of the body: the client's doing.
                    let error: BoxError = if limit.input.is_waiting() {
                        BodyStalled::new(limit.limit).into()
                    } else {
                        TimedOut::new(limit.limit).into()
                    };
                    // The channel is closed: the app's thread stops at its next output.
                    this.kind = Kind::Ended;
                    this.limit = None;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match ready!(polled) {
                // The thread sends its end before it closes the channel.
                None => match end.take().map(|mut rx| rx.try_recv()) {
                    Some(Ok(End(wrapper, closer))) => {
                        this.kind = Kind::File(wrapper);
                        this._closer = Some(closer);
                    }
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
            Kind::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream { chunks, .. } => chunks.size_hint(),
            Kind::File(file) => file.size_hint(),
            Kind::Ended => SizeHint::with_exact(0),
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
