//! Run a tower service as a CGI program (RFC 3875).
//!
//! [`run`] is the one call a CGI program's `main` needs: it reads the request's
//! meta-variables from the environment, streams the body from standard input, calls the
//! service, and streams the response to standard output.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn main() -> std::process::ExitCode {
//!     let app = Router::new().route("/", get(|| async { "Hello, world!" }));
//!     towergate::cgi::run(app)
//! }
//! ```
//!
//! [`Builder`] sets the options, and [`Builder::serve_with`] runs one request over any
//! environ, input and output, which is how a service is tested without a web server:
//!
//! ```
//! use std::convert::Infallible;
//! use towergate::{cgi, Environ};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let service = tower::service_fn(|request: http::Request<cgi::RequestBody>| async move {
//!     let body = format!("you asked for {}", request.uri());
//!     Ok::<_, Infallible>(http::Response::new(body))
//! });
//! let environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/a")]);
//! let mut stdout = Vec::new();
//! cgi::Builder::new()
//!     .serve_with(service, environ, std::io::empty(), &mut stdout)
//!     .await
//!     .unwrap();
//! assert_eq!(
//!     String::from_utf8(stdout).unwrap(),
//!     // No Content-Type from the service: one is sniffed (RFC 3875 §6.3.1).
//!     "Status: 200 OK\r\nContent-Length: 16\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nyou asked for /a",
//! );
//! # }
//! ```
//!
//! # The request
//!
//! - Method, URI, version and headers come from the meta-variables as
//!   [`Environ::into_request`] describes. By default the URI is the app-relative path
//!   (`PATH_INFO` + query), so a router written for `/` works wherever the program is
//!   mounted; [`Builder::full_path`] gives the full path instead. Either way `SCRIPT_NAME`,
//!   `PATH_INFO`, `REMOTE_ADDR`, `HTTPS`, … and the whole environ are typed values in the
//!   request's extensions ([`crate::ext`]).
//! - The body is a [`RequestBody`]: exactly `CONTENT_LENGTH` bytes of standard input, never
//!   waiting for end-of-file past them (RFC 3875 §4.2).
//!
//! # The response
//!
//! `Status: NNN Reason`, every header (repeated ones stay repeated), a blank line, then the
//! body frames, written as they come and flushed at each frame boundary so a streamed
//! response reaches the client chunk by chunk (RFC 3875 §6). The head waits for the first
//! non-empty frame (PEP 3333); `Content-Length` is added when the body's length is known
//! exactly and the service did not set one. A `HEAD` request, and a 204 or 304 status, send
//! no body (RFC 3875 §4.3.3), and 204 no `Content-Length` either (RFC 9110 §8.6: axum adds
//! `Content-Length: 0` to every empty body; it is dropped there). With [`Builder::nph`] the
//! program writes a complete HTTP response instead (RFC 3875 §5).
//!
//! RFC 3875 §6.3.1: "If an entity body is returned, the script MUST supply a Content-Type
//! field". A service that returns a body without one (hyper does not require it) gets one
//! named from the body's first bytes, by the WHATWG MIME Sniffing rules as Go's
//! `http.DetectContentType` applies them: `text/html; charset=utf-8` for markup,
//! `image/png`, `application/pdf`, … by signature, `text/plain; charset=utf-8` for text,
//! `application/octet-stream` for anything else. Set the header to choose. An empty body
//! needs none; an NPH response is plain HTTP and gets none.
//!
//! # Errors
//!
//! | what | outcome |
//! |---|---|
//! | no `REQUEST_METHOD` (run by hand) | one line on standard error saying so, nothing on standard output, exit status 1 |
//! | malformed `REQUEST_METHOD` or `CONTENT_LENGTH` (`abc`, `+5`, `-1`) | `400 Bad Request` and a log line |
//! | more request headers (`HTTP_*` variables) than [`Builder::max_headers`], or more bytes of them than [`Builder::max_header_bytes`] | `431 Request Header Fields Too Large` and a log line, however large the environment |
//! | a path and query that no URI can hold (64 KiB and more, encoded) | `414 URI Too Long` and a log line, never another route |
//! | standard input ends before `CONTENT_LENGTH` bytes | `400 Bad Request` and a log line, whatever the service answered, if the head is not written yet (see below); else the output ends, exit status 1 |
//! | `CONTENT_LENGTH` above [`Builder::max_body`] | `413 Content Too Large` |
//! | a chunked body (read to end-of-file) over [`Builder::max_body`] | `413 Content Too Large`, as for a short body |
//! | the service fails or panics before the head is written, or answers with a 1xx status (not a final response, RFC 9110 §15.2) | the [`ErrorResponse`] (500 by default) and a log line |
//! | the service's body fails or panics after the head | the output ends, a log line, exit status 1 |
//! | standard output is closed (the client went away) | exit status 1 |
//!
//! A short body is noticed when the body is read: [`RequestBody`] fills each frame (up to
//! 64 KiB, never past `CONTENT_LENGTH`) before handing it on, so a body of up to 64 KiB that
//! ends early fails on its first read, before the service can have written anything; the
//! body's failure is shared with the output, which then answers `400 Bad Request` in place
//! of the service's response or error (RFC 3875 §4.2: the request is malformed). Once the
//! head is out, the response can only be cut short.
//!
//! Log lines go to `tracing` when a subscriber is installed, else to standard error, which
//! web servers write to their error log.
//!
//! # Deploying
//!
//! Build in release mode and copy the binary into the server's CGI directory. A CGI program
//! starts once per request, so start-up time is the cost that matters. In `Cargo.toml`:
//!
//! ```toml
//! [profile.release]
//! lto = true
//! codegen-units = 1
//! ```
//!
//! and on Linux with glibc, link statically and without position-independent code, which
//! skips the dynamic loader and the start-up relocations (about 0.35 ms of a 0.9 ms
//! hello on our machines; `BENCHMARKS.md` has the figures):
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
//!     cargo build --release --target x86_64-unknown-linux-gnu
//! ```
//!
//! (`relocation-model=static` gives up address-space randomisation of the binary itself;
//! leave it out to keep that, at a small start-up cost. A musl target, where installed, is
//! static too.) `run` builds a current-thread runtime and reads and writes the standard
//! streams directly, with no threads started.
//!
//! lighttpd (`mod_cgi`), a complete configuration. `lighttpd -D -f lighttpd.conf` serves
//! every program in `/srv/cgi-bin/` at `/cgi-bin/NAME`, with the rest of the path as
//! `PATH_INFO` (`/cgi-bin/app/users/7` runs `app` with `PATH_INFO=/users/7`). This is,
//! byte for byte, the configuration the integration tests run lighttpd with (they put
//! temporary directories in place of `/srv`, `/var/log/lighttpd` and `/var/tmp`, and a
//! free port in place of 8080):
//!
//! ```text
//! server.document-root = "/srv/htdocs"
//! server.bind = "127.0.0.1"
//! server.port = 8080
//! server.errorlog = "/var/log/lighttpd/error.log"
//! # The programs' standard error, where towergate's log lines go:
//! server.breakagelog = "/var/log/lighttpd/cgi.log"
//! server.upload-dirs = ( "/var/tmp" )
//! # Send a streamed response as the program writes it, with backpressure:
//! server.stream-response-body = 2
//! server.modules += ( "mod_cgi", "mod_alias" )
//! alias.url += ( "/cgi-bin/" => "/srv/cgi-bin/" )
//! $HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ( "" => "" ) }
//! ```
//!
//! lighttpd reads the whole request body before it starts the program (its default
//! `server.stream-request-body = 0`), so a chunked upload arrives with an exact
//! `CONTENT_LENGTH`.
//!
//! Apache 2.4 (`mod_cgid`), a complete configuration with Debian's module paths.
//! `apache2 -DFOREGROUND -f httpd.conf` serves `/srv/cgi-bin/NAME` at `/cgi-bin/NAME`, with
//! the rest of the path as `PATH_INFO`; the programs run as `User` and their standard error
//! goes to the `ErrorLog`. This is, byte for byte, the configuration the integration tests
//! run Apache with (they put temporary directories in place of `/srv`, `/var/log/apache2`
//! and `/run/apache2`, and a free port in place of 8080):
//!
//! ```text
//! Listen 127.0.0.1:8080
//! ServerName localhost
//! User www-data
//! Group www-data
//! LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
//! LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
//! LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
//! LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so
//! ErrorLog "/var/log/apache2/error.log"
//! PidFile "/run/apache2/httpd.pid"
//! ScriptSock "/run/apache2/cgid.sock"
//! ScriptAlias "/cgi-bin/" "/srv/cgi-bin/"
//! <Directory "/srv/cgi-bin">
//!     Options +ExecCGI
//!     Require all granted
//!     # Pass the Authorization header only if the app authenticates itself:
//!     # CGIPassAuth On
//! </Directory>
//! ```
//!
//! nginx with fcgiwrap, which runs CGI programs for nginx over FastCGI. Start it with
//! (Debian's `fcgiwrap` package also provides it as a socket unit at this path):
//!
//! ```text
//! fcgiwrap -s unix:/run/fcgiwrap.socket
//! ```
//!
//! The programs' standard error, where towergate's log lines go, is fcgiwrap's own (its
//! `-f`, which sends it to nginx's error log instead, turned a panicking program's 500 into
//! fcgiwrap's own 502 in our tests); `-c N` runs `N` requests at a time (one by default).
//! Then a complete `server` block (in `http`, for example in `/etc/nginx/sites-enabled/`)
//! serving `/cgi-bin/NAME` as above, with the rest of the path as `PATH_INFO`. This is, byte
//! for byte, what the integration tests run nginx with (they put temporary paths in place of
//! `/srv` and the socket, and a free port in place of 8080):
//!
//! ```text
//! server {
//!     listen 127.0.0.1:8080;
//!     server_name example.com;
//!     location /cgi-bin/ {
//!         # /cgi-bin/NAME/rest runs /srv/cgi-bin/NAME with PATH_INFO=/rest:
//!         fastcgi_split_path_info ^(/cgi-bin/[^/]+)(.*)$;
//!         include /etc/nginx/fastcgi_params;
//!         fastcgi_param SCRIPT_FILENAME /srv$fastcgi_script_name;
//!         fastcgi_param PATH_INFO $fastcgi_path_info;
//!         # Send a streamed response as the program writes it:
//!         fastcgi_buffering off;
//!         gzip off;
//!         fastcgi_pass unix:/run/fcgiwrap.socket;
//!     }
//! }
//! ```
//!
//! `fastcgi_params` sets `SCRIPT_NAME` to the program's part of the path. nginx reads the
//! whole request body before it passes the request on (its default
//! `fastcgi_request_buffering on`), so a chunked upload arrives with an exact
//! `CONTENT_LENGTH`; `client_max_body_size` (1 MiB by default) bounds it. fcgiwrap writes
//! the whole body to the program before it reads any of the program's output, so a service
//! that answers while it is still reading (an echo that streams the body back) must not
//! write more than a pipe holds (64 KiB on Linux) before it has read its body, or both wait
//! until nginx's `fastcgi_read_timeout`.

