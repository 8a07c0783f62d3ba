//! [`CgiHandler`]: a gateway app as a CGI program.

use std::process::ExitCode;

use super::{Error, Handler, WriteTransport};
use crate::Environ;
use crate::cgi::request_body;
use crate::environ::{Errors, Input};
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::gateway::App;
use crate::panic::log;
use crate::respond::Failure;

/// wsgiref's `CGIHandler`: runs a gateway app as this process's CGI program, reading the
/// meta-variables from the environment, the body from standard input (exactly
/// `CONTENT_LENGTH` bytes, RFC 3875 §4.2), writing the response to standard output and
/// error output to standard error.
///
/// The environ says run_once true, multithread false, multiprocess true; the head is a CGI
/// header block (`Status:` first, RFC 3875 §6.3.3). Nothing of the process's environment
/// leaks into another request: the base environ is empty (bpo-7250).
///
/// ```no_run
/// use towergate::gateway::{app_fn, AppBody};
/// use towergate::handler::CgiHandler;
/// use towergate::BoxError;
///
/// fn main() -> std::process::ExitCode {
///     CgiHandler::new().run(app_fn(|_environ, start_response| async move {
///         start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///         Ok::<_, BoxError>(AppBody::from("Hello, world!"))
///     }))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct CgiHandler<E = DefaultErrorResponse> {
    handler: Handler<E>,
    iis: bool,
    max_body: u64,
}

impl Default for CgiHandler {
    fn default() -> Self {
        CgiHandler::new()
    }
}

impl CgiHandler {
    /// `CGIHandler()`.
    pub fn new() -> Self {
        CgiHandler {
            handler: Handler::cgi(),
            iis: false,
            max_body: u64::MAX,
        }
    }

    /// `IISCGIHandler()`: for IIS, which puts `SCRIPT_NAME` again at the front of
    /// `PATH_INFO`: when `PATH_INFO` starts with `SCRIPT_NAME` (at a `/` boundary), that
    /// prefix is removed (`/app.cgi` + `/app.cgi/x` → `/x`).
    pub fn iis() -> Self {
        CgiHandler {
            handler: Handler::cgi(),
            iis: true,
            max_body: u64::MAX,
        }
    }
}

impl<E: ErrorResponse> CgiHandler<E> {
    /// Replaces the handler's options (see [`Handler`]); defaults to [`Handler::cgi`].
    pub fn with_handler<E2: ErrorResponse>(self, handler: Handler<E2>) -> CgiHandler<E2> {
        CgiHandler {
            handler,
            iis: self.iis,
            max_body: self.max_body,
        }
    }

    /// The largest request body accepted: a larger `CONTENT_LENGTH` is answered with
    /// `413 Content Too Large` without calling the app, and a chunked body read to
    /// end-of-file fails past it. Defaults to no limit (the web server's own applies).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// Runs `app` as this process's CGI program on a new current-thread runtime (timers and
    /// I/O enabled, a blocking pool for blocking apps), and returns the exit status for
    /// `main`: success when a response was written (the error response included), 1 when the
    /// output was cut short or the environment is not a CGI request (a line on standard error
    /// says so). The same entry as [`cgi::run`](crate::cgi::run).
    pub fn run<A>(self, app: A) -> ExitCode
    where
        A: App,
        A::Body: 'static,
    {
        crate::cgi::child_main(|environ| async move {
            #[cfg(unix)]
            let stdout = {
                use std::os::fd::AsFd;
                // Standard output as a file, so a file body can be spliced to it.
                match std::io::stdout().as_fd().try_clone_to_owned() {
                    Ok(fd) => std::fs::File::from(fd),
                    Err(e) => {
                        log(format_args!("cannot use standard output: {e}"));
                        return Err(());
                    }
                }
            };
            #[cfg(not(unix))]
            let stdout = std::io::stdout();
            let transport =
                WriteTransport::new(std::io::BufWriter::with_capacity(16 * 1024, stdout));
            self.serve_with(&app, environ, std::io::stdin(), transport)
                .await
                .map_err(drop)
        })
    }

    /// Serves one request described by `environ`, reading its body from `input` and writing
    /// the response to `transport`, as a CGI program does with its standard streams: exactly
    /// `CONTENT_LENGTH` bytes (RFC 3875 §4.2; a malformed one is `400 Bad Request`, one over
    /// [`max_body`](Self::max_body) `413 Content Too Large`, a body that ends early `400` if
    /// the head is not out yet). Error output goes to standard error.
    pub async fn serve_with<A, R, T>(
        self,
        app: &A,
        mut environ: Environ,
        input: R,
        transport: T,
    ) -> Result<(), Error>
    where
        A: App,
        A::Body: 'static,
        R: std::io::Read + Send + 'static,
        T: super::Transport,
    {
        if self.iis {
            strip_iis_script_name(&mut environ);
        }
        let failure = Failure::default();
        match request_body(&environ, Box::new(input), self.max_body, &failure) {
            Ok(body) => environ.set_input(Input::new(body)),
            Err(reject) => return self.handler.reject(&environ, transport, |r| reject.head(r)),
        }
        environ.set_errors(Errors::new(std::io::stderr()));
        self.handler
            .run_with(app, environ, transport, Some(failure))
            .await
    }
}

/// IIS puts `SCRIPT_NAME` at the front of `PATH_INFO` too: remove it.
fn strip_iis_script_name(environ: &mut Environ) {
    let script = environ.get_bytes("SCRIPT_NAME").unwrap_or_default();
    let Some(path) = environ.get_bytes("PATH_INFO") else {
        return;
    };
    if script.is_empty() {
        return;
    }
    if let Some(rest) = path.strip_prefix(&script[..]) {
        if rest.is_empty() || rest.starts_with(b"/") {
            let rest = path.slice(script.len()..);
            environ.insert("PATH_INFO", rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iis_prefix_is_removed_at_a_segment_boundary() {
        let mut environ =
            Environ::from_vars([("SCRIPT_NAME", "/app.py"), ("PATH_INFO", "/app.py/x")]);
        strip_iis_script_name(&mut environ);
        assert_eq!(environ.get("PATH_INFO"), Some(&b"/x"[..]));

        let mut environ =
            Environ::from_vars([("SCRIPT_NAME", "/app.py"), ("PATH_INFO", "/app.py")]);
        strip_iis_script_name(&mut environ);
        assert_eq!(environ.get("PATH_INFO"), Some(&b""[..]));

        let mut environ = Environ::from_vars([("SCRIPT_NAME", "/app"), ("PATH_INFO", "/apple")]);
        strip_iis_script_name(&mut environ);
        assert_eq!(environ.get("PATH_INFO"), Some(&b"/apple"[..]));
    }
}
