//! A gateway app's response as a [`Source`] for the response engine.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, SizeHint};

use super::start_response::Shared;
use crate::BoxError;
use crate::environ::FileSlot;
use crate::panic::poll_frame;
use crate::respond::{Source, SourceHead};

pin_project_lite::pin_project! {
    /// An app's body and its head state: `write()` output first, then the body's chunks.
    pub(crate) struct Exchange<B> {
        #[pin]
        body: B,
        shared: Arc<Shared>,
        queued: VecDeque<Bytes>,
        used_write: bool,
        head_taken: bool,
        file_slot: Option<FileSlot>,
    }
}

impl<B> Exchange<B> {
    /// `file_slot` is where a file wrapper made by
    /// [`Environ::wrap_file`](crate::Environ::wrap_file) hands its file, when the transport
    /// sends files whole.
    pub(crate) fn new(body: B, shared: Arc<Shared>, file_slot: Option<FileSlot>) -> Self {
        Exchange {
            body,
            shared,
            queued: VecDeque::new(),
            used_write: false,
            head_taken: false,
            file_slot,
        }
    }
}

impl<B> Source for Exchange<B>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    fn status(&self) -> Option<StatusCode> {
        // Queued writes are the first chunk, whatever the status: they must be polled.
        self.queued
            .is_empty()
            .then(|| self.shared.status())
            .flatten()
    }

    fn poll_data(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BoxError>>> {
        let mut this = self.project();
        if !*this.head_taken {
            match this.shared.poll_writes(this.queued) {
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
                Ok(wrote) => *this.used_write |= wrote,
            }
        }
        if let Some(chunk) = this.queued.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        loop {
            match poll_frame(this.body.as_mut(), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if !*this.head_taken {
                        // Writes made while the body produced this chunk go first.
                        match this.shared.poll_writes(this.queued) {
                            Err(e) => return Poll::Ready(Some(Err(e.into()))),
                            Ok(true) => {
                                *this.used_write = true;
                                this.queued.push_back(data);
                                if let Some(first) = this.queued.pop_front() {
                                    return Poll::Ready(Some(Ok(first)));
                                }
                                continue;
                            }
                            Ok(false) => {}
                        }
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }

    fn take_head(self: Pin<&mut Self>) -> Result<SourceHead, BoxError> {
        let this = self.project();
        let head = this.shared.take_head()?;
        *this.head_taken = true;
        Ok(SourceHead {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            streamed: *this.used_write,
            file: this.file_slot.as_ref().and_then(FileSlot::take),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.queued.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let queued: u64 = self.queued.iter().map(|c| c.len() as u64).sum();
        let hint = self.body.size_hint();
        let mut sum = SizeHint::new();
        if let Some(upper) = hint.upper() {
            sum.set_upper(upper.saturating_add(queued));
        }
        sum.set_lower(hint.lower().saturating_add(queued));
        sum
    }
}
