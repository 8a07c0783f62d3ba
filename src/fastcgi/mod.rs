//! Run a tower service as a FastCGI application (FastCGI 1.0 specification).
//!
//! A CGI program starts once per request; a FastCGI application starts once and serves
//! request after request over sockets from the web server (nginx `fastcgi_pass`, Apache
//! `mod_proxy_fcgi` and `mod_fcgid`, lighttpd `mod_fastcgi`). [`serve`] serves a listener
//! the program bound itself; [`run`] serves the listening socket a process manager
//! (spawn-fcgi, `mod_fcgid`, lighttpd `bin-path`, systemd) put on descriptor 0. And
//! [`crate::run`] picks CGI or FastCGI by itself, so one binary serves either way:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn main() -> std::process::ExitCode {
//!     let app = Router::new().route("/", get(|| async { "Hello, world!" }));
//!     towergate::run(app)
//! }
//! ```
//!
//! A service can also be served on a listener of its own, with options:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use towergate::fastcgi;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let service = tower::service_fn(|request: http::Request<fastcgi::RequestBody>| async move {
//!     Ok::<_, Infallible>(http::Response::new(format!("you asked for {}", request.uri())))
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! fastcgi::Builder::new()
//!     .max_connections(256)
//!     .serve(listener, service)
//!     .await
//! # }
//! ```
//!
//! and one connection over any byte stream, which is how it is tested without a web server:
//!
//! ```
//! use std::convert::Infallible;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use towergate::fastcgi;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let service = tower::service_fn(|request: http::Request<fastcgi::RequestBody>| async move {
//!     Ok::<_, Infallible>(http::Response::new(format!("you asked for {}", request.uri())))
//! });
//! let (mut web_server, app) = tokio::io::duplex(64 * 1024);
//! tokio::spawn(fastcgi::Builder::new().serve_connection(app, service));
//!
//! // BEGIN_REQUEST (Responder, no FCGI_KEEP_CONN), PARAMS, their end, STDIN's end.
//! let mut wire = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
//! let params = b"\x0e\x03REQUEST_METHODGET\x09\x02PATH_INFO/a";
//! wire.extend([1, 4, 0, 1, 0, params.len() as u8, 0, 0]);
//! wire.extend(params);
//! wire.extend([1, 4, 0, 1, 0, 0, 0, 0, 1, 5, 0, 1, 0, 0, 0, 0]);
//! web_server.write_all(&wire).await.unwrap();
//!
//! let mut answer = Vec::new();
//! web_server.read_to_end(&mut answer).await.unwrap();
//! let text = String::from_utf8_lossy(&answer);
//! assert!(text.contains(
//!     "Status: 200 OK\r\nContent-Length: 16\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nyou asked for /a"
//! ));
//! // The application's END_REQUEST ends the answer, then it closes the connection.
//! assert!(answer.ends_with(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
//! # }
//! ```
//!
//! # The protocol
//!
//! - BEGIN_REQUEST with the Responder role (§6.2) runs the service; the Authorizer role
//!   (§6.3) too, with no body and [`Role::Authorizer`] in the request's extensions; the
//!   Filter role is answered `FCGI_UNKNOWN_ROLE` (§5.5).
//! - PARAMS become the request's [`Environ`](crate::Environ), as bytes, and the request is
//!   built from it exactly as under CGI ([`Environ::into_request`](crate::Environ::into_request),
//!   the same typed extensions in [`crate::ext`]). The environ says `multithread` true,
//!   `multiprocess` and `run_once` false.
//! - STDIN streams into the [`RequestBody`]: exactly `CONTENT_LENGTH` bytes (RFC 3875
//!   §4.2); with no `CONTENT_LENGTH`, the stream to its end (Apache `mod_proxy_fcgi` sends a
//!   chunked body that way); with an empty one (nginx on `GET`), no body. Each request holds
//!   at most [`Builder::request_buffer`] unread bytes: while its buffer is full the
//!   connection waits, for at most [`Builder::stdin_timeout`].
//! - The response is written as STDOUT records (at most 65535 bytes each, padded to 8) as
//!   the service produces it: a CGI header block (`Status: NNN Reason`, RFC 3875 §6.3), then
//!   the body. The rules are those of [`crate::cgi`]: the head waits for the first non-empty
//!   chunk; `Content-Length` when the length is known; no body for `HEAD`, 1xx, 204 and 304;
//!   a `Content-Type` sniffed from the first bytes when the service gave none (RFC 3875
//!   §6.3.1 requires one); the [`ErrorResponse`] (500) when the service fails or panics
//!   before the head, and a cut response (END_REQUEST with application status 1) after.
//! - END_REQUEST ends each request with `FCGI_REQUEST_COMPLETE`; ABORT_REQUEST cancels the
//!   request's future and body and ends it. Without `FCGI_KEEP_CONN` the connection closes
//!   after its request (§3.5).
//! - Requests are multiplexed: each runs as its own task, so a slow request never holds up
//!   the others on its connection, up to [`Builder::max_requests`] per connection.
//! - GET_VALUES is answered with the truth: `FCGI_MAX_CONNS` ([`Builder::max_connections`]),
//!   `FCGI_MAX_REQS` (connections × requests per connection), `FCGI_MPXS_CONNS` (§4.1). An
//!   unknown management record is answered with UNKNOWN_TYPE (§4.2).
//!
//! # Errors
//!
//! | what | outcome |
//! |---|---|
//! | a record of another version, a BEGIN_REQUEST body that is not 8 bytes, a record cut short by the end of the connection | a log line; the connection closes and its requests are cancelled |
//! | a record for a request id that is not in flight (or a second BEGIN_REQUEST for one) | a log line; the record is ignored |
//! | PARAMS over [`Builder::max_params`] | `431 Request Header Fields Too Large` |
//! | name-value pairs whose lengths run past their stream, a malformed `REQUEST_METHOD` or `CONTENT_LENGTH` | `400 Bad Request` |
//! | STDIN ends before `CONTENT_LENGTH` bytes | `400 Bad Request` if the head is not written yet |
//! | more requests on a connection than [`Builder::max_requests`] | END_REQUEST `FCGI_OVERLOADED` (`FCGI_CANT_MPX_CONN` when the limit is 1) |
//! | more connections than [`Builder::max_connections`] | they wait in the listener's backlog |
//! | a request that does not read its full buffer within [`Builder::stdin_timeout`] | a log line; the request is ended |
//! | a web server that reads nothing for [`Builder::write_timeout`] | a log line; the connection closes |
//!
//! Log lines go to `tracing` when a subscriber is installed, else to standard error (which
//! `mod_fcgid` and spawn-fcgi leave to the web server's error log or the terminal).
//!
//! # Deploying
//!
//! Each configuration below is, byte for byte, what the integration tests run (they put
//! temporary directories in place of `/srv`, `/var/log/…` and `/run/…`, free ports in place
//! of 8080 and 9000, and `cgi_axum`, the example, as the app).
//!
//! ## nginx, with a keep-alive upstream
//!
//! The app listens on 127.0.0.1:9000 (or a Unix socket: `server unix:/run/app.sock;`),
//! started by systemd or spawn-fcgi (below). nginx keeps up to 8 idle connections open to
//! it (`keepalive`), and `fastcgi_keep_conn on` asks the app to keep them:
//!
//! ```text
//! upstream app {
//!     server 127.0.0.1:9000;
//!     keepalive 8;
//! }
//! server {
//!     listen 127.0.0.1:8080;
//!     server_name example.com;
//!     location /app/ {
//!         # /app/rest is the app's /rest, with SCRIPT_NAME=/app:
//!         fastcgi_split_path_info ^(/app)(/.*)$;
//!         include /etc/nginx/fastcgi_params;
//!         fastcgi_param PATH_INFO $fastcgi_path_info;
//!         fastcgi_keep_conn on;
//!         # Send a streamed response as the app writes it:
//!         fastcgi_buffering off;
//!         fastcgi_pass app;
//!     }
//! }
//! ```
//!
//! nginx reads the whole request body before it passes the request on (its default
//! `fastcgi_request_buffering on`), so a chunked upload arrives with an exact
//! `CONTENT_LENGTH`; `client_max_body_size` (1 MiB by default) bounds it. nginx stops
//! sending the request body once the app's response head has arrived (it closes the body it
//! spooled), so a service that answers while it is still reading (an echo that streams the
//! body back) gets only what was in flight: past a few megabytes the request stalls until
//! `fastcgi_read_timeout`. Read the whole body before answering behind nginx.
//!
//! **Spreading load over machines:** list several backends in the upstream, each a
//! machine running the app on its own address; nginx balances requests over them and,
//! when one stops (a refused or reset connection), sends the requests it can retry (those
//! not sent yet, and idempotent ones: `fastcgi_next_upstream error timeout`, the default)
//! to another. The tests run two backends on 127.0.0.2 and 127.0.0.3 and stop one mid-run:
//!
//! ```text
//! upstream app {
//!     server 127.0.0.2:9000;
//!     server 127.0.0.3:9000;
//!     keepalive 8;
//! }
//! ```
//!
//! ## systemd socket activation
//!
//! systemd binds the socket and starts the app with it on descriptor 0 at the first
//! connection (the tests bind the socket themselves and start the app the same way):
//!
//! ```text
//! # /etc/systemd/system/app.socket
//! [Socket]
//! ListenStream=127.0.0.1:9000
//!
//! [Install]
//! WantedBy=sockets.target
//!
//! # /etc/systemd/system/app.service
//! [Service]
//! ExecStart=/srv/app
//! StandardInput=socket
//! StandardOutput=journal
//! StandardError=journal
//! ```
//!
//! `systemctl stop app` sends `SIGTERM`: the app stops accepting, finishes the requests in
//! flight within the [`Builder::grace`] (30 seconds; systemd's `TimeoutStopSec` is 90 by
//! default), and exits.
//!
//! ## spawn-fcgi
//!
//! spawn-fcgi binds the socket, puts it on descriptor 0 and execs the app (`-n`: in the
//! foreground, for a supervisor). The tests put nginx, as above, in front of:
//!
//! ```text
//! spawn-fcgi -n -s /run/app.sock -- /srv/app
//! ```
//!
//! ## lighttpd (`mod_fastcgi`)
//!
//! lighttpd starts the app itself (`bin-path`) with its socket on descriptor 0, and serves
//! `/app/rest` as the app's `/rest` with `SCRIPT_NAME=/app`. lighttpd does not set
//! `FCGI_KEEP_CONN`, so each request has a connection of its own:
//!
//! ```text
//! server.document-root = "/srv/htdocs"
//! server.bind = "127.0.0.1"
//! server.port = 8080
//! server.errorlog = "/var/log/lighttpd/error.log"
//! server.upload-dirs = ( "/var/tmp" )
//! # Send a streamed response as the app writes it, with backpressure:
//! server.stream-response-body = 2
//! server.modules += ( "mod_fastcgi" )
//! fastcgi.server = ( "/app" => ((
//!     "bin-path" => "/srv/app",
//!     "socket" => "/run/lighttpd/app.sock",
//!     "check-local" => "disable",
//!     "max-procs" => 1,
//! )))
//! ```
//!
//! ## Apache 2.4 (`mod_proxy_fcgi`)
//!
//! Apache passes `/app/` to the app listening on 127.0.0.1:9000 (started as for nginx),
//! reusing connections (`enablereuse=on` sets `FCGI_KEEP_CONN`). `mod_proxy_fcgi` sets
//! `SCRIPT_NAME` to the whole path and no `PATH_INFO`; the two `ProxyFCGISetEnvIf` lines set
//! them as CGI has them. A chunked request body is streamed with no `CONTENT_LENGTH`:
//!
//! ```text
//! Listen 127.0.0.1:8080
//! ServerName localhost
//! User www-data
//! Group www-data
//! LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
//! LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
//! LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
//! LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
//! ErrorLog "/var/log/apache2/error.log"
//! PidFile "/run/apache2/httpd.pid"
//! ProxyPass "/app/" "fcgi://127.0.0.1:9000/" enablereuse=on
//! <Location "/app/">
//!     ProxyFCGISetEnvIf "%{REQUEST_URI} =~ m#^/app(/.*)#" PATH_INFO "$1"
//!     ProxyFCGISetEnvIf "true" SCRIPT_NAME "/app"
//! </Location>
//! ```
//!
//! ## Apache 2.4 (`mod_fcgid`)
//!
//! `mod_fcgid` (Debian's `libapache2-mod-fcgid`) starts the app itself, as `User`, with a
//! Unix socket on descriptor 0, and sends it one request at a time. The app's standard
//! error goes to the `ErrorLog`:
//!
//! ```text
//! Listen 127.0.0.1:8080
//! ServerName localhost
//! User www-data
//! Group www-data
//! LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
//! LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
//! LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
//! LoadModule fcgid_module /usr/lib/apache2/modules/mod_fcgid.so
//! ErrorLog "/var/log/apache2/error.log"
//! PidFile "/run/apache2/httpd.pid"
//! FcgidIPCDir "/run/apache2/fcgid"
//! FcgidProcessTableFile "/run/apache2/fcgid_shm"
//! # Request bodies up to 1 GiB (the default is 128 KiB):
//! FcgidMaxRequestLen 1073741824
//! Alias "/app" "/srv/fcgi-bin/app"
//! <Directory "/srv/fcgi-bin">
//!     SetHandler fcgid-script
//!     Options +ExecCGI
//!     Require all granted
//! </Directory>
//! ```

