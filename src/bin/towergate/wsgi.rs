//! `towergate wsgi MODULE:APP`: a Python WSGI app (Flask, Django, …) served over HTTP/1.1
//! and HTTP/2, the gunicorn-style command. Exists when the binary is built with the
//! `python` feature.

use std::path::PathBuf;
use std::process::ExitCode;

use axum::Router;
use tower_http::services::ServeDir;
use towergate::python::{DEFAULT_THREADS, WsgiApp};
use towergate::service::AppService;

use self::server::ServerArgs;

/// `towergate wsgi`.
#[derive(Debug, clap::Args)]
pub(crate) struct WsgiArgs {
    /// The app: `package.module:attr` (`attr` defaults to `application`), as gunicorn takes
    /// it.
    #[arg(value_name = "MODULE:APP")]
    target: String,
    #[command(flatten)]
    server: ServerArgs,
    /// A directory put in front of Python's module path (repeatable). The current
    /// directory comes after them.
    #[arg(long = "python-path", value_name = "DIR")]
    python_path: Vec<PathBuf>,
    /// How many threads run Python code (the requests the app works on at once).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_THREADS as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Where the app is mounted (`SCRIPT_NAME`), for example `/app`; other paths get 404.
    /// Defaults to the root.
    #[arg(long, value_name = "PREFIX", value_parser = parse_prefix)]
    mount: Option<String>,
    /// Static files of DIR served at PREFIX, beside the app (repeatable).
    #[arg(long = "static", value_name = "PREFIX=DIR", value_parser = parse_static)]
    statics: Vec<(String, PathBuf)>,
}

fn parse_prefix(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    if !value.starts_with('/') {
        return Err(format!("a mount prefix starts with '/', got {value:?}"));
    }
    Ok(trimmed.to_owned())
}

fn parse_static(value: &str) -> Result<(String, PathBuf), String> {
    let (prefix, dir) = value
        .split_once('=')
        .ok_or_else(|| format!("expected PREFIX=DIR, got {value:?}"))?;
    let prefix = parse_prefix(prefix)?;
    if prefix.is_empty() {
        return Err(format!(
            "static files need a prefix other than '/', got {value:?}"
        ));
    }
    Ok((prefix, PathBuf::from(dir)))
}

pub(crate) fn main(args: WsgiArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for (_, dir) in &args.statics {
        if !dir.is_dir() {
            eprintln!("towergate wsgi: {} is not a directory", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let mut builder = WsgiApp::builder().threads(usize::from(args.threads));
    for dir in &args.python_path {
        builder = builder.python_path(dir);
    }
    let app = match builder.python_path(".").import(&args.target) {
        Ok(app) => app,
        Err(error) => {
            if let Some(traceback) = error.traceback() {
                eprintln!("{traceback}");
            }
            eprintln!("towergate wsgi: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("towergate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mount = args.mount.clone().unwrap_or_default();
    let service = AppService::new(app).script_name(mount.clone());
    let mut router = Router::new();
    for (prefix, dir) in &args.statics {
        router = router.nest_service(prefix, ServeDir::new(dir));
    }
    router = if mount.is_empty() {
        router.fallback_service(service)
    } else {
        router.nest_service(&mount, service)
    };
    println!(
        "towergate: serving {} at http://{}{}/",
        args.target, args.server.addr, mount
    );
    match runtime.block_on(server::run(&args.server, router)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("towergate wsgi: {error}");
            ExitCode::FAILURE
        }
    }
}

// replaced by server::run at merge
mod server {
    use std::net::SocketAddr;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use tower_service::Service;
    use towergate::BoxError;
    use towergate::ext::ConnectInfo;

    /// The options of the HTTP server.
    #[derive(Clone, Debug, clap::Args)]
    pub(crate) struct ServerArgs {
        /// The address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
        pub(crate) addr: SocketAddr,
        /// How long a client has to send a request head, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 20)]
        pub(crate) header_timeout: u64,
        /// On SIGTERM or Ctrl-C, how long requests in flight get to finish, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        pub(crate) grace: u64,
    }

    /// Serves `service` on `args.addr` until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub(crate) async fn run<S, B>(args: &ServerArgs, service: S) -> Result<(), BoxError>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|error| format!("cannot listen on {}: {error}", args.addr))?;
        let local = listener.local_addr()?;
        println!("towergate: listening on http://{local}/");
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(args.header_timeout));
        let graceful = GracefulShutdown::new();
        let mut signal = std::pin::pin!(shutdown_signal());
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo {
                    remote,
                    local: Some(local),
                });
                let line = format!(
                    "{} \"{} {} {:?}\"",
                    remote.ip(),
                    request.method(),
                    request.uri(),
                    request.version()
                );
                logged(service.clone().call(request), line)
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        let grace = Duration::from_secs(args.grace);
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        Ok(())
    }

    async fn logged<F, B, E>(future: F, line: String) -> Result<Response<B>, E>
    where
        F: std::future::Future<Output = Result<Response<B>, E>>,
    {
        let response = future.await?;
        tracing::info!(target: "towergate::access", "{line} {}", response.status().as_u16());
        Ok(response)
    }

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
}
