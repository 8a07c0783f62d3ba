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
//!   head goes: one chunk, an exact size hint, a file from
//!   [`Environ::wrap_file`](crate::Environ::wrap_file); an empty body gets
//!   `Content-Length: 0`, like wsgiref's `finish_content`. Output through `write()` is
//!   streamed without one.
//! - A 204 or 304 status gets no body, and 204 no length (RFC 9110 §8.6); a 1xx status is
//!   not a final response: the app failed. A `HEAD` request gets the head only (RFC 3875
//!   §4.3.3).
//! - With a CGI head (not origin-server), a body without `Content-Type` gets one sniffed from
//!   its first bytes (RFC 3875 §6.3.1; see [`crate::cgi`]).
//! - The rules are the same for every transport: the CGI program of [`crate::cgi`] and
//!   [`AppService`](crate::service::AppService) follow them too.
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
mod simple;

use std::fmt;
use std::io;
use std::pin::pin;

use bytes::Bytes;
use http::Version;

pub use crate::respond::{Transport, WriteTransport};
pub use cgi::CgiHandler;
pub use simple::SimpleHandler;

use crate::environ::FileSlot;
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::gateway::{App, Exchange, Shared, StartResponse};
use crate::headers::HeadStyle;
use crate::panic::{catch_unwind, log};
use crate::respond::{Failure, Head, Output, Responder, Rules, WriteError, is_disconnect};
use crate::{BoxError, Environ};

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
        if is_disconnect(&error) {
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

impl From<WriteError> for Error {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Body(e) => Error {
                kind: Kind::App,
                source: Some(e),
            },
            WriteError::Io(e) => Error::io(e),
        }
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

    /// `wsgi_file_wrapper`: whether a file body made by
    /// [`Environ::wrap_file`](crate::Environ::wrap_file) is handed to
    /// [`Transport::send_file`] whole (the environ's [`file_wrapper`](Environ::file_wrapper)).
    /// Without it a file body is read block by block like any other (its length still becomes
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
    pub async fn run<A, T>(&self, app: &A, environ: Environ, transport: T) -> Result<(), Error>
    where
        A: App,
        A::Body: 'static,
        T: Transport,
    {
        self.run_with(app, environ, transport, None).await
    }

    /// How this handler writes a response for `environ` to `transport`.
    pub(crate) fn output<T: Transport>(
        &self,
        environ: &Environ,
        transport: T,
        failure: Option<Failure>,
    ) -> Output<'_, T> {
        let modern = environ
            .get("SERVER_PROTOCOL")
            .is_none_or(|p| !p.eq_ignore_ascii_case(b"HTTP/0.9"));
        let style = match (self.origin_server, modern) {
            (false, _) => HeadStyle::Cgi,
            // An HTTP/0.9 client gets the body alone.
            (true, false) => HeadStyle::Bare,
            (true, true) => HeadStyle::Origin {
                http_version: if self.http_version <= Version::HTTP_10 {
                    "1.0"
                } else {
                    "1.1"
                },
                server_software: &self.server_software,
            },
        };
        Output {
            transport,
            style,
            rules: Rules {
                head_only: environ.get("REQUEST_METHOD") == Some(b"HEAD"),
                // A CGI response with a body must name its type (RFC 3875 §6.3.1).
                content_type: !self.origin_server,
            },
            failure,
            traceback_limit: self.traceback_limit,
            who: "app",
        }
    }

    /// [`run`](Self::run), answering 400 or 413 instead when `failure` records that the
    /// request body was malformed.
    pub(crate) async fn run_with<A, T>(
        &self,
        app: &A,
        environ: Environ,
        transport: T,
        failure: Option<Failure>,
    ) -> Result<(), Error>
    where
        A: App,
        A::Body: 'static,
        T: Transport,
    {
        let mut environ = self.setup_environ(environ);
        let file_slot = self.file_wrapper.then(FileSlot::default);
        if let Some(slot) = &file_slot {
            environ.set_file_slot(slot.clone());
        }
        let mut output = self.output(&environ, transport, failure);
        let rules = output.rules;
        let shared = std::sync::Arc::new(Shared::default());
        let start_response = StartResponse::new(shared.clone());

        let called = catch_unwind(async { app.call(environ, start_response).await }).await;
        let body = match called {
            Ok(Ok(body)) => body,
            Ok(Err(e)) | Err(e) => return Ok(output.write_error(&self.error_response, &e)?),
        };
        let responder = pin!(Responder::new(
            Exchange::new(body, shared, file_slot),
            rules
        ));
        Ok(output.write(responder, &self.error_response).await?)
    }

    /// Writes a short answer for a request rejected before the app was called.
    pub(crate) fn reject<T: Transport>(
        &self,
        environ: &Environ,
        transport: T,
        head: impl FnOnce(Rules) -> Head,
    ) -> Result<(), Error> {
        let mut output = self.output(environ, transport, None);
        let head = head(output.rules);
        Ok(output.write_head(head)?)
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