mod body;
mod connection;
mod listener;
// Some of the codec serves only the client side.
#[allow(dead_code)]
pub(crate) mod record;
mod respond;
// The client side (fcgi-client): it reads responses with the CGI host's parser.
#[cfg(feature = "host")]
mod client;
#[cfg(feature = "host")]
mod php;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

pub use body::{BodyError, RequestBody};
#[cfg(feature = "host")]
pub use client::{Address, AddressError, Client};
pub use listener::Listener;
#[cfg(feature = "host")]
pub use php::{NotFound, PhpFiles};

use crate::BoxError;
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::panic::log;

/// How long [`Builder::run`] waits, once its server has stopped, for blocking work still
/// running before it exits anyway.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// The role the web server asked the application to play for a request (FastCGI §6), in
/// the request's extensions.
///
/// A Responder answers the request; an Authorizer answers `200 OK` to let the request
/// through (its `Variable-NAME` headers become meta-variables of the request the web server
/// then serves) or any other status to refuse it. The Filter role is refused with
/// `FCGI_UNKNOWN_ROLE`.
///
/// ```
/// use towergate::fastcgi::Role;
///
/// fn is_authorizer(request: &http::Request<()>) -> bool {
///     request.extensions().get::<Role>() == Some(&Role::Authorizer)
/// }
/// assert!(!is_authorizer(&http::Request::new(())));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// `FCGI_RESPONDER`: the application answers the request (FastCGI §6.2).
    Responder,
    /// `FCGI_AUTHORIZER`: the application decides whether the web server serves the request
    /// (FastCGI §6.3). The request has no body.
    Authorizer,
}

