//! `towergate`: serve a directory with its cgi-bin programs, or run one CGI program once.
//!
//! ```text
//! towergate serve [DIR] [--addr HOST:PORT] [--timeout SECS] [--max-processes N]
//!                 [--env K=V]... [--pass-env NAME]... [--pass-authorization]
//! towergate call PROGRAM [PATH] [-X METHOD] [-d DATA] [-H 'K: V']...
//! ```
//!
//! Unix only: it runs CGI programs as Unix processes (process groups, signals). Elsewhere the
//! binary builds and says so.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[cfg(unix)]
mod call;
#[cfg(unix)]
mod serve;

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
    Serve(ServeArgs),
    /// Run a CGI program once with a synthesized request and print the HTTP response.
    Call(CallArgs),
}

/// `towergate serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The directory to serve.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// The run time limit of one program, in seconds (then SIGTERM, SIGKILL, and 504 when
    /// no header was sent yet).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// The most programs running at once; further requests wait for a slot (503 after the
    /// timeout).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_processes: usize,
    /// An extra variable for every program (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// A variable of this server's environment passed on to programs (repeatable).
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Pass the Authorization header to programs as HTTP_AUTHORIZATION (RFC 3875 §9.2).
    #[arg(long)]
    pass_authorization: bool,
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
    }
}
