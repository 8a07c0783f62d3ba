//! The handler engine: Python's `wsgiref.handlers` for Rust.
//!
//! A [`Handler`] runs a gateway [`App`] for one request and writes the response as bytes to
//! a [`Transport`] (the seed's `_write` / `_flush`). It has every attribute of wsgiref's
//! `BaseHandler`:
//!
//! | wsgiref | towergate | default ([`Handler::new`]) |
//! |---|---|---|
//! | `wsgi_multithread` | [`Handler::multithread`] | true |
//! | `wsgi_multiprocess` | [`Handler::multiprocess`] | true |
//! | `wsgi_run_once` | [`Handler::run_once`] | false |
//! | `wsgi_file_wrapper` | [`Handler::file_wrapper`] | true |
//! | `origin_server` | [`Handler::origin_server`] | true |
//! | `http_version` | [`Handler::http_version`] | `1.0` |
//! | `server_software` | [`Handler::server_software`] | none |
//! | `os_environ` | [`Handler::base_environ`] | empty (bpo-7250: nothing leaks between runs) |
//! | `traceback_limit` | [`Handler::traceback_limit`] | none (the whole `source()` chain) |
//! | `error_status`, `error_headers`, `error_body` | [`Handler::with_error_response`] | [`DefaultErrorResponse`]: 500, `text/plain`, wsgiref's body |
//! | `setup_environ()` | done by [`Handler::run`]: base environ, transport variables, gateway keys | |
//!
//! And its subclasses:
//!
//! | wsgiref | towergate |
//! |---|---|
//! | `SimpleHandler` | [`SimpleHandler::new`] (multithread true, multiprocess false) |
//! | `BaseCGIHandler` | [`SimpleHandler::base_cgi`] (the same with a CGI `Status:` head) |
//! | `CGIHandler` | [`CgiHandler::new`] (run_once true, multithread false, multiprocess true) |
//! | `IISCGIHandler` | [`CgiHandler::iis`] |
//! | `simple_server` under hyper | [`AppService`](crate::service::AppService) |
//!
//! # The response
//!
//! - The head waits for the first non-empty chunk, from the app's
//!   [`Writer`](crate::gateway::Writer) or its body (PEP 3333 "The start_response()
//!   Callable"), so an error before any output still gets a proper error response.
//! - `Content-Length` is added when the app set none and the whole body is known when the
//!   head goes: one chunk, an exact size hint, a [`FileWrapper`];
//!   an empty body gets `Content-Length: 0`, like wsgiref's `finish_content`. Output through
//!   `write()` is streamed without one.
//! - A 1xx, 204 or 304 status gets neither a length nor a body; a `HEAD` request gets the
//!   head only (RFC 3875 §4.3.3).
//! - In origin-server mode the head is a status line (`HTTP/1.0 200 OK`) with `Date` and
//!   `Server` (RFC 3875 §5, NPH); otherwise a CGI header block with `Status:` first (RFC 3875
//!   §6.3.3). Nothing is written for an `HTTP/0.9` client in origin-server mode.
//! - The app's body is dropped (closed) when the run ends: normally, on error, or when the
//!   transport reports the client gone.
//!
//! # Errors
//!
//! | when | outcome |
//! |---|---|
//! | the app fails or panics before the head | a log line (`app failed: …`, with the error's causes up to [`traceback_limit`](Handler::traceback_limit)) and the error response |
//! | the app fails or panics after the head | a log line (`app failed after the head was sent: …`), the output stops; [`Error::is_app`] |
//! | the transport says the client went away (broken pipe, reset, aborted) | no log line; [`Error::is_disconnect`] |
//! | another transport error | a log line; [`Error::is_io`] |

mod cgi;
mod engine;
mod simple;

use std::fmt;
use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::pin::pin;

use bytes::Bytes;
use http::Version;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, StatusCode};

pub use cgi::CgiHandler;
pub use simple::SimpleHandler;

pub(crate) use engine::{Exchange, ResponseHead, add_to_hint, error_chain, file_head};

use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::gateway::{App, AppBody, FileWrapper, Shared, StartResponse};
use crate::headers::{HeadStyle, encode_head, status_forbids_body};
use crate::panic::{catch_unwind, log};
use crate::{BoxError, Environ};

