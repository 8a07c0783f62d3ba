//! The engine every transport shares: waits for the head, then hands out chunks.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Body;

use crate::BoxError;
use crate::gateway::{ContractError, Shared, State};
use crate::headers::status_forbids_body;
use crate::panic::poll_frame;

/// The head of a response, ready to send, and its first chunk.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) reason: Option<Bytes>,
    pub(crate) headers: HeaderMap,
    pub(crate) first: Option<Bytes>,
    /// The status forbids a body (1xx, 204, 304): none is sent.
    pub(crate) no_body: bool,
}

pin_project_lite::pin_project! {
    /// An app's body and its shared state, driven to the head and then chunk by chunk.
    pub(crate) struct Exchange<B> {
        #[pin]
        body: B,
        shared: Arc<Shared>,
        queued: VecDeque<Bytes>,
        used_write: bool,
    }
}

impl<B> Exchange<B>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    pub(crate) fn new(body: B, shared: Arc<Shared>) -> Self {
        Exchange {
            body,
            shared,
            queued: VecDeque::new(),
            used_write: false,
        }
    }

    /// Polls until the head can be sent: the first non-empty chunk, the end of the body, or
    /// a status that forbids a body. An error here is an error before the head.
    pub(crate) fn poll_head(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ResponseHead, BoxError>> {
        let mut this = self.project();
        loop {
            {
                let mut state = this.shared.lock();
                if let Some(message) = state.poison.clone() {
                    return Poll::Ready(Err(ContractError::new(message).into()));
                }
                if !state.queue.is_empty() {
                    *this.used_write = true;
                    this.queued.extend(state.queue.drain(..));
                }
                let forbids = state
                    .head
                    .as_ref()
                    .is_some_and(|h| status_forbids_body(h.status));
                if forbids && this.queued.is_empty() {
                    return Poll::Ready(finish(state, None, None, false));
                }
                if let Some(first) = this.queued.pop_front() {
                    return Poll::Ready(finish(state, Some(first), None, true));
                }
            }
            match poll_frame(this.body.as_mut(), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(finish(this.shared.lock(), None, Some(0), false));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    // Writes made while the body produced this chunk go first.
                    let mut state = this.shared.lock();
                    if !state.queue.is_empty() {
                        *this.used_write = true;
                        this.queued.extend(state.queue.drain(..));
                        this.queued.push_back(data);
                        continue;
                    }
                    let rest = if this.body.is_end_stream() {
                        Some(0)
                    } else {
                        this.body.size_hint().exact()
                    };
                    let total = rest.map(|r| r + data.len() as u64);
                    let used_write = *this.used_write;
                    return Poll::Ready(finish(state, Some(data), total, used_write));
                }
            }
        }
    }

    /// The next chunk after the head. An error here is an error after the head.
    pub(crate) fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BoxError>>> {
        let mut this = self.project();
        if let Some(chunk) = this.queued.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        loop {
            match poll_frame(this.body.as_mut(), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                }
            }
        }
    }

    /// Whether no chunk is left.
    pub(crate) fn is_end_stream(&self) -> bool {
        self.queued.is_empty() && self.body.is_end_stream()
    }

    /// The size of what is left.
    pub(crate) fn size_hint(&self) -> http_body::SizeHint {
        let queued: u64 = self.queued.iter().map(|c| c.len() as u64).sum();
        add_to_hint(self.body.size_hint(), queued)
    }
}

/// `hint` plus `n` bytes.
pub(crate) fn add_to_hint(hint: http_body::SizeHint, n: u64) -> http_body::SizeHint {
    let mut sum = http_body::SizeHint::new();
    if let Some(upper) = hint.upper() {
        sum.set_upper(upper.saturating_add(n));
    }
    sum.set_lower(hint.lower().saturating_add(n));
    sum
}

/// Takes the app's head (marking it sent) and completes it: `Content-Length` when the whole
/// body is known and the app set none, nothing for a status that forbids a body.
fn finish(
    mut state: std::sync::MutexGuard<'_, State>,
    first: Option<Bytes>,
    total: Option<u64>,
    used_write: bool,
) -> Result<ResponseHead, BoxError> {
    if let Some(message) = state.poison.clone() {
        return Err(ContractError::new(message).into());
    }
    let Some(head) = state.head.take() else {
        return Err(ContractError::new(
            "the app produced its response without calling start_response (write() before start_response())",
        )
        .into());
    };
    state.head_sent = true;
    state.queue.clear();
    drop(state);
    let mut headers = head.headers;
    let no_body = status_forbids_body(head.status);
    if !no_body && !used_write && !headers.contains_key(CONTENT_LENGTH) {
        if let Some(total) = total {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
        }
    }
    Ok(ResponseHead {
        status: head.status,
        reason: head.reason,
        headers,
        first: if no_body { None } else { first },
        no_body,
    })
}

/// Takes the app's head for a file body of `len` bytes, if `start_response` was called and
/// nothing was written: `Content-Length` is the file's.
pub(crate) fn file_head(shared: &Shared, len: u64) -> Option<ResponseHead> {
    let mut state = shared.lock();
    if state.poison.is_some() || !state.queue.is_empty() || state.head.is_none() {
        return None;
    }
    let head = state.head.take()?;
    state.head_sent = true;
    drop(state);
    let mut headers = head.headers;
    let no_body = status_forbids_body(head.status);
    if !no_body && !headers.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    Some(ResponseHead {
        status: head.status,
        reason: head.reason,
        headers,
        first: None,
        no_body,
    })
}

/// An error and its causes, `traceback_limit` deep (`None`: all of them).
pub(crate) fn error_chain(error: &BoxError, limit: Option<usize>) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if limit.is_some_and(|l| depth >= l) {
            text.push_str(": …");
            break;
        }
        let _ = write!(text, ": caused by: {cause}");
        source = cause.source();
        depth += 1;
    }
    text
}

/// Returns true for an error that means the client went away: not the app's fault, not
/// logged (wsgiref ignores `BrokenPipeError`, `ConnectionResetError`,
/// `ConnectionAbortedError`).
pub(crate) fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("loading the page")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_stops_at_the_traceback_limit() {
        let error: BoxError = Outer(std::io::Error::other("disk on fire")).into();
        assert_eq!(
            error_chain(&error, None),
            "loading the page: caused by: disk on fire"
        );
        assert_eq!(error_chain(&error, Some(0)), "loading the page: …");
    }
}