/// Serves FastCGI connections from `listener` with the default options until the process
/// ends; see [`Builder::serve`].
pub async fn serve<S, B>(listener: impl Into<Listener>, service: S) -> std::io::Result<()>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Builder::new().serve(listener, service).await
}

/// Runs `service` as a FastCGI application on the listening socket that the process
/// manager put on descriptor 0, with the default options; see [`Builder::run`].
pub fn run<S, B>(service: S) -> ExitCode
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Builder::new().run(service)
}

/// Options of a FastCGI application.
///
/// ```
/// use std::time::Duration;
///
/// let builder = towergate::fastcgi::Builder::new()
///     .max_connections(256)
///     .max_requests(1)
///     .grace(Duration::from_secs(5));
/// # drop(builder);
/// ```
#[derive(Clone, Debug)]
pub struct Builder<E = DefaultErrorResponse> {
    pub(crate) max_connections: usize,
    pub(crate) max_requests: usize,
    pub(crate) max_params: usize,
    pub(crate) request_buffer: usize,
    pub(crate) stdin_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) error_response: E,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// The default options (each setter says its default).
    pub fn new() -> Self {
        Builder {
            max_connections: 1024,
            max_requests: 64,
            max_params: 128 * 1024,
            request_buffer: 256 * 1024,
            stdin_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            error_response: DefaultErrorResponse::new(),
        }
    }
}