mod body;
mod child;
mod error;

use std::future::poll_fn;
use std::io::{BufWriter, Read, Write};
use std::pin::pin;
use std::process::ExitCode;

use bytes::Bytes;
use http::{Request, Response, Version};
use tower_service::Service;

pub use body::{BodyError, RequestBody};
pub use error::Error;

pub(crate) use child::Reject;
#[cfg(feature = "fastcgi")]
pub(crate) use child::run_by_hand;
#[cfg(feature = "gateway")]
pub(crate) use child::{main as child_main, request_body};

use crate::environ::HeaderLimits;
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::ext::FullUri;
use crate::headers::HeadStyle;
use crate::panic::{catch_unwind, log};
use crate::respond::{
    Failure, Output, Responder, Rules, ServiceSource, WriteError, WriteTransport,
};
use crate::{BoxError, Environ};

/// Runs `service` as a CGI program with the default options; see [`Builder::run`].
pub fn run<S, B>(service: S) -> ExitCode
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Builder::new().run(service)
}

/// Serves the one request of this CGI process with the default options, on the caller's
/// runtime; see [`Builder::serve`].
pub async fn serve<S, B>(service: S) -> Result<(), Error>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Builder::new().serve(service).await
}

/// The options of a CGI program.
///
/// ```no_run
/// # let service = tower::service_fn(|_: http::Request<towergate::cgi::RequestBody>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// # });
/// use towergate::cgi::Builder;
///
/// let code = Builder::new()
///     .nph(true)
///     .server_software("example/1.0")
///     .max_body(10 * 1024 * 1024)
///     .run(service);
/// ```
#[derive(Clone, Debug)]
pub struct Builder<E = DefaultErrorResponse> {
    nph: bool,
    server_software: Bytes,
    full_path: bool,
    max_body: u64,
    limits: HeaderLimits,
    error_response: E,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The default options.
    pub fn new() -> Self {
        Builder {
            nph: false,
            server_software: Bytes::from_static(crate::SERVER_SOFTWARE.as_bytes()),
            full_path: false,
            max_body: u64::MAX,
            limits: HeaderLimits::default(),
            error_response: DefaultErrorResponse::new(),
        }
    }
}

