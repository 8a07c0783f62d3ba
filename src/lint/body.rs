use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use super::Violation;
use crate::BoxError;
use crate::panic::log;

/// What a response body is checked for as it streams.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyCheck {
    /// No data may come (HEAD, 1xx, 204, 304).
    no_body: bool,
    /// Exactly this many bytes must come (`Content-Length`).
    expected: Option<u64>,
    /// The bytes so far.
    seen: u64,
}

impl BodyCheck {
    pub(super) fn new(no_body: bool, expected: Option<u64>) -> Self {
        BodyCheck {
            no_body,
            expected,
            seen: 0,
        }
    }

    fn data(&mut self, len: usize) -> Result<(), Violation> {
        if self.no_body && len > 0 {
            return Err(Violation::new(
                "response.no-body",
                "the body of a response that has none (HEAD, 1xx, 204, 304) yielded data \
                 (RFC 9110 §6.4.1)",
            ));
        }
        self.seen = self.seen.saturating_add(len as u64);
        match self.expected {
            Some(expected) if self.seen > expected => Err(Violation::new(
                "response.content-length",
                format!(
                    "the body is longer than its Content-Length {expected} ({} bytes so far)",
                    self.seen
                ),
            )),
            _ => Ok(()),
        }
    }

    fn end(&self) -> Result<(), Violation> {
        match self.expected {
            Some(expected) if self.seen < expected => Err(Violation::new(
                "response.content-length",
                format!(
                    "the body ended after {} bytes, short of its Content-Length {expected}",
                    self.seen
                ),
            )),
            _ => Ok(()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body of [`Lint`](super::Lint) as a service: the service's body, checked
    /// as it streams (a broken rule ends it with an error), or the text of the violation
    /// that replaced the response.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Checked { #[pin] body: B, check: BodyCheck, failed: bool },
        Error { text: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(super) fn checked(body: B, check: BodyCheck) -> Self {
        ResponseBody {
            kind: Kind::Checked {
                body,
                check,
                failed: false,
            },
        }
    }

    pub(super) fn error(text: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Error { text: Some(text) },
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Checked { check, .. } => f
                .debug_struct("ResponseBody")
                .field("check", check)
                .finish_non_exhaustive(),
            Kind::Error { text } => f.debug_struct("ResponseBody").field("text", text).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
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
        match self.project().kind.project() {
            KindProj::Error { text } => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
            KindProj::Checked {
                body,
                check,
                failed,
            } => {
                if *failed {
                    return Poll::Ready(None);
                }
                let violation = match body.poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => {
                        let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                        match frame.data_ref().map(|d| check.data(d.len())) {
                            Some(Err(violation)) => violation,
                            _ => return Poll::Ready(Some(Ok(frame))),
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(None) => match check.end() {
                        Ok(()) => return Poll::Ready(None),
                        Err(violation) => violation,
                    },
                };
                *failed = true;
                log(format_args!("{violation}"));
                Poll::Ready(Some(Err(violation.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            // Not ended while a short body is still to be reported.
            Kind::Checked {
                body,
                check,
                failed,
            } => *failed || (body.is_end_stream() && check.end().is_ok()),
            Kind::Error { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Checked { body, .. } => body.size_hint(),
            Kind::Error { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}