impl<E> Builder<E>
where
    E: ErrorResponse + Send + Sync + 'static,
{
    /// The most connections served at once; more wait in the listener's backlog until one
    /// ends. Announced as `FCGI_MAX_CONNS` (FastCGI §4.1). Defaults to 1024.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The most requests in flight on one connection (multiplexing, FastCGI §3.3); one
    /// more is refused with `FCGI_OVERLOADED`, or `FCGI_CANT_MPX_CONN` when the limit is 1.
    /// `FCGI_MAX_REQS` is announced as this times [`max_connections`](Self::max_connections)
    /// and `FCGI_MPXS_CONNS` as 1 when it is above 1. Defaults to 64.
    pub fn max_requests(mut self, max: usize) -> Self {
        self.max_requests = max.max(1);
        self
    }

    /// The most bytes of PARAMS (the request's meta-variables, encoded) one request may
    /// send; a request over it is answered `431 Request Header Fields Too Large`. Defaults
    /// to 128 KiB.
    pub fn max_params(mut self, max: usize) -> Self {
        self.max_params = max;
        self
    }

    /// The most request body bytes held for one request while its service has not read
    /// them (rounded up to whole 64 KiB records); when it is full the connection stops
    /// reading from the web server until the service reads. Defaults to 256 KiB.
    pub fn request_buffer(mut self, bytes: usize) -> Self {
        self.request_buffer = bytes;
        self
    }

    /// How long a full request buffer may wait for its service to read before the request
    /// is ended (its body fails, END_REQUEST is sent), so that one request that does not
    /// read its body holds up the others on its connection for no longer. Defaults to 60
    /// seconds.
    pub fn stdin_timeout(mut self, timeout: Duration) -> Self {
        self.stdin_timeout = timeout;
        self
    }

    /// How long a write to the web server may wait (it stopped reading) before the
    /// connection is closed and its requests cancelled. Defaults to 60 seconds.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// On shutdown, how long in-flight requests may take to finish before they are
    /// cancelled. Defaults to 30 seconds.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The response sent when the service fails or panics before the head is written
    /// (a 500 like wsgiref's by default; see [`ErrorResponse`]).
    pub fn with_error_response<E2>(self, error_response: E2) -> Builder<E2>
    where
        E2: ErrorResponse + Send + Sync + 'static,
    {
        Builder {
            max_connections: self.max_connections,
            max_requests: self.max_requests,
            max_params: self.max_params,
            request_buffer: self.request_buffer,
            stdin_timeout: self.stdin_timeout,
            write_timeout: self.write_timeout,
            grace: self.grace,
            error_response,
        }
    }

    /// Runs `service` as a FastCGI application on descriptor 0, the listening socket that
    /// Apache `mod_fcgid`, lighttpd (`bin-path`), spawn-fcgi or systemd
    /// (`StandardInput=socket`) hand it, until `SIGTERM` or `SIGINT`: then it stops
    /// accepting, lets in-flight requests finish within the [`grace`](Self::grace), and
    /// exits with status 0. Blocking work still running then (`spawn_blocking` tasks, a
    /// blocking gateway app's iterator) gets one more second, and is abandoned after it.
    ///
    /// Run by hand (descriptor 0 is not a listening socket), it writes one line saying so on
    /// standard error and exits with status 1. Requests run on a multi-threaded runtime.
    pub fn run<S, B>(self, service: S) -> ExitCode
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let listener = match listener::from_stdin() {
            Ok(Some(listener)) => listener,
            Ok(None) => {
                return crate::cgi::run_by_hand(format_args!(
                    "this is a FastCGI application: a process manager (spawn-fcgi, Apache mod_fcgid, lighttpd) starts it with a listening socket on descriptor 0, and descriptor 0 is not one"
                ));
            }
            Err(e) => {
                log(format_args!("FastCGI: descriptor 0: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                log(format_args!("cannot start the async runtime: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let served = runtime.block_on(async move {
            let listener = listener.into_tokio()?;
            self.serve_with_shutdown(listener, service, terminated())
                .await
        });
        // Blocking work still running (a `spawn_blocking` task, a file read stuck on a
        // hung file system) would hold a dropped runtime, and so the exit, forever.
        runtime.shutdown_timeout(EXIT_WAIT);
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log(format_args!("FastCGI: {e}"));
                ExitCode::FAILURE
            }
        }
    }

    /// Serves FastCGI connections from `listener` until accepting fails for good (not for
    /// a passing lack of descriptors or memory, which is logged and waited out).
    pub async fn serve<S, B>(self, listener: impl Into<Listener>, service: S) -> std::io::Result<()>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(listener, service, std::future::pending())
            .await
    }

    /// Serves FastCGI connections from `listener` until `signal` completes: then it stops
    /// accepting, closes idle connections, lets in-flight requests finish within the
    /// [`grace`](Self::grace) and cancels the rest.
    pub async fn serve_with_shutdown<S, B, F>(
        self,
        listener: impl Into<Listener>,
        service: S,
        signal: F,
    ) -> std::io::Result<()>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        F: Future<Output = ()>,
    {
        let listener = listener.into();
        let grace = self.grace;
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let options = Arc::new(self);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        let result = loop {
            tokio::select! {
                () = &mut signal => break Ok(()),
                Some(_) = connections.join_next() => {}
                accepted = listener.accept(&slots) => match accepted {
                    Ok((slot, reader, writer)) => {
                        let service = service.clone();
                        let options = options.clone();
                        let shutdown = shutdown.clone();
                        connections.spawn(async move {
                            connection::serve(reader, writer, service, options, shutdown).await;
                            drop(slot);
                        });
                    }
                    Err(e) if listener::is_transient(&e) => {
                        log(format_args!("FastCGI: accepting a connection failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => break Err(e),
                },
            }
        };
        drop(listener);
        let _ = shutdown_tx.send(true);
        let finished = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            log(format_args!(
                "FastCGI: {} connections still busy after the grace of {grace:?}: cancelling them",
                connections.len()
            ));
            connections.shutdown().await;
        }
        result
    }

    /// Serves one connection (any byte stream: a socket accepted elsewhere, or an in-memory
    /// pipe in a test) until the web server closes it, or until a request without
    /// `FCGI_KEEP_CONN` is answered.
    pub async fn serve_connection<IO, S, B>(self, io: IO, service: S)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (reader, writer) = tokio::io::split(io);
        let (_shutdown_tx, shutdown) = watch::channel(false);
        connection::serve(reader, writer, service, Arc::new(self), shutdown).await;
    }
}

/// Completes at the first `SIGTERM` or `SIGINT`.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log(format_args!(
            "FastCGI: cannot listen for SIGTERM; running until killed"
        ));
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A service of [`RequestBody`] requests serving CGI requests, for [`crate::run`].
#[derive(Clone, Debug)]
pub(crate) struct FromCgi<S>(pub(crate) S);

