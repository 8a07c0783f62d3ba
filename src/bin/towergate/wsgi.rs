//! `towergate wsgi MODULE:APP`: a Python WSGI app (Flask, Django, …) served over HTTP/1.1
//! and HTTP/2, the gunicorn-style command. Exists when the binary is built with the
//! `python` feature. With `--workers N` (more than one), the process binds the address and
//! starts N workers (see [`crate::workers`]); each worker is this command again with
//! `--worker-of PARENT`, listening beside the others on the address of the socket it finds
//! on descriptor 0.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use tokio::runtime::{Runtime, RuntimeFlavor};
use tokio::task::LocalSet;
use tower_http::services::ServeDir;
use towergate::python::{DEFAULT_MAX_QUEUED, DEFAULT_THREADS, WsgiApp};
use towergate::service::AppService;

use crate::server::{self, ServerArgs};
use crate::workers;

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
    /// Whether a Python thread that finishes a request goes on with the next queued one
    /// without letting go of the GIL (another thread takes the queue over as soon as it
    /// waits, for I/O or a sleep say), or every thread takes a request and waits for the
    /// GIL with it, which then changes hands between requests. Defaults to true with one
    /// worker (a Flask hello served 1.25× as much), false with --workers above 1 (there
    /// false served it 1.2× as much).
    #[arg(long = "keep-gil", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    keep_gil: Option<bool>,
    /// How long the app may go without output, in seconds: to its response's head (then
    /// 504 Gateway Timeout, or 408 Request Timeout when the app waited for a request body
    /// that stopped arriving), then between two pieces of its body (then the response is
    /// cut); a request body still coming in counts as activity. Python cannot be
    /// interrupted: the app's thread goes on until its next output, which then fails, or
    /// its end.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = server::parse_secs)]
    timeout: Duration,
    /// How long the app's output may wait for a client that does not read it, in seconds;
    /// past it the thread stops (the result is closed, or write() raises OSError) and the
    /// response is cut.
    #[arg(long = "send-timeout", value_name = "SECS", default_value = "60",
          value_parser = server::parse_secs)]
    send_timeout: Duration,
    /// How many requests may wait for a Python thread (in each worker); past it a request
    /// gets 503 Service Unavailable with Retry-After: 1 at once. 0 lets none wait.
    #[arg(long = "max-queued", value_name = "N", default_value_t = DEFAULT_MAX_QUEUED)]
    max_queued: usize,
    /// Where the app is mounted (`SCRIPT_NAME`), for example `/app`; other paths get 404.
    /// Defaults to the root.
    #[arg(long, value_name = "PREFIX", value_parser = parse_prefix)]
    mount: Option<String>,
    /// Static files of DIR served at PREFIX, beside the app (repeatable).
    #[arg(long = "static", value_name = "PREFIX=DIR", value_parser = parse_static)]
    statics: Vec<(String, PathBuf)>,
    /// How many processes serve the app, each with its own interpreter and --threads
    /// threads, each listening on the address (SO_REUSEPORT: Linux spreads the connections
    /// over them): one per core lets a GIL-bound app use every core. With more than one,
    /// each handles its connections on one thread (a single process, one per core), a
    /// worker that dies is replaced (after a delay growing from 100 ms to 10 s while
    /// workers die within 10 s of their start), `wsgi.multiprocess` is true, and
    /// --max-connections counts for each worker.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// With --workers above 1 (Linux): binds each worker to one CPU, the workers taking
    /// the CPUs this process may run on in turn (the first worker the first CPU, and so on,
    /// starting over when there are more workers than CPUs); a worker that is replaced
    /// hands its CPU to the next. A worker's threads then never move between cores: with a
    /// worker per core on a machine that serves nothing else, a Flask hello served
    /// 1.14–1.35× as much as Granian (unpinned: 0.91–1.16×). Off by default: a pinned
    /// worker cannot leave a core that something else keeps busy (another service, or
    /// other containers when a CPU quota rather than a CPU set limits this one).
    #[arg(long = "pin-workers")]
    pin_workers: bool,
    /// Internal: run as a worker of the `towergate wsgi --workers` process PID, listening on
    /// the address of the socket on descriptor 0.
    #[arg(long = "worker-of", value_name = "PID", hide = true)]
    worker_of: Option<u32>,
    /// Internal: the CPU a worker binds itself to (--pin-workers), before it starts any
    /// thread.
    #[arg(
        long = "worker-cpu",
        value_name = "CPU",
        hide = true,
        requires = "worker_of"
    )]
    worker_cpu: Option<usize>,
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
    if let Some(parent) = args.worker_of {
        // Before any thread starts: they inherit it. A CPU gone meanwhile (taken out of
        // the server's CPU set) leaves the worker unbound rather than the server stopped.
        if let Some(cpu) = args.worker_cpu {
            if let Err(error) = workers::pin_to(cpu) {
                tracing::warn!(
                    target: "towergate::server",
                    "cannot bind worker {} to CPU {cpu}: {error}; it runs unbound",
                    std::process::id()
                );
            }
        }
        return match workers::worker_listener(parent) {
            Ok(listener) => serve(&args, Some(listener)),
            Err(error) => {
                eprintln!("towergate wsgi: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if args.workers > 1 {
        return workers::supervise(
            &args.target,
            &args.server,
            args.mount.as_deref(),
            args.workers,
            args.pin_workers,
        );
    }
    if args.pin_workers {
        eprintln!("towergate wsgi: --pin-workers needs --workers 2 or more");
        return ExitCode::FAILURE;
    }
    serve(&args, None)
}

/// Imports the app and serves it: on `args.server.addr`, or as a worker on `inherited`, its
/// own listener beside the other workers'.
///
/// A worker runs its connections on one thread, a current-thread runtime's (the workers
/// spread over the cores), as Granian's workers do. Measured with two workers on two
/// cores, a hello app served 0.85–0.95× Granian with multi-threaded runtimes and 0.93–1.02×
/// so when the servers ran long (`bench/alt_wsgi.sh`), about 0.9× either way when they were
/// started afresh for each run. The server alone keeps a multi-threaded runtime, which
/// gives it the other cores (0.98× Granian against 0.94× with one thread).
fn serve(args: &WsgiArgs, inherited: Option<std::net::TcpListener>) -> ExitCode {
    let Some(runtime) = crate::runtime(inherited.is_none()) else {
        return ExitCode::FAILURE;
    };
    let mut builder = WsgiApp::builder()
        .threads(usize::from(args.threads))
        // Measured best with a multi-threaded runtime only (see --keep-gil).
        .keep_gil(args.keep_gil.unwrap_or(inherited.is_none()))
        .timeout(args.timeout)
        .send_timeout(args.send_timeout)
        .max_queued(args.max_queued);
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
    // A worker watches SIGTERM from here on, before it says it is ready. Until now the
    // signal ends it at once: its parent may stop it while it imports a slow app, which
    // would otherwise hold the stop for as long as the import takes.
    let worker = inherited.map(|listener| {
        let _entered = runtime.enter();
        (listener, server::shutdown_signal())
    });
    let mount = args.mount.clone().unwrap_or_default();
    let service = AppService::new(app)
        .script_name(mount.clone())
        .multiprocess(worker.is_some());
    let served = if args.statics.is_empty() && mount.is_empty() {
        // The app alone: no router in the way of every request.
        block_on(&runtime, listen(args, worker, &mount, service))
    } else {
        let mut router = Router::new();
        for (prefix, dir) in &args.statics {
            router = router.nest_service(prefix, ServeDir::new(dir));
        }
        router = if mount.is_empty() {
            router.fallback_service(service)
        } else {
            router.nest_service(&mount, service)
        };
        block_on(&runtime, listen(args, worker, &mount, router))
    };
    crate::shut_down(runtime);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("towergate wsgi: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `listen` on `runtime`, in a [`LocalSet`] on a current-thread runtime (a worker's:
/// see [`server::run_on`]).
fn block_on<F: Future>(runtime: &Runtime, listen: F) -> F::Output {
    if runtime.handle().runtime_flavor() != RuntimeFlavor::CurrentThread {
        return runtime.block_on(listen);
    }
    let local = LocalSet::new();
    let output = local.block_on(runtime, listen);
    // The connections still open end here, in the runtime they belong to.
    let _entered = runtime.enter();
    drop(local);
    output
}

/// Serves `service` as a worker, on its listener until the signal watched since before the
/// import (saying first that it is ready), or alone on `args.server.addr`.
async fn listen<S: server::HttpService>(
    args: &WsgiArgs,
    worker: Option<(std::net::TcpListener, impl Future<Output = ()>)>,
    mount: &str,
    service: S,
) -> Result<(), towergate::BoxError> {
    match worker {
        Some((listener, signal)) => {
            // Not `println!`, which panics on a closed pipe: a parent that died before the
            // line was written sent SIGTERM, and the worker stops as a server does.
            let _ = writeln!(std::io::stdout(), "{}", workers::READY);
            server::run_on(&args.server, listener, service, signal).await
        }
        None => {
            println!(
                "towergate: serving {} at http://{}{mount}/",
                args.target, args.server.addr
            );
            server::run(&args.server, service).await
        }
    }
}