/// Where a handler writes the response bytes: wsgiref's `_write` and `_flush`.
///
/// Implemented for `Vec<u8>` (in memory, for tests) and [`WriteTransport`] (any
/// [`io::Write`]).
pub trait Transport {
    /// Writes all of `data` (`_write`).
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Pushes what was written to the client (`_flush`). Called after the head and after
    /// every chunk, so streamed output reaches the client chunk by chunk.
    fn flush(&mut self) -> io::Result<()>;

    /// Sends `len` bytes of `file` from its current position, efficiently if the transport
    /// can (wsgiref's `sendfile()` hook). Returns false, having written nothing, when it
    /// cannot: the handler then reads the file block by block. Defaults to false.
    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        let _ = (file, len);
        Ok(false)
    }
}

impl Transport for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        (**self).write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        (**self).send_file(file, len)
    }
}

/// A [`Transport`] over any [`io::Write`]. Files are sent with [`io::copy`], which on Linux
/// moves the bytes in the kernel (`sendfile`, `splice`, `copy_file_range`) when the writer is
/// a file, pipe or socket.
#[derive(Debug)]
pub struct WriteTransport<W> {
    inner: W,
}

impl<W: io::Write> WriteTransport<W> {
    /// Writes to `inner`.
    pub fn new(inner: W) -> Self {
        WriteTransport { inner }
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: io::Write> Transport for WriteTransport<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        use io::Read;
        let copied = io::copy(&mut file.take(len), &mut self.inner)?;
        if copied < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {} bytes early", len - copied),
            ));
        }
        self.inner.flush()?;
        Ok(true)
    }
}

/// Why a handler's run did not complete normally. Each failure has been logged, except a
/// client that went away.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Debug)]
enum Kind {
    App,
    Disconnect,
    Io,
}

impl Error {
    /// Returns true when the app failed (or panicked) after the head was sent: the output
    /// was cut short.
    pub fn is_app(&self) -> bool {
        matches!(self.kind, Kind::App)
    }

    /// Returns true when the client went away (the transport reported a broken pipe or a
    /// reset connection).
    pub fn is_disconnect(&self) -> bool {
        matches!(self.kind, Kind::Disconnect)
    }