impl<S> Service<Request<crate::cgi::RequestBody>> for FromCgi<S>
where
    S: Service<Request<RequestBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<crate::cgi::RequestBody>) -> S::Future {
        self.0.call(request.map(RequestBody::from))
    }
}

/// True when descriptor 0 is a listening socket: the program was started as a FastCGI
/// application (php-cgi and Go's `net/http/fcgi` decide the same way).
pub(crate) fn started_as_fastcgi() -> bool {
    listener::stdin_is_listening()
}
/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing` only).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzz {
    use bytes::BytesMut;

    use super::record::{
        BeginRequest, Decoder, EndRequest, RecordType, decode_pairs, encode_record,
        parse_unknown_type,
    };

    /// Decodes `data` as a record stream fed in pieces of `step` bytes: every record
    /// decodes, re-encodes to the same record, and its body parses or is refused, without
    /// a panic and without the buffer growing past one record. A body of name-value pairs
    /// becomes the environ that [`Environ::from_vars`](crate::Environ::from_vars) makes of
    /// them, or an error when they do not decode.
    pub fn records(data: &[u8], step: usize) {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let step = step.max(1);
        let mut records = Vec::new();
        for piece in data.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) => records.push(record),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            assert!(buf.len() <= Decoder::MAX_RECORD_LEN + step);
        }
        let _ = decoder.decode_eof(&mut buf);
        for record in records {
            let mut again = BytesMut::new();
            encode_record(&mut again, record.kind, record.request_id, &record.content);
            let decoded = Decoder::new().decode_eof(&mut again);
            assert_eq!(decoded, Ok(Some(record.clone())));
            match record.kind {
                RecordType::BeginRequest => drop(BeginRequest::parse(&record.content)),
                RecordType::EndRequest => drop(EndRequest::parse(&record.content)),
                RecordType::UnknownType => drop(parse_unknown_type(&record.content)),
                _ => params(&record.content),
            }
        }
    }

    fn params(content: &bytes::Bytes) {
        let environ = super::connection::environ_from_pairs(content);
        match decode_pairs(content).collect::<Result<Vec<_>, _>>() {
            Ok(pairs) => {
                let environ = environ.expect("pairs that decode make an environ");
                let want = crate::Environ::from_vars(pairs);
                assert!(environ.iter().eq(want.iter()));
                assert_eq!(environ.url_scheme(), want.url_scheme());
            }
            Err(_) => assert!(environ.is_err()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_point_takes_any_bytes() {
        let mut wire = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
        wire.extend_from_slice(&[1, 4, 0, 1, 0, 3, 5, 0, 0x80, 0, 0]);
        wire.extend_from_slice(&[0; 5]);
        // PARAMS A=1, A=2: one variable, the last value.
        wire.extend_from_slice(&[1, 4, 0, 1, 0, 8, 0, 0, 1, 1, b'A', b'1', 1, 1, b'A', b'2']);
        wire.extend_from_slice(&[1, 4, 0, 1, 0xff, 0xff, 0xff]);
        for step in [0, 1, 3, 8, 255] {
            super::fuzz::records(&wire, step);
            super::fuzz::records(&[2, 0, 0], step);
        }
    }
}
