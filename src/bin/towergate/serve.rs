//! `towergate serve`: static files and a cgi-bin directory over hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tower_http::services::ServeDir;
use tower_service::Service;
use towergate::ext::ConnectInfo;
use towergate::host::{CgiBin, CgiProgram, ReasonPhrase};

use crate::ServeArgs;

/// How long in-flight requests get to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

struct App {
    cgi_bin: CgiBin,
    files: ServeDir,
}

pub(crate) fn main(args: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("towergate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("towergate serve: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), towergate::BoxError> {
    if !args.dir.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()).into());
    }
    let mut template = CgiProgram::default()
        .timeout(Duration::from_secs(args.timeout))
        .max_processes(args.max_processes)
        .pass_authorization(args.pass_authorization);
    for name in &args.pass_env {
        template = template.inherit_env(name);
    }
    for (key, value) in &args.env {
        template = template.env(key, value);
    }
    let app = Arc::new(App {
        cgi_bin: CgiBin::new(args.dir.join("cgi-bin"))
            .mount("/cgi-bin")
            .options(template),
        files: ServeDir::new(&args.dir),
    });

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let local = listener.local_addr()?;
    println!(
        "towergate: serving {} at http://{local}/ (CGI programs of {} at http://{local}/cgi-bin/NAME)",
        args.dir.display(),
        Path::new(&args.dir).join("cgi-bin").display(),
    );

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(app.clone(), request, remote, local)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection from {remote}: {error}");
            }
        });
    }
    println!("towergate: shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn handle(
    app: Arc<App>,
    mut request: Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    request.extensions_mut().insert(ConnectInfo {
        remote,
        local: Some(local),
    });
    let method = request.method().clone();
    let uri = request.uri().clone();
    let version = request.version();

    let path = request.uri().path();
    let response = if path == "/cgi-bin" || path.starts_with("/cgi-bin/") {
        let mut cgi_bin = app.cgi_bin.clone();
        let response = cgi_bin.call(request).await?;
        let (mut parts, body) = response.into_parts();
        // Send the program's own reason phrase (RFC 3875 §6.3.3).
        if let Some(reason) = parts.extensions.remove::<ReasonPhrase>() {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes()) {
                parts.extensions.insert(reason);
            }
        }
        Response::from_parts(parts, Body::new(body))
    } else if names_cgi_bin(path) {
        // Another spelling of /cgi-bin/ (`/%63gi-bin/x`, `//cgi-bin/x`, `/./cgi-bin/x`):
        // never serve the programs' source as static files.
        let mut response = Response::new(Body::from("404 Not Found\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    } else {
        let mut files = app.files.clone();
        match files.call(request).await {
            Ok(response) => response.map(Body::new),
            Err(error) => {
                tracing::error!("static file error: {error}");
                let mut response = Response::new(Body::from("500 Internal Server Error\n"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        }
    };
    tracing::info!(
        target: "towergate::access",
        "{} \"{} {} {:?}\" {} {:.1}ms",
        remote.ip(),
        method,
        uri,
        version,
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0,
    );
    Ok(response)
}

/// Whether a path's first real segment, percent-decoded, is `cgi-bin`.
fn names_cgi_bin(path: &str) -> bool {
    let decoded = percent_decode(path.as_bytes());
    decoded
        .split(|&b| b == b'/' || b == b'\\')
        .find(|segment| !segment.is_empty() && *segment != b".")
        .is_some_and(|segment| segment.eq_ignore_ascii_case(b"cgi-bin"))
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}
