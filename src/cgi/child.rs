//! The one entry of a CGI child program, shared by [`cgi::run`](super::run) and
//! [`CgiHandler::run`](crate::handler::CgiHandler::run): the runtime, the "not run by a web
//! server" message and exit status, and the request body (RFC 3875 §4.2).

use std::future::Future;
use std::io::{Read, Write};
use std::process::ExitCode;

use http::StatusCode;

use super::RequestBody;
use crate::Environ;
use crate::environ::parse_content_length;
use crate::panic::log;
use crate::respond::{Failure, Head, Rules};

/// Runs `serve` for this process's request: the environ from the environment, on a
/// current-thread runtime with timers and I/O (a CGI process serves one request; start-up
/// cost matters more than threads). Without `REQUEST_METHOD` nobody is waiting for a
/// response: one line on standard error for the person who ran the program by hand, and
/// exit status 1. Otherwise success when `serve` wrote a response, 1 when it failed (it has
/// logged why).
pub(crate) fn main<F, Fut, E>(serve: F) -> ExitCode
where
    F: FnOnce(Environ) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let environ = Environ::from_env();
    if environ.get("REQUEST_METHOD").is_none_or(<[u8]>::is_empty) {
        return run_by_hand(format_args!(
            "this is a CGI program: a web server runs it with REQUEST_METHOD and the other CGI meta-variables (RFC 3875) in its environment, and none are set"
        ));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(environ)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// For a program someone ran by hand: one line on standard error, `PROGRAM: explanation`,
/// and exit status 1.
pub(crate) fn run_by_hand(explanation: std::fmt::Arguments<'_>) -> ExitCode {
    let name = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "this program".into());
    let _ = writeln!(std::io::stderr(), "{name}: {explanation}");
    ExitCode::FAILURE
}

/// Standard input and output, read and written without std's buffering layers.
pub(crate) fn std_streams() -> (Box<dyn Read + Send>, Box<dyn Write>) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin().as_fd().try_clone_to_owned();
        let stdout = std::io::stdout().as_fd().try_clone_to_owned();
        if let (Ok(stdin), Ok(stdout)) = (stdin, stdout) {
            return (
                Box::new(std::fs::File::from(stdin)),
                Box::new(std::fs::File::from(stdout)),
            );
        }
    }
    (Box::new(std::io::stdin()), Box::new(std::io::stdout()))
}

/// The request body of a CGI request (RFC 3875 §4.2): exactly `CONTENT_LENGTH` bytes of
/// `input`; without `CONTENT_LENGTH`, nothing, unless `HTTP_TRANSFER_ENCODING` says chunked
/// (Apache streams such a body and closes standard input): then `input` to end-of-file, up to
/// `max_body`. A short or oversized body is recorded in `failure`.
///
/// Refused before anything is read: a `CONTENT_LENGTH` that is not a decimal number (`abc`,
/// `+5`, `-1`: 400) or over `max_body` (413), each with a log line.
pub(crate) fn request_body(
    environ: &Environ,
    input: Box<dyn Read + Send>,
    max_body: u64,
    failure: &Failure,
) -> Result<RequestBody, Reject> {
    let length = match environ
        .get("CONTENT_LENGTH")
        .filter(|v| !v.trim_ascii().is_empty())
    {
        None => None,
        Some(value) => match parse_content_length(value) {
            Some(length) => Some(length),
            None => {
                log(format_args!(
                    "bad request: invalid CONTENT_LENGTH {:?}",
                    String::from_utf8_lossy(value)
                ));
                return Err(Reject(StatusCode::BAD_REQUEST));
            }
        },
    };
    let chunked = environ
        .get("HTTP_TRANSFER_ENCODING")
        .is_some_and(|te| te.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"));
    Ok(match length {
        Some(length) if length > max_body => {
            log(format_args!(
                "request body of {length} bytes is over the limit of {max_body} bytes"
            ));
            return Err(Reject(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Some(length) => RequestBody::exact(input, length).with_failure(failure.clone()),
        None if chunked => RequestBody::to_eof(input, max_body).with_failure(failure.clone()),
        None => RequestBody::empty(),
    })
}

/// A request refused before the app or service is called, with the status it gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reject(pub(crate) StatusCode);

impl Reject {
    /// The short `text/plain` answer: the status's reason phrase and a line feed.
    pub(crate) fn head(self, rules: Rules) -> Head {
        let text = match self.0 {
            StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large\n",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "Request Header Fields Too Large\n",
            StatusCode::URI_TOO_LONG => "URI Too Long\n",
            StatusCode::INTERNAL_SERVER_ERROR => "Internal Server Error\n",
            _ => "Bad Request\n",
        };
        Head::simple(self.0, text, rules)
    }
}
