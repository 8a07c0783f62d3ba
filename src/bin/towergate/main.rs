//! `towergate`: serve a directory with its cgi-bin programs, or run one CGI program once.
//!
//! ```text
//! towergate serve [DIR] [--addr HOST:PORT] [--timeout SECS] [--max-processes N]
//!                 [--slot-wait SECS] [--max-waiting N] [--body-timeout SECS] [--max-body BYTES]
//!                 [--spool-limit BYTES] [--env K=V]... [--pass-env NAME]... [--pass-authorization]
//!                 [--header-timeout SECS] [--idle-timeout SECS] [--max-connections N]
//!                 [--grace SECS]
//! towergate call PROGRAM [PATH] [-X METHOD] [-d DATA] [-H 'K: V']...
//! towergate wsgi MODULE:APP [--addr HOST:PORT] [--python-path DIR]... [--threads N]
//!                [--keep-gil BOOL] [--workers N] [--timeout SECS] [--send-timeout SECS]
//!                [--max-queued N] [--mount PREFIX] [--static PREFIX=DIR]...
//!                                                               (with the `python` feature)
//! ```
//!
//! Unix only: it runs CGI programs as Unix processes (process groups, signals). Elsewhere the
//! binary builds and says so.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[cfg(unix)]
mod call;
#[cfg(unix)]
mod serve;
mod server;
#[cfg(feature = "python")]
mod workers;
#[cfg(feature = "python")]
mod wsgi;

/// jemalloc rather than the system allocator (as Granian does): a request allocates and
/// frees a few dozen small blocks (hyper's head, the environ, task and channel state), which
/// glibc's malloc serves at several times the cost, most of all for the aligned blocks of
/// tasks and from the many threads of `towergate wsgi`. Python's own allocations keep
/// Python's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Serve static files and CGI programs, or run one CGI program once.
#[derive(Debug, Parser)]
#[command(name = "towergate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve static files from DIR and the programs of DIR/cgi-bin/ at
    /// /cgi-bin/NAME/PATH_INFO (the successor of `python -m http.server --cgi`).
    ///
    /// Dotfiles and dot-directories are never served (404). A program's local redirect
    /// (`Location: /path`) is served by the whole server, static files included. One
    /// access-log line per response, written when it ends (bytes sent, and `incomplete:
    /// REASON` when it did not finish); RUST_LOG filters the log (default `info`).
    ///
    /// Past --max-connections, new clients wait in the listen queue until a connection
    /// closes. On SIGTERM or Ctrl-C the listener closes and requests in flight get --grace
    /// to finish; then requests with no response head yet get 503, every program still
    /// running is ended (SIGTERM, 3 s, SIGKILL) and the server exits.
    Serve(ServeArgs),
    /// Run a CGI program once with a synthesized request and print the HTTP response.
    Call(CallArgs),
    /// Serve a Python WSGI app (Flask, Django, ...) over HTTP/1.1 and HTTP/2.
    #[cfg(feature = "python")]
    Wsgi(wsgi::WsgiArgs),
}

/// `towergate serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The directory to serve. Dotfiles and dot-directories (`.env`, `.git/`) are never
    /// served (404).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The run time limit of one program, in seconds (then SIGTERM, SIGKILL, and 504 when
    /// no header was sent yet).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// The most programs running at once; further requests wait for a slot, up to
    /// --slot-wait.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_processes: usize,
    /// How long a request waits for a process slot before it gets 503 with Retry-After
    /// (not counted in --timeout). Decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = server::parse_secs)]
    slot_wait: Duration,
    /// How many requests may wait for a process slot (PHP requests for one of
    /// --max-processes too); past it a request gets 503 with Retry-After at once. 0 lets
    /// none wait.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_waiting: usize,
    /// The longest wait for the next piece of a request body; then 408. Decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = server::parse_secs)]
    body_timeout: Duration,
    /// The largest request body accepted, in bytes (suffixes K, M, G: binary multiples);
    /// a longer one gets 413 and a spooled body stops at the limit.
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    max_body: u64,
    /// The most bytes all spooled request bodies (chunked, HTTP/2) may hold at once, in
    /// memory and temporary files together; past it a request gets 503 with Retry-After.
    #[arg(long, value_name = "BYTES", default_value = "2G", value_parser = parse_bytes)]
    spool_limit: u64,
    /// An extra variable for every program (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// A variable of this server's environment passed on to programs (repeatable).
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Pass the Authorization header to programs as HTTP_AUTHORIZATION (RFC 3875 §9.2).
    #[arg(long)]
    pass_authorization: bool,
    /// Send requests for *.php files under DIR to the FastCGI server at ADDR (php-fpm):
    /// HOST:PORT or unix:PATH. /d/ runs /d/index.php when present, PATH_INFO follows
    /// .php/, dotfiles and paths outside DIR get 404 (Caddy's php_fastcgi rules).
    /// --max-processes bounds the PHP requests in flight too: set it to php-fpm's
    /// pm.max_children.
    #[arg(long, value_name = "ADDR")]
    php: Option<towergate::fastcgi::Address>,
    #[command(flatten, next_help_heading = "Server")]
    server: server::ServerArgs,
}

/// `towergate call`.
#[derive(Debug, Args)]
struct CallArgs {
    /// The program to run.
    program: PathBuf,
    /// The request path and query: PATH_INFO and QUERY_STRING.
    #[arg(default_value = "/")]
    path: String,
    /// The request method. Defaults to GET, or POST with --data.
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// The request body.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,
    /// A request header (repeatable).
    #[arg(short = 'H', long = "header", value_name = "K: V")]
    headers: Vec<String>,
}

fn parse_env(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected K=V, got {value:?}")),
    }
}

/// The multi-threaded runtime, or a current-thread one; `None` once the reason is on
/// standard error.
fn runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let built = if multi_thread {
        tokio::runtime::Runtime::new()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    built
        .map_err(|error| eprintln!("towergate: cannot start the runtime: {error}"))
        .ok()
}

/// Shuts `runtime` down once its server has stopped, waiting at most a second for blocking
/// tasks still running (a static file read stuck on a hung file system, a blocking app):
/// dropping the runtime would wait for them forever, and the process would never exit.
fn shut_down(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// A byte count: digits with an optional `K`, `M` or `G` suffix (powers of 1024).
fn parse_bytes(value: &str) -> Result<u64, String> {
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 10),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 20),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("expected a byte count such as 1048576 or 100M, got {value:?}"))
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("towergate: the command-line tool runs on Unix only");
    ExitCode::FAILURE
}

#[cfg(unix)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Call(args) => call::main(args),
        #[cfg(feature = "python")]
        Command::Wsgi(args) => wsgi::main(args),
    }
}
