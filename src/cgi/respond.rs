//! Writing the response to standard output.

use std::future::poll_fn;
use std::io::{BufWriter, Read, Write};
use std::pin::pin;

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body::Body;

use super::Error;
use super::body::Failure;
use crate::BoxError;
use crate::error_response::ErrorResponse;
use crate::headers::{HeadStyle, encode_head, status_forbids_body};
use crate::panic::{log, poll_frame};

/// Standard input and output, read and written without std's buffering layers.
pub(super) fn std_streams() -> (Box<dyn Read + Send>, Box<dyn Write>) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin().as_fd().try_clone_to_owned();
        let stdout = std::io::stdout().as_fd().try_clone_to_owned();
        if let (Ok(stdin), Ok(stdout)) = (stdin, stdout) {
            return (
                Box::new(std::fs::File::from(stdin)),
                Box::new(std::fs::File::from(stdout)),
            );
        }
    }
    (Box::new(std::io::stdin()), Box::new(std::io::stdout()))
}

/// The program's output: the head style and the buffered writer.
pub(super) struct Output<'a, W: Write> {
    writer: BufWriter<W>,
    nph: bool,
    server_software: &'a [u8],
    version: Version,
    failure: Failure,
}

impl<'a, W: Write> Output<'a, W> {
    pub(super) fn new(writer: W, nph: bool, server_software: &'a [u8], failure: Failure) -> Self {
        Output {
            writer: BufWriter::with_capacity(16 * 1024, writer),
            nph,
            server_software,
            version: Version::HTTP_11,
            failure,
        }
    }

    /// When the request body turned out malformed (shorter than `CONTENT_LENGTH`, or over
    /// the limit), answers `400 Bad Request` or `413 Content Too Large` in place of the
    /// response the head of which is about to be written.
    fn malformed_body(&mut self, head_only: bool) -> Option<Result<(), Error>> {
        let status = self.failure.status()?;
        log(format_args!(
            "the request body was malformed: answering {status} instead of the service's response"
        ));
        let body = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Content Too Large\n"
        } else {
            "Bad Request\n"
        };
        Some(self.simple(status, body, head_only))
    }

    pub(super) fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    fn head(&mut self, status: StatusCode, headers: &mut HeaderMap) -> Vec<u8> {
        let style = if self.nph {
            let http_version = if self.version <= Version::HTTP_10 {
                "1.0"
            } else {
                "1.1"
            };
            if http_version == "1.1" && !headers.contains_key(CONTENT_LENGTH) {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            HeadStyle::Origin {
                http_version,
                server_software: self.server_software,
            }
        } else {
            HeadStyle::Cgi
        };
        let mut head = Vec::with_capacity(256);
        if let Err(e) = encode_head(&mut head, style, status, None, headers) {
            log(format_args!("refusing the response: {e}"));
            head.clear();
            let mut fallback = HeaderMap::new();
            fallback.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            fallback.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            // A fixed head has no unsafe values.
            let _ = encode_head(
                &mut head,
                style,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &fallback,
            );
        }
        head
    }

    fn finish(&mut self, head: &[u8], body: &[u8]) -> Result<(), Error> {
        self.writer
            .write_all(head)
            .and_then(|()| self.writer.write_all(body))
            .and_then(|()| self.writer.flush())
            .map_err(Error::io)
    }

    /// A short `text/plain` response.
    pub(super) fn simple(
        &mut self,
        status: StatusCode,
        body: &'static str,
        head_only: bool,
    ) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let head = self.head(status, &mut headers);
        self.finish(&head, if head_only { b"" } else { body.as_bytes() })
    }

    /// The error hook's response.
    pub(super) fn error(
        &mut self,
        hook: &mut impl ErrorResponse,
        error: &BoxError,
        head_only: bool,
    ) -> Result<(), Error> {
        if let Some(result) = self.malformed_body(head_only) {
            return result;
        }
        let (mut parts, body): (_, Bytes) = hook.error_response(error).into_parts();
        let no_body = head_only || status_forbids_body(parts.status);
        if !status_forbids_body(parts.status) && !parts.headers.contains_key(CONTENT_LENGTH) {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let head = self.head(parts.status, &mut parts.headers);
        self.finish(&head, if no_body { b"" } else { &body })
    }

    /// Streams the service's response.
    pub(super) async fn response<B>(
        mut self,
        response: Response<B>,
        head_only: bool,
        hook: &mut impl ErrorResponse,
    ) -> Result<(), Error>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = response.into_parts();
        let mut body = pin!(body);
        let forbids_body = status_forbids_body(parts.status);
        let no_body = head_only || forbids_body;

        // The head waits for the first non-empty data frame (PEP 3333), so an error before
        // any output still gets a proper error response, and a one-chunk body gets a length.
        let mut first: Option<B::Data> = None;
        if !no_body {
            while let Some(frame) = poll_fn(|cx| poll_frame(body.as_mut(), cx)).await {
                match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) if data.has_remaining() => {
                            first = Some(data);
                            break;
                        }
                        _ => {}
                    },
                    Err(e) => {
                        log(format_args!("response body failed before any output: {e}"));
                        return self.error(hook, &e, head_only);
                    }
                }
            }
        }
        if let Some(result) = self.malformed_body(head_only) {
            return result;
        }
        if !no_body && !parts.headers.contains_key(CONTENT_LENGTH) {
            let first_len = first.as_ref().map_or(0, |d| d.remaining() as u64);
            let rest = if first.is_none() || body.is_end_stream() {
                Some(0)
            } else {
                body.size_hint().exact()
            };
            if let Some(rest) = rest {
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(first_len + rest));
            }
        }
        let head = self.head(parts.status, &mut parts.headers);
        self.writer.write_all(&head).map_err(Error::io)?;
        let Some(first) = first else {
            return self.writer.flush().map_err(Error::io);
        };
        self.write_data(first)?;
        while let Some(frame) = poll_fn(|cx| poll_frame(body.as_mut(), cx)).await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if data.has_remaining() {
                            self.write_data(data)?;
                        }
                    }
                }
                Err(e) => {
                    log(format_args!(
                        "response body failed after the head was sent: {e}"
                    ));
                    let _ = self.writer.flush();
                    return Err(Error::body(e));
                }
            }
        }
        Ok(())
    }

    /// Writes one frame's bytes and flushes them.
    fn write_data(&mut self, mut data: impl Buf) -> Result<(), Error> {
        while data.has_remaining() {
            let chunk = data.chunk();
            self.writer.write_all(chunk).map_err(Error::io)?;
            let n = chunk.len();
            data.advance(n);
        }
        self.writer.flush().map_err(Error::io)
    }
}
