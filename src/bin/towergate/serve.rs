//! `towergate serve`: static files and a cgi-bin directory over hyper.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower_http::services::ServeDir;
use tower_service::Service;
use towergate::BoxError;
use towergate::fastcgi::{Address, Client, PhpFiles};
use towergate::host::{CgiBin, ProgramOptions};

use crate::ServeArgs;
use crate::server::{self, text_response};

/// How long a program has between SIGTERM and SIGKILL (timeout, client gone, shutdown).
const KILL_GRACE: Duration = Duration::from_secs(3);

pub(crate) fn main(args: ServeArgs) -> ExitCode {
    init_tracing();
    let Some(runtime) = crate::runtime(true) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(serve(args));
    crate::shut_down(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("towergate serve: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines on standard error, `RUST_LOG` filtering (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    if !args.dir.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()).into());
    }
    let mut options = ProgramOptions::new()
        .timeout(Duration::from_secs(args.timeout))
        .grace(KILL_GRACE)
        .max_processes(args.max_processes)
        .slot_wait(args.slot_wait)
        .max_waiting(args.max_waiting)
        .body_timeout(args.body_timeout)
        .max_body(args.max_body)
        .spool_limit(args.spool_limit)
        .pass_authorization(args.pass_authorization);
    for name in &args.pass_env {
        options = options.inherit_env(name);
    }
    for (key, value) in &args.env {
        options = options.env(key, value);
    }
    let programs = options.shutdown_handle();
    let php = args
        .php
        .clone()
        .map(|address| (address, args.max_processes, args.max_waiting));
    let app = App::new(&args.dir, options, php);

    println!(
        "towergate: serving {}, CGI programs of {} at /cgi-bin/NAME",
        args.dir.display(),
        args.dir.join("cgi-bin").display(),
    );
    // At the end of a shutdown, every program still running (a request past the grace, or
    // one whose client went away) is ended and reaped before the process exits.
    let programs_ended = async move {
        let ended = tokio::time::timeout(KILL_GRACE * 2, programs.shutdown()).await;
        if ended.is_err() {
            tracing::warn!(target: "towergate::server", "programs still running at exit");
        }
    };
    server::run_with(&args.server, app, programs_ended).await
}

/// The whole server: programs under `/cgi-bin/`, static files elsewhere. A service for any
/// request body, so that a program's local redirect (`Location: /index.html`, RFC 3875
/// §6.2.2) is served by it too, static files included.
#[derive(Clone)]
struct App(Arc<Inner>);

struct Inner {
    cgi_bin: CgiBin,
    files: ServeDir,
    /// `--php ADDR`: `*.php` files through that FastCGI server, static files for the rest.
    php: Option<PhpFiles<ServeDir>>,
}

impl App {
    /// `php`: the FastCGI server's address, the most requests in flight to it and the most
    /// waiting for one of those slots.
    fn new(dir: &Path, options: ProgramOptions, php: Option<(Address, usize, usize)>) -> Self {
        App(Arc::new_cyclic(|app: &Weak<Inner>| {
            let options = options.local_redirect(LocalRedirect(app.clone()));
            let php = php.map(|(address, max, max_waiting)| {
                Client::new(address)
                    .options(options.clone())
                    .max_requests(max)
                    .max_waiting(max_waiting)
            });
            Inner {
                php: php.map(|client| PhpFiles::new(dir, client).fallback(ServeDir::new(dir))),
                cgi_bin: CgiBin::new(dir.join("cgi-bin"))
                    .mount("/cgi-bin")
                    .options(options),
                files: ServeDir::new(dir),
            }
        }))
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<B> Service<Request<B>> for App
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> BoxFuture {
        let path = request.uri().path();
        if path == "/cgi-bin" || path.starts_with("/cgi-bin/") {
            let mut cgi_bin = self.0.cgi_bin.clone();
            let response = cgi_bin.call(request);
            return Box::pin(async move { Ok(response.await?.map(Body::new)) });
        }
        if let Some(refused) = refuse_static(path) {
            return Box::pin(async move { Ok(text_response(refused)) });
        }
        if let Some(php) = &self.0.php {
            let response = php.clone().call(request);
            return Box::pin(async move { Ok(response.await?.map(Body::new)) });
        }
        let mut files = self.0.files.clone();
        let response = files.call(request);
        Box::pin(async move {
            Ok(match response.await {
                Ok(response) => response.map(Body::new),
                Err(error) => {
                    tracing::error!(target: "towergate::static", "static file error: {error}");
                    text_response(StatusCode::INTERNAL_SERVER_ERROR)
                }
            })
        })
    }
}

/// The server itself as the target of local redirects (a weak reference: the server owns
/// the cgi-bin service that holds this).
#[derive(Clone)]
struct LocalRedirect(Weak<Inner>);

impl Service<Request<String>> for LocalRedirect {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> BoxFuture {
        match self.0.upgrade() {
            Some(app) => App(app).call(request.map(Body::from)),
            None => Box::pin(async { Ok(text_response(StatusCode::SERVICE_UNAVAILABLE)) }),
        }
    }
}

/// Why a path outside `/cgi-bin/` is not served as a static file, if it is not.
///
/// The path is percent-decoded first, as the file service decodes it, and split at `/` and
/// `\`:
/// - a segment starting with `.` (`.env`, `.git/config`, `.htpasswd`, `%2Eenv`): 404, hidden
///   files are never served, as `CgiBin` never runs them;
/// - another spelling of `/cgi-bin/` (`/%63gi-bin/x`, `//cgi-bin/x`): 404, the programs'
///   source is never served.
fn refuse_static(path: &str) -> Option<StatusCode> {
    let decoded = if path.contains('%') {
        std::borrow::Cow::Owned(percent_decode(path.as_bytes()))
    } else {
        std::borrow::Cow::Borrowed(path.as_bytes())
    };
    let mut segments = decoded
        .split(|&b| b == b'/' || b == b'\\')
        .filter(|segment| !segment.is_empty());
    let hidden = segments.clone().any(|segment| segment.starts_with(b"."));
    let cgi_bin = segments
        .next()
        .is_some_and(|segment| segment.eq_ignore_ascii_case(b"cgi-bin"));
    (hidden || cgi_bin).then_some(StatusCode::NOT_FOUND)
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        if let (b'%', [h, l, after @ ..]) = (first, tail) {
            if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                out.push(h * 16 + l);
                rest = after;
                continue;
            }
        }
        out.push(first);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_refused_in_any_spelling() {
        for path in [
            "/.env",
            "/.git/config",
            "/a/.htpasswd",
            "/%2eenv",
            "/%2Egit/config",
            "/a%2F.env",
            "/a%5c.env",
            "/./index.html",
            "/%63gi-bin/x",
            "//cgi-bin/x",
            "/CGI-BIN/x",
        ] {
            assert_eq!(refuse_static(path), Some(StatusCode::NOT_FOUND), "{path}");
        }
        for path in ["/", "/index.html", "/a/b.c/d", "/env.", "/a%2e"] {
            assert_eq!(refuse_static(path), None, "{path}");
        }
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode(b"/%2e%zz%4"), b"/.%zz%4");
    }
}