    /// Returns true when writing to the transport failed otherwise.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io)
    }

    fn io(error: io::Error) -> Self {
        if engine::is_disconnect(&error) {
            Error {
                kind: Kind::Disconnect,
                source: Some(error.into()),
            }
        } else {
            log(format_args!("writing the response failed: {error}"));
            Error {
                kind: Kind::Io,
                source: Some(error.into()),
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::App => "the app failed after the head was sent",
            Kind::Disconnect => "the client went away",
            Kind::Io => "writing the response failed",
        })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The engine: wsgiref's `BaseHandler`, with every attribute (see the [module](self) docs).
///
/// ```
/// use towergate::gateway::{app_fn, AppBody};
/// use towergate::handler::Handler;
/// use towergate::{BoxError, Environ};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = app_fn(|_environ, start_response| async move {
///     start_response.start("200 OK", [("Content-Type", "text/plain"), ("Date", "x")])?;
///     Ok::<_, BoxError>(AppBody::from("hi"))
/// });
/// let mut handler = Handler::new()
///     .http_version(http::Version::HTTP_11)
///     .server_software("demo/1");
/// let mut out = Vec::new();
/// let environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("SERVER_PROTOCOL", "HTTP/1.1")]);
/// handler.run(&app, environ, &mut out).await.unwrap();
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\nServer: demo/1\r\nContent-Type: text/plain\r\nDate: x\r\nContent-Length: 2\r\n\r\nhi"
/// );
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Handler<E = DefaultErrorResponse> {
    run_once: bool,
    multithread: bool,
    multiprocess: bool,
    file_wrapper: bool,
    origin_server: bool,
    http_version: Version,
    server_software: Bytes,
    traceback_limit: Option<usize>,
    base_environ: Environ,
    error_response: E,
}

impl Default for Handler {
    fn default() -> Self {
        Handler::new()
    }
}

impl Handler {
    /// wsgiref's `BaseHandler` defaults (see the [module](self) docs).
    pub fn new() -> Self {
        Handler {
            run_once: false,
            multithread: true,
            multiprocess: true,
            file_wrapper: true,
            origin_server: true,
            http_version: Version::HTTP_10,
            server_software: Bytes::new(),
            traceback_limit: None,
            base_environ: Environ::new(),
            error_response: DefaultErrorResponse::new(),
        }
    }

    /// wsgiref's `SimpleHandler`: multithread true, multiprocess false, origin server.
    pub fn simple() -> Self {
        Handler::new().multiprocess(false)
    }

    /// wsgiref's `BaseCGIHandler`: [`simple`](Self::simple) with a CGI `Status:` head.
    pub fn base_cgi() -> Self {
        Handler::simple().origin_server(false)
    }

    /// wsgiref's `CGIHandler`: run_once true, multithread false, multiprocess true, CGI
    /// `Status:` head.
    pub fn cgi() -> Self {
        Handler::new()
            .run_once(true)
            .multithread(false)
            .multiprocess(true)
            .origin_server(false)
    }
}

impl<E: ErrorResponse> Handler<E> {
    /// `wsgi_run_once`: the environ's [`run_once`](Environ::run_once). Defaults to false.
    pub fn run_once(mut self, value: bool) -> Self {
        self.run_once = value;
        self
    }

    /// `wsgi_multithread`: the environ's [`multithread`](Environ::multithread). Defaults to
    /// true.
    pub fn multithread(mut self, value: bool) -> Self {
        self.multithread = value;
        self
    }

    /// `wsgi_multiprocess`: the environ's [`multiprocess`](Environ::multiprocess). Defaults
    /// to true.
    pub fn multiprocess(mut self, value: bool) -> Self {
        self.multiprocess = value;
        self
    }

    /// `wsgi_file_wrapper`: whether a [`FileWrapper`] body is handed to
    /// [`Transport::send_file`] (the environ's [`file_wrapper`](Environ::file_wrapper)).
    /// Without it a file body is sent like any other (its length still becomes
    /// `Content-Length`). Defaults to true.
    pub fn file_wrapper(mut self, value: bool) -> Self {
        self.file_wrapper = value;
        self
    }

    /// `origin_server`: write a full HTTP status line with `Date` and `Server` (NPH, RFC 3875
    /// §5) instead of a CGI `Status:` header (RFC 3875 §6.3.3). Defaults to true.
    pub fn origin_server(mut self, value: bool) -> Self {
        self.origin_server = value;
        self
    }

    /// `http_version`: the version of the status line in origin-server mode (not the
    /// request's). `HTTP/1.0` and below give `1.0`, anything else `1.1`. Defaults to
    /// `HTTP/1.0`.
    pub fn http_version(mut self, version: Version) -> Self {
        self.http_version = version;
        self
    }

    /// `server_software`: the `Server` header in origin-server mode (unless the app sets
    /// one), and there the default of `SERVER_SOFTWARE`. Empty for none. Defaults to none.
    pub fn server_software(mut self, software: impl Into<Bytes>) -> Self {
        self.server_software = software.into();
        self
    }

    /// `traceback_limit`: how many causes (`source()` levels) of an app's error are logged;
    /// `None` logs them all. Defaults to `None`.
    pub fn traceback_limit(mut self, limit: Option<usize>) -> Self {
        self.traceback_limit = limit;
        self
    }

    /// `os_environ`: the variables every request's environ starts from; the transport's
    /// variables override them. Defaults to none (`CGIHandler`'s choice since bpo-7250).
    pub fn base_environ(mut self, environ: Environ) -> Self {
        self.base_environ = environ;
        self
    }

    /// `error_status`, `error_headers` and `error_body`: the response sent when the app
    /// fails before the head. Defaults to [`DefaultErrorResponse`].
    pub fn with_error_response<E2: ErrorResponse>(self, error_response: E2) -> Handler<E2> {
        Handler {
            run_once: self.run_once,
            multithread: self.multithread,
            multiprocess: self.multiprocess,
            file_wrapper: self.file_wrapper,
            origin_server: self.origin_server,
            http_version: self.http_version,
            server_software: self.server_software,
            traceback_limit: self.traceback_limit,
            base_environ: self.base_environ,
            error_response,
        }
    }

    /// `setup_environ()`: `environ` (the transport's variables and streams) over the base
    /// environ, with the gateway keys of this handler, `url_scheme` from `HTTPS`, and
    /// `SERVER_SOFTWARE` defaulting to [`server_software`](Self::server_software) in
    /// origin-server mode.
    pub fn setup_environ(&self, mut environ: Environ) -> Environ {
        for (key, value) in self.base_environ.vars() {
            if !environ.contains_key(key) {
                // Shared with the base environ: a refcount, no copy.
                environ.push_unchecked(key.clone(), value.clone());
            }
        }
        environ.set_run_once(self.run_once);
        environ.set_multithread(self.multithread);
        environ.set_multiprocess(self.multiprocess);
        environ.set_file_wrapper(self.file_wrapper);
        environ.set_url_scheme(if crate::environ::guess_scheme(&environ) == "https" {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        if self.origin_server && !self.server_software.is_empty() {
            environ.set_default("SERVER_SOFTWARE", self.server_software.clone());
        }
        environ
    }

    /// Runs `app` for the request described by `environ` (its variables, input and errors),
    /// writing the response to `transport` (wsgiref's `run`).
    ///
    /// Returns `Ok` when the response was written, including the error response for an app
    /// that failed before its head.
    pub async fn run<A, T>(
        &mut self,
        app: &A,
        environ: Environ,
        mut transport: T,
    ) -> Result<(), Error>
    where
        A: App,
        A::Body: 'static,
        T: Transport,
    {
        let environ = self.setup_environ(environ);
        let head_only = environ.get("REQUEST_METHOD") == Some(b"HEAD");
        let modern = environ
            .get("SERVER_PROTOCOL")
            .is_none_or(|p| !p.eq_ignore_ascii_case(b"HTTP/0.9"));
        let shared = std::sync::Arc::new(Shared::default());
        let start_response = StartResponse::new(shared.clone());

        let called = catch_unwind(async { app.call(environ, start_response).await }).await;
        let mut body = match called {
            Ok(Ok(body)) => body,
            Ok(Err(e)) | Err(e) => return self.handle_error(e, head_only, modern, &mut transport),
        };

        // A file body goes to the transport whole.
        if self.file_wrapper {
            let any = &mut body as &mut dyn std::any::Any;
            let file = match any.downcast_mut::<AppBody>() {
                Some(app_body) => app_body.as_file_mut(),
                None => any.downcast_mut::<FileWrapper>(),
            };
            if let Some(file) = file {
                if let Some(head) = file_head(&shared, file.remaining()) {
                    return self.send_file(head, file, head_only, modern, &mut transport);
                }
            }
        }

        let mut exchange = pin!(Exchange::new(body, shared));
        let head = match poll_fn(|cx| exchange.as_mut().poll_head(cx)).await {
            Ok(head) => head,
            Err(e) => return self.handle_error(e, head_only, modern, &mut transport),
        };
        let mut out = Vec::with_capacity(256);
        if let Err(e) = self.encode_head(&mut out, &head, modern) {
            return self.handle_error(e, head_only, modern, &mut transport);
        }
        let no_body = head_only || head.no_body;
        if let Some(first) = head.first.as_ref().filter(|_| !no_body) {
            out.extend_from_slice(first);
        }
        transport
            .write(&out)
            .and_then(|()| transport.flush())
            .map_err(Error::io)?;
        if no_body || head.first.is_none() {
            return Ok(());
        }
        while let Some(chunk) = poll_fn(|cx| exchange.as_mut().poll_chunk(cx)).await {
            match chunk {
                Ok(chunk) => transport
                    .write(&chunk)
                    .and_then(|()| transport.flush())
                    .map_err(Error::io)?,
                Err(e) => {
                    log(format_args!(
                        "app failed after the head was sent: {}",
                        error_chain(&e, self.traceback_limit)
                    ));
                    return Err(Error {
                        kind: Kind::App,
                        source: Some(e),
                    });
                }
            }
        }
        Ok(())
    }

    fn send_file<T: Transport>(
        &mut self,
        head: ResponseHead,
        file: &mut FileWrapper,
        head_only: bool,
        modern: bool,
        transport: &mut T,
    ) -> Result<(), Error> {
        let mut out = Vec::with_capacity(256);
        if let Err(e) = self.encode_head(&mut out, &head, modern) {
            return self.handle_error(e, head_only, modern, transport);
        }
        transport
            .write(&out)
            .and_then(|()| transport.flush())
            .map_err(Error::io)?;
        if head_only || head.no_body {
            return Ok(());
        }
        let Some((mut f, len)) = file.take() else {
            return Ok(());
        };
        match transport.send_file(&mut f, len) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if engine::is_disconnect(&e) => return Err(Error::io(e)),
            Err(e) => {
                log(format_args!("app failed after the head was sent: {e}"));
                return Err(Error {
                    kind: Kind::App,
                    source: Some(e.into()),
                });
            }
        }
        // The transport cannot take a file: read it block by block.
        let mut rest = FileWrapper::new(f).map_err(Error::io)?;
        let mut rest = pin!(&mut rest);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        while let std::task::Poll::Ready(Some(frame)) =
            http_body::Body::poll_frame(rest.as_mut(), &mut cx)
        {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        transport
                            .write(&data)
                            .and_then(|()| transport.flush())
                            .map_err(Error::io)?;
                    }
                }
                Err(e) => {
                    log(format_args!("app failed after the head was sent: {e}"));
                    return Err(Error {
                        kind: Kind::App,
                        source: Some(e.into()),
                    });
                }
            }
        }
        Ok(())
    }

    fn encode_head(
        &self,
        out: &mut Vec<u8>,
        head: &ResponseHead,
        modern: bool,
    ) -> Result<(), BoxError> {
        let style = if self.origin_server {
            if !modern {
                return Ok(());
            }
            HeadStyle::Origin {
                http_version: if self.http_version <= Version::HTTP_10 {
                    "1.0"
                } else {
                    "1.1"
                },
                server_software: &self.server_software,
            }
        } else {
            HeadStyle::Cgi
        };
        encode_head(
            out,
            style,
            head.status,
            head.reason.as_deref(),
            &head.headers,
        )?;
        Ok(())
    }

    /// wsgiref's `handle_error`: log, then send the error response (the head was not sent).
    fn handle_error<T: Transport>(
        &mut self,
        error: BoxError,
        head_only: bool,
        modern: bool,
        transport: &mut T,
    ) -> Result<(), Error> {
        log(format_args!(
            "app failed: {}",
            error_chain(&error, self.traceback_limit)
        ));
        let (parts, body) = self.error_response.error_response(&error).into_parts();
        let mut headers = parts.headers;
        let no_body = status_forbids_body(parts.status);
        if !no_body && !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let head = ResponseHead {
            status: parts.status,
            reason: None,
            headers,
            first: None,
            no_body,
        };
        let mut out = Vec::with_capacity(256 + body.len());
        if self.encode_head(&mut out, &head, modern).is_err() {
            out.clear();
            let _ = encode_head(
                &mut out,
                HeadStyle::Cgi,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &http::HeaderMap::new(),
            );
        }
        if !no_body && !head_only {
            out.extend_from_slice(&body);
        }
        transport
            .write(&out)
            .and_then(|()| transport.flush())
            .map_err(Error::io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_environ_sets_the_gateway_keys_and_server_software() {
        let handler = Handler::new()
            .server_software("demo/1")
            .base_environ(Environ::from_vars([("A", "base"), ("B", "base")]));
        let environ =
            handler.setup_environ(Environ::from_vars([("A", "request"), ("HTTPS", "on")]));
        assert_eq!(environ.get("A"), Some(&b"request"[..]));
        assert_eq!(environ.get("B"), Some(&b"base"[..]));
        assert_eq!(environ.get("SERVER_SOFTWARE"), Some(&b"demo/1"[..]));
        assert_eq!(environ.url_scheme(), "https");
        assert!(environ.multithread() && environ.multiprocess() && !environ.run_once());
        assert!(environ.file_wrapper());
    }

    #[test]
    fn cgi_handler_is_run_once_and_multiprocess() {
        let environ = Handler::cgi().setup_environ(Environ::new());
        assert!(environ.run_once() && environ.multiprocess() && !environ.multithread());
        assert!(!environ.contains_key("SERVER_SOFTWARE"));
    }
}
