//! Panics turned into errors, and the crate's log line.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind as catch};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use http_body::{Body, Frame};

use crate::BoxError;

/// Runs `future`, turning a panic while it is polled into an error.
pub(crate) async fn catch_unwind<F: Future>(future: F) -> Result<F::Output, BoxError> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_error(panic))),
        },
    )
    .await
}

/// The error for a caught panic: `panic: MESSAGE`.
pub(crate) fn panic_error(panic: Box<dyn Any + Send>) -> BoxError {
    let message = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    };
    format!("panic: {message}").into()
}

/// Polls the next frame of `body`, turning its error into a [`BoxError`] and a panic into
/// one too.
pub(crate) fn poll_frame<B>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<B::Data>, BoxError>>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match catch(AssertUnwindSafe(|| body.poll_frame(cx))) {
        Ok(Poll::Ready(Some(Err(e)))) => Poll::Ready(Some(Err(e.into()))),
        Ok(Poll::Ready(Some(Ok(frame)))) => Poll::Ready(Some(Ok(frame))),
        Ok(Poll::Ready(None)) => Poll::Ready(None),
        Ok(Poll::Pending) => Poll::Pending,
        Err(panic) => Poll::Ready(Some(Err(panic_error(panic)))),
    }
}

/// Logs one error line: to `tracing` when a subscriber is installed, else to standard error
/// (which web servers write to their error log), prefixed `towergate: `.
pub(crate) fn log(message: fmt::Arguments<'_>) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        let _ = writeln!(std::io::stderr(), "towergate: {message}");
    }
}
