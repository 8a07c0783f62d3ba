use std::fmt;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::respond::Failure;

/// How much is read from standard input at a time.
const READ_SIZE: usize = 64 * 1024;

/// The request body of a CGI program: its standard input, streamed.
///
/// With `CONTENT_LENGTH` set, exactly that many bytes are read and the body ends: the program
/// never waits for end-of-file past them, and bytes beyond them are never read (RFC 3875
/// §4.2). Without it the body is empty, unless `HTTP_TRANSFER_ENCODING` says `chunked`
/// (Apache streams such a body and closes standard input): then it is standard input to
/// end-of-file, under the [`max_body`](super::Builder::max_body) limit.
///
/// Reads block the runtime's thread: a CGI program serves one request, and a direct `read`
/// on the pipe is the fastest way to its bytes.
pub struct RequestBody {
    reader: Option<Box<dyn Read + Send>>,
    /// Bytes still to read; `None` reads to end-of-file.
    remaining: Option<u64>,
    /// The most that may be read to end-of-file.
    limit: u64,
    read: u64,
    buf: BytesMut,
    /// Shared with the program's output, which answers 400 or 413 for a malformed body.
    failure: Failure,
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("remaining", &self.remaining)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    /// A body of exactly `length` bytes from `reader`.
    pub(crate) fn exact(reader: Box<dyn Read + Send>, length: u64) -> Self {
        RequestBody {
            reader: (length > 0).then_some(reader),
            remaining: Some(length),
            limit: length,
            read: 0,
            buf: BytesMut::new(),
            failure: Failure::default(),
        }
    }

    /// A body that reads `reader` to end-of-file, failing past `limit` bytes.
    pub(crate) fn to_eof(reader: Box<dyn Read + Send>, limit: u64) -> Self {
        RequestBody {
            reader: Some(reader),
            remaining: None,
            limit,
            read: 0,
            buf: BytesMut::new(),
            failure: Failure::default(),
        }
    }

    /// A body with no bytes.
    pub fn empty() -> Self {
        RequestBody {
            reader: None,
            remaining: Some(0),
            limit: 0,
            read: 0,
            buf: BytesMut::new(),
            failure: Failure::default(),
        }
    }

    /// Shares the record of a malformed body with the program's output.
    pub(crate) fn with_failure(mut self, failure: Failure) -> Self {
        self.failure = failure;
        self
    }

    fn read_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        let reader = self.reader.as_mut()?;
        let want = match self.remaining {
            Some(0) => return None,
            Some(n) => n.min(READ_SIZE as u64) as usize,
            None => READ_SIZE,
        };
        self.buf.resize(want, 0);
        // With a length, fill the frame (up to 64 KiB, never past the length) so that a body
        // that ends early is noticed before its bytes are handed on: the program can then
        // still answer 400 (RFC 3875 §4.2). To end-of-file, hand on what each read gives.
        let fill = self.remaining.is_some();
        let mut n = 0;
        while n < want {
            match reader.read(&mut self.buf[n..want]) {
                Ok(0) => break,
                Ok(read) => {
                    n += read;
                    if !fill {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.reader = None;
                    return Some(Err(BodyError::Io(e)));
                }
            }
        }
        if n == 0 || (fill && n < want) {
            self.reader = None;
            return match self.remaining {
                Some(missing) => {
                    self.failure.set(http::StatusCode::BAD_REQUEST);
                    Some(Err(BodyError::Incomplete {
                        read: self.read + n as u64,
                        expected: self.read + missing,
                    }))
                }
                None => None,
            };
        }
        self.read += n as u64;
        match &mut self.remaining {
            Some(remaining) => {
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.reader = None;
                }
            }
            None if self.read > self.limit => {
                self.reader = None;
                self.failure.set(http::StatusCode::PAYLOAD_TOO_LARGE);
                return Some(Err(BodyError::TooLarge { limit: self.limit }));
            }
            None => {}
        }
        Some(Ok(self.buf.split_to(n).freeze()))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Poll::Ready(self.get_mut().read_chunk().map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (self.remaining, &self.reader) {
            (_, None) => SizeHint::with_exact(0),
            (Some(n), _) => SizeHint::with_exact(n),
            (None, _) => SizeHint::default(),
        }
    }
}