impl<E: ErrorResponse> Builder<E> {
    /// Writes a complete HTTP response (status line, `Date`, `Server`) instead of a CGI
    /// header block, for servers that run the program as NPH ("non-parsed headers", RFC 3875
    /// §5; Apache runs programs named `nph-*` so). Without a known length the response says
    /// `Connection: close`, since the server passes the bytes through unframed. Defaults to
    /// false.
    pub fn nph(mut self, nph: bool) -> Self {
        self.nph = nph;
        self
    }

    /// The `Server` header of an NPH response, unless the service sets one; empty for none.
    /// Defaults to `towergate/VERSION`.
    pub fn server_software(mut self, software: impl Into<Bytes>) -> Self {
        self.server_software = software.into();
        self
    }

    /// Routes on the full path (`SCRIPT_NAME` + `PATH_INFO`, from `REQUEST_URI` when the
    /// server sets it) instead of the app-relative path (`PATH_INFO`). Defaults to false.
    pub fn full_path(mut self, full_path: bool) -> Self {
        self.full_path = full_path;
        self
    }

    /// The largest request body accepted: a larger `CONTENT_LENGTH` is answered with
    /// `413 Content Too Large` without calling the service, and a body read to end-of-file
    /// fails past it. Defaults to no limit (the web server's own limit applies).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The most request headers (`HTTP_*` meta-variables) accepted: more is answered with
    /// `431 Request Header Fields Too Large` and a log line, without calling the service.
    /// Defaults to [`MAX_HEADERS`](crate::environ::MAX_HEADERS) (1024).
    pub fn max_headers(mut self, count: usize) -> Self {
        self.limits.count = count;
        self
    }

