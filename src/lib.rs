//! towergate bridges the gateway world (CGI meta-variables, stdin/stdout, gateway-style apps)
//! and the tower/hyper world (`http::Request`/`Response`, `tower::Service`, layers).
//!
//! # Run any tower service as a CGI program
//!
//! One call in `main` turns an axum `Router`, or any
//! [`Service<http::Request<_>>`](tower_service::Service), into a program that Apache, lighttpd,
//! nginx+fcgiwrap, OpenBSD httpd or busybox httpd can execute:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn main() -> std::process::ExitCode {
//!     let app = Router::new().route("/", get(|| async { "hello from axum over CGI" }));
//!     towergate::cgi::run(app)
//! }
//! ```
//!
//! The request body streams from standard input (exactly `CONTENT_LENGTH` bytes, RFC 3875
//! §4.2) and the response streams to standard output, flushed at every frame. Meta-variables
//! that `http` has no place for (`SCRIPT_NAME`, `PATH_INFO`, `REMOTE_ADDR`, …) are typed
//! values in the request's extensions: see [`ext`].
//!
//! # Modules
//!
//! - [`environ`]: [`Environ`], the ordered, lossless map of CGI meta-variables, its
//!   conversions to and from `http::Request` (RFC 3875 §4.1), and the `wsgiref.util` helpers.
//! - [`cgi`]: the CGI program side: [`cgi::run`], [`cgi::serve`] and [`cgi::Builder`].
//! - `fastcgi` (feature `fastcgi`): a tower service as a persistent FastCGI application
//!   behind nginx, Apache or lighttpd: `fastcgi::serve`, `fastcgi::run`, `fastcgi::Builder`;
//!   and `run`, which picks CGI or FastCGI by itself.
//! - [`ext`]: the typed request extensions and [`ext::RequestExt`].
//! - [`layer`]: tower layers so one app sees the same request under every transport:
//!   [`layer::MountLayer`] gives a natively served request what [`cgi::run`] gives it, and
//!   [`layer::ConnectInfoLayer`] the connection's addresses.
//! - [`gateway`]: gateway apps, the `environ` + `start_response` contract of PEP 3333
//!   ([`gateway::App`], [`gateway::app_fn`], [`gateway::blocking_app_fn`]).
//! - [`handler`]: the engine that runs a gateway app, Python's `wsgiref.handlers`
//!   ([`handler::CgiHandler`], [`handler::SimpleHandler`]).
//! - [`service`]: the bridges to tower and hyper: [`service::AppService`] (app → service) and
//!   [`service::ServiceApp`] (service → app).
//! - [`lint`]: [`lint::LintLayer`], checking an app's conformance like `wsgiref.validate`,
//!   or any tower service's responses against HTTP's rules.
//! - [`host`]: the CGI host: [`host::CgiProgram`] runs an external CGI program per request
//!   as a tower service (Go's `cgi.Handler`, with limits, timeouts and spooling), and
//!   [`host::CgiBin`] serves a cgi-bin directory.
//! - [`error_response`]: the hook that builds the response sent when a service fails
//!   before its head is written.
//! - [`headers`]: the hop-by-hop header names apps and programs must not send.
//!
//! # Feature flags
//!
//! - `cgi` (default): [`cgi`], the CGI program side. Pulls in `tokio` with the `rt` feature
//!   only.
//! - `gateway` (default): [`gateway`], [`handler`], [`service`] and [`lint`]. Implies `cgi`
//!   (a gateway app runs as a CGI program through the same entry); pulls in `tokio` with the
//!   `rt` and `sync` features only.
//! - `host` (default, Unix only): [`host`], running external CGI programs. Pulls in `tokio`
//!   (process, io-util, time, sync, fs) and `rustix` (to send `SIGTERM`).
//! - `fastcgi` (Unix only): `fastcgi` and `run`, a tower service as a FastCGI application.
//!   Pulls in `tokio` (multi-threaded runtime, net, io-util, sync, time, signal) and `rustix`
//!   (to look at descriptor 0).
//! - `cli`: the `towergate` command-line tool (Unix only).
//! - `axum`: reads axum's `ConnectInfo` for the connection's addresses (an axum server built
//!   with `into_make_service_with_connect_info::<SocketAddr>()` needs no glue), makes
//!   [`ext::ConnectInfo`] usable as axum's connect info, and lets [`layer::MountLayer`]
//!   under axum's `nest_service` read the full path from `OriginalUri`. Pulls in `axum` with
//!   its `tokio`, `http1` and `original-uri` features.
//!
//! # Platforms
//!
//! Everything but the CGI host and the FastCGI application builds on every platform Rust and
//! tokio support, Windows included. [`host`] and the `towergate` command run programs as Unix
//! processes (process groups, signals), and `fastcgi` serves Unix listening sockets handed
//! over on descriptor 0: they are built on Unix only (Linux, macOS, the BSDs); on other
//! targets the `host` and `fastcgi` features build nothing.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(feature = "cgi")]
pub mod cgi;
pub mod environ;
pub mod error_response;
pub mod ext;
#[cfg(all(unix, feature = "fastcgi"))]
pub mod fastcgi;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod handler;
// The crate-private helpers of `headers` and `panic` serve several features; a build with
// only some of them leaves the others' helpers unused.
#[cfg_attr(
    not(all(unix, feature = "cgi", feature = "gateway", feature = "host")),
    allow(dead_code, unused_imports)
)]
pub mod headers;
#[cfg(all(unix, feature = "host"))]
pub mod host;
pub mod layer;
#[cfg(feature = "gateway")]
pub mod lint;
#[cfg_attr(
    not(all(unix, feature = "cgi", feature = "gateway", feature = "host")),
    allow(dead_code, unused_imports)
)]
mod panic;
mod percent;
#[cfg(feature = "python")]
pub mod python;
// The handler family (feature `gateway`) uses the whole engine; the CGI program alone, part.
#[cfg(feature = "cgi")]
#[cfg_attr(not(feature = "gateway"), allow(dead_code, unreachable_pub))]
mod respond;
#[cfg(feature = "gateway")]
pub mod service;

pub use environ::Environ;

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The value of `SERVER_SOFTWARE` that towergate announces by default: `towergate/VERSION`.
pub const SERVER_SOFTWARE: &str = concat!("towergate/", env!("CARGO_PKG_VERSION"));

/// Runs `service` under whichever gateway started the program: as a FastCGI application
/// ([`fastcgi::run`]) when descriptor 0 is a listening socket (Apache `mod_fcgid`, lighttpd
/// `bin-path`, spawn-fcgi, systemd socket activation), else as a CGI program
/// ([`cgi::run`], its one-line message when run by hand included). One binary then serves
/// any web server, either way.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// fn main() -> std::process::ExitCode {
///     let app = Router::new().route("/", get(|| async { "hello over CGI or FastCGI" }));
///     towergate::run(app)
/// }
/// ```
#[cfg(all(unix, feature = "fastcgi"))]
pub fn run<S, B>(service: S) -> std::process::ExitCode
where
    S: tower_service::Service<http::Request<fastcgi::RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if fastcgi::started_as_fastcgi() {
        fastcgi::run(service)
    } else {
        cgi::run(fastcgi::FromCgi(service))
    }
}

/// The README's Rust snippets, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