/// An error reading a CGI program's request body.
#[derive(Debug)]
#[non_exhaustive]
pub enum BodyError {
    /// Standard input ended before `CONTENT_LENGTH` bytes (RFC 3875 §4.2): the request is
    /// malformed, and the program answers `400 Bad Request` if its head is not written yet.
    Incomplete {
        /// Bytes read.
        read: u64,
        /// `CONTENT_LENGTH`.
        expected: u64,
    },
    /// A body read to end-of-file went past the limit: the program answers
    /// `413 Content Too Large` if its head is not written yet.
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Reading standard input failed.
    Io(io::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Incomplete { read, expected } => write!(
                f,
                "request body ended after {read} of CONTENT_LENGTH {expected} bytes"
            ),
            BodyError::TooLarge { limit } => {
                write!(f, "request body is larger than the limit of {limit} bytes")
            }
            BodyError::Io(e) => write!(f, "reading the request body failed: {e}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn stdin(bytes: &'static [u8]) -> Box<dyn Read + Send> {
        Box::new(io::Cursor::new(bytes))
    }

    #[tokio::test]
    async fn exact_body_stops_at_content_length() {
        let body = RequestBody::exact(stdin(b"hello, and more"), 5);
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
    }

    #[tokio::test]
    async fn short_body_is_an_error() {
        let err = RequestBody::exact(stdin(b"abc"), 5)
            .collect()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body ended after 3 of CONTENT_LENGTH 5 bytes"
        );
    }

    #[tokio::test]
    async fn eof_body_is_bounded() {
        let body = RequestBody::to_eof(stdin(b"abcdef"), 6);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdef");
        let err = RequestBody::to_eof(stdin(b"abcdefg"), 6)
            .collect()
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 6 }));
    }

    #[tokio::test]
    async fn zero_length_body_reads_nothing() {
        let body = RequestBody::exact(stdin(b"ignored"), 0);
        assert!(body.is_end_stream());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "");
    }

    /// A reader that hands out one byte per read, as a slow pipe can.
    struct Trickle(io::Cursor<&'static [u8]>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    #[tokio::test]
    async fn a_short_body_fails_before_handing_on_any_bytes() {
        let failure = Failure::default();
        let mut body = RequestBody::exact(stdin(b"abc"), 5).with_failure(failure.clone());
        let first = body.frame().await.unwrap();
        assert!(matches!(
            first,
            Err(BodyError::Incomplete {
                read: 3,
                expected: 5
            })
        ));
        assert_eq!(failure.status(), Some(http::StatusCode::BAD_REQUEST));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_body_in_small_reads_is_handed_on_in_whole_frames() {
        let mut body = RequestBody::exact(Box::new(Trickle(io::Cursor::new(b"hello!"))), 5);
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame, "hello");
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_large_body_comes_in_frames_of_at_most_64_kib() {
        let data: &'static [u8] = Box::leak(vec![7u8; READ_SIZE * 2 + 10].into_boxed_slice());
        let mut body = RequestBody::exact(stdin(data), data.len() as u64);
        let mut sizes = Vec::new();
        while let Some(frame) = body.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, [READ_SIZE, READ_SIZE, 10]);
    }

    #[tokio::test]
    async fn an_eof_body_over_the_limit_records_413() {
        let failure = Failure::default();
        let err = RequestBody::to_eof(stdin(b"abcdefg"), 6)
            .with_failure(failure.clone())
            .collect()
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 6 }));
        assert_eq!(failure.status(), Some(http::StatusCode::PAYLOAD_TOO_LARGE));
    }

    #[tokio::test]
    async fn a_complete_body_records_no_failure() {
        let failure = Failure::default();
        let body = RequestBody::exact(stdin(b"hello"), 5).with_failure(failure.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(failure.status(), None);
    }

    #[test]
    fn size_hint_is_the_bytes_still_to_come() {
        assert_eq!(RequestBody::empty().size_hint().exact(), Some(0));
        assert!(RequestBody::empty().is_end_stream());
        assert_eq!(
            RequestBody::to_eof(stdin(b"x"), 10).size_hint().exact(),
            None
        );
    }
}