    /// The most bytes of request headers (names and values of the `HTTP_*` meta-variables)
    /// accepted: more is answered with `431 Request Header Fields Too Large` and a log line.
    /// Defaults to [`MAX_HEADER_BYTES`](crate::environ::MAX_HEADER_BYTES) (1 MiB).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.limits.bytes = bytes;
        self
    }

    /// The response sent when the service fails or panics before its head is written
    /// (wsgiref's `error_status`, `error_headers` and `error_body`). Defaults to
    /// [`DefaultErrorResponse`].
    pub fn with_error_response<E2: ErrorResponse>(self, error_response: E2) -> Builder<E2> {
        Builder {
            nph: self.nph,
            server_software: self.server_software,
            full_path: self.full_path,
            max_body: self.max_body,
            limits: self.limits,
            error_response,
        }
    }

    /// Runs `service` as this process's CGI program: builds a current-thread runtime, serves
    /// the one request, and returns the exit status for `main` (success, or 1 with a line on
    /// standard error).
    pub fn run<S, B>(self, service: S) -> ExitCode
    where
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        child::main(|environ| {
            let (stdin, stdout) = child::std_streams();
            self.serve_with(service, environ, stdin, stdout)
        })
    }

    /// Serves the one request of this CGI process on the caller's runtime: the environ from
    /// [`Environ::from_env`], standard input and standard output.
    pub async fn serve<S, B>(self, service: S) -> Result<(), Error>
    where
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        let (stdin, stdout) = child::std_streams();
        self.serve_with(service, Environ::from_env(), stdin, stdout)
            .await
    }

    /// Serves one request described by `environ`, reading its body from `input` and writing
    /// the response to `output`, as a CGI program does with its standard streams. The
    /// environ's gateway keys are set as for CGI: `run_once` and `multiprocess` true,
    /// `multithread` false.
    pub async fn serve_with<S, B, R, W>(
        self,
        mut service: S,
        mut environ: Environ,
        input: R,
        output: W,
    ) -> Result<(), Error>
    where
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body,
        B::Error: Into<BoxError>,
        R: Read + Send + 'static,
        W: Write,
    {
        environ.set_run_once(true);
        environ.set_multiprocess(true);
        environ.set_multithread(false);
        let failure = Failure::default();
        let mut out = Output {
            transport: WriteTransport::new(BufWriter::with_capacity(16 * 1024, output)),
            // Until the request's version is known.
            style: self.style(Version::HTTP_11),
            rules: Rules {
                head_only: environ.get("REQUEST_METHOD") == Some(b"HEAD"),
                // RFC 3875 §6.3.1: a body needs a Content-Type (an NPH response is HTTP).
                content_type: !self.nph,
            },
            failure: None,
            traceback_limit: None,
            who: "service",
        };
        let request = match environ.into_request_limited(self.limits) {
            Ok(request) => request,
            Err(e) if e.is_missing_method() => return Err(Error::not_cgi()),
            Err(e) => {
                log(format_args!("bad request: {e}"));
                let head = Reject(e.status()).head(out.rules);
                return write_result(out.write_head(head));
            }
        };
        out.style = self.style(request.version());
        let (mut parts, ()) = request.into_parts();
        let input: Box<dyn Read + Send> = Box::new(input);
        let environ = parts.extensions.get::<Environ>();
        let body = match environ.map(|e| child::request_body(e, input, self.max_body, &failure)) {
            Some(Ok(body)) => body,
            None => RequestBody::empty(),
            Some(Err(reject)) => return write_result(out.write_head(reject.head(out.rules))),
        };
        out.failure = Some(failure);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        if self.full_path {
            if let Some(full) = parts.extensions.get::<FullUri>() {
                parts.uri = full.0.clone();
            }
        }
        let request = Request::from_parts(parts, body);

        let response = match catch_unwind(poll_fn(|cx| service.poll_ready(cx))).await {
            Ok(Ok(())) => catch_unwind(service.call(request)).await,
            Ok(Err(e)) => Ok(Err(e)),
            Err(panic) => Err(panic),
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return write_result(out.write_error(&self.error_response, &e.into())),
            Err(panic) => return write_result(out.write_error(&self.error_response, &panic)),
        };
        let responder = pin!(Responder::new(ServiceSource::new(response), out.rules));
        write_result(out.write(responder, &self.error_response).await)
    }

    /// How the head is written for a request of `version`.
    fn style(&self, version: Version) -> HeadStyle<'_> {
        if !self.nph {
            return HeadStyle::Cgi;
        }
        HeadStyle::Origin {
            http_version: if version <= Version::HTTP_10 {
                "1.0"
            } else {
                "1.1"
            },
            server_software: &self.server_software,
        }
    }
}

