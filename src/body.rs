//! A body adapter shared by the gateway side: any body, seen with `Bytes` data and a boxed
//! error.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use crate::BoxError;

pin_project_lite::pin_project! {
    /// `body` with its data as `Bytes` (no copy when it already is `Bytes`) and its error
    /// boxed; `is_end_stream` and `size_hint` forwarded.
    pub(crate) struct IntoBytes<B> {
        #[pin]
        body: B,
    }
}

impl<B> IntoBytes<B> {
    pub(crate) fn new(body: B) -> Self {
        IntoBytes { body }
    }
}

impl<B> Body for IntoBytes<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(
                frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
            ))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