fn write_result(result: Result<(), WriteError>) -> Result<(), Error> {
    result.map_err(|e| match e {
        WriteError::Body(e) => Error::body(e),
        WriteError::Io(e) => Error::io(e),
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;
    use crate::ext::RequestExt;
    use http::StatusCode;

    fn get(path: &str) -> Environ {
        Environ::from_vars([
            ("REQUEST_METHOD", "GET".to_owned()),
            ("PATH_INFO", path.to_owned()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
        ])
    }

    async fn serve_text<S, B>(builder: Builder, service: S, environ: Environ) -> (String, bool)
    where
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        let mut out = Vec::new();
        let result = builder
            .serve_with(service, environ, std::io::empty(), &mut out)
            .await;
        (String::from_utf8(out).unwrap(), result.is_ok())
    }

    fn respond_with<B: Clone + Send + 'static>(
        response: Response<B>,
    ) -> impl Service<
        Request<RequestBody>,
        Response = Response<B>,
        Error = Infallible,
        Future = std::future::Ready<Result<Response<B>, Infallible>>,
    > {
        let (parts, body) = response.into_parts();
        tower::service_fn(move |_: Request<RequestBody>| {
            let mut response = Response::new(body.clone());
            *response.status_mut() = parts.status;
            *response.headers_mut() = parts.headers.clone();
            std::future::ready(Ok(response))
        })
    }

    fn failing() -> impl Service<
        Request<RequestBody>,
        Response = Response<String>,
        Error = BoxError,
        Future = std::future::Ready<Result<Response<String>, BoxError>>,
    > {
        tower::service_fn(|_: Request<RequestBody>| std::future::ready(Err("boom".into())))
    }

    const WSGIREF_500: &str = "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
        Content-Length: 59\r\n\r\nA server error occurred.  Please contact the administrator.";

    #[tokio::test]
    async fn statuses_without_a_body_get_no_length_and_no_body() {
        for status in [204, 304] {
            let response = Response::builder()
                .status(status)
                .body(String::from("dropped"))
                .unwrap();
            let (out, ok) = serve_text(Builder::new(), respond_with(response), get("/")).await;
            assert!(ok);
            let reason = StatusCode::from_u16(status).unwrap();
            assert_eq!(out, format!("Status: {reason}\r\n\r\n"));
        }
    }

    #[tokio::test]
    async fn an_empty_body_gets_content_length_zero() {
        let (out, _) = serve_text(
            Builder::new(),
            respond_with(Response::new(String::new())),
            get("/"),
        )
        .await;
        assert_eq!(out, "Status: 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[tokio::test]
    async fn a_length_set_by_the_service_is_kept() {
        let response = Response::builder()
            .header("content-length", "3")
            .body(String::from("abc"))
            .unwrap();
        let (out, _) = serve_text(Builder::new(), respond_with(response), get("/")).await;
        assert_eq!(
            out,
            "Status: 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nabc"
        );
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_gets_no_content_length() {
        let service = tower::service_fn(|_: Request<RequestBody>| async {
            let frames = futures_util::stream::iter(
                ["ab", "cd"].map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c)))),
            );
            Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
        });
        let (out, _) = serve_text(Builder::new(), service, get("/")).await;
        assert_eq!(
            out,
            "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nabcd"
        );
    }

    #[tokio::test]
    async fn a_failing_service_gets_wsgirefs_error_response() {
        let (out, ok) = serve_text(Builder::new(), failing(), get("/")).await;
        assert!(ok);
        assert_eq!(out, WSGIREF_500);
    }

    #[tokio::test]
    async fn a_head_request_gets_the_error_head_without_its_body() {
        let mut environ = get("/");
        environ.insert("REQUEST_METHOD", "HEAD");
        let (out, _) = serve_text(Builder::new(), failing(), environ).await;
        assert_eq!(
            out,
            "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 59\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn the_error_response_hook_builds_the_answer() {
        let builder = Builder::new().with_error_response(|e: &BoxError| {
            Response::builder()
                .status(503)
                .body(Bytes::from(format!("sorry: {e}")))
                .unwrap()
        });
        let mut out = Vec::new();
        builder
            .serve_with(failing(), get("/"), std::io::empty(), &mut out)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Status: 503 Service Unavailable\r\nContent-Length: 11\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsorry: boom"
        );
    }

    #[tokio::test]
    async fn a_body_that_fails_before_any_output_gets_the_error_response() {
        let service = tower::service_fn(|_: Request<RequestBody>| async {
            let frames = futures_util::stream::iter([Err::<http_body::Frame<Bytes>, BoxError>(
                "broken".into(),
            )]);
            Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
        });
        let (out, ok) = serve_text(Builder::new(), service, get("/")).await;
        assert!(ok);
        assert_eq!(out, WSGIREF_500);
    }

    #[tokio::test]
    async fn a_body_that_fails_after_output_cuts_the_response_short() {
        let service = tower::service_fn(|_: Request<RequestBody>| async {
            let frames = futures_util::stream::iter([
                Ok(http_body::Frame::data(Bytes::from("partial"))),
                Err::<http_body::Frame<Bytes>, BoxError>("broken".into()),
            ]);
            Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
        });
        let mut out = Vec::new();
        let err = Builder::new()
            .serve_with(service, get("/"), std::io::empty(), &mut out)
            .await
            .unwrap_err();
        assert!(err.is_body());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\npartial"
        );
    }

    #[tokio::test]
    async fn a_content_length_over_max_body_is_413_without_calling_the_service() {
        let mut environ = get("/");
        environ.insert("REQUEST_METHOD", "POST");
        environ.insert("CONTENT_LENGTH", "11");
        let (out, _) = serve_text(Builder::new().max_body(10), failing(), environ).await;
        assert_eq!(
            out,
            "Status: 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nContent Too Large\n"
        );
    }

    #[tokio::test]
    async fn an_invalid_method_is_400_and_a_missing_one_writes_nothing() {
        let mut environ = get("/");
        environ.insert("REQUEST_METHOD", "G T");
        let (out, _) = serve_text(Builder::new(), failing(), environ).await;
        assert!(out.starts_with("Status: 400 Bad Request\r\n"), "{out}");

        let mut out = Vec::new();
        let err = Builder::new()
            .serve_with(
                failing(),
                Environ::from_vars([("PATH_INFO", "/")]),
                std::io::empty(),
                &mut out,
            )
            .await
            .unwrap_err();
        assert!(err.is_not_cgi());
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn the_service_sees_cgi_gateway_keys_and_the_body() {
        let service = tower::service_fn(|request: Request<RequestBody>| async move {
            let environ = request.environ().unwrap();
            let keys = format!(
                "{} {} {}",
                environ.run_once(),
                environ.multiprocess(),
                environ.multithread()
            );
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{keys} {}",
                String::from_utf8_lossy(&body)
            )))))
        });
        let mut environ = get("/");
        environ.insert("REQUEST_METHOD", "POST");
        environ.insert("CONTENT_LENGTH", "4");
        let mut out = Vec::new();
        Builder::new()
            .serve_with(
                service,
                environ,
                std::io::Cursor::new(b"data and more"),
                &mut out,
            )
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Status: 200 OK\r\nContent-Length: 20\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ntrue true false data"
        );
    }

    #[tokio::test]
    async fn an_interim_status_is_a_service_error() {
        for status in [100, 101, 103] {
            let response = Response::builder()
                .status(status)
                .body(String::new())
                .unwrap();
            let (out, ok) = serve_text(Builder::new(), respond_with(response), get("/")).await;
            assert!(ok);
            assert_eq!(out, WSGIREF_500);
        }
    }

    #[tokio::test]
    async fn a_body_without_a_type_gets_one_sniffed_and_nph_does_not() {
        let response = Response::new(String::from("%PDF-1.7"));
        let (out, _) = serve_text(Builder::new(), respond_with(response.clone()), get("/")).await;
        assert_eq!(
            out,
            "Status: 200 OK\r\nContent-Length: 8\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7"
        );
        let (out, _) = serve_text(Builder::new().nph(true), respond_with(response), get("/")).await;
        assert!(!out.contains("Content-Type"), "{out}");
    }

    #[tokio::test]
    async fn the_header_limits_are_options() {
        let mut environ = get("/");
        environ.insert("HTTP_A", "1");
        environ.insert("HTTP_B", "2");
        let (out, _) = serve_text(Builder::new().max_headers(1), failing(), environ.clone()).await;
        assert!(
            out.starts_with("Status: 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        let (out, _) = serve_text(Builder::new().max_header_bytes(3), failing(), environ).await;
        assert!(
            out.starts_with("Status: 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_panicking_service_gets_the_error_response() {
        let service = tower::service_fn(|request: Request<RequestBody>| async move {
            if request.uri().path() == "/panic" {
                panic!("on purpose");
            }
            Ok::<_, Infallible>(Response::new(String::new()))
        });
        let (out, ok) = serve_text(Builder::new(), service, get("/panic")).await;
        assert!(ok);
        assert_eq!(out, WSGIREF_500);
    }
}
