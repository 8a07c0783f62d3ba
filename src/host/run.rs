//! One run of a program: from the request to the response head (RFC 3875 §4 to §6).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdout, Command};
use tokio::time::Instant;
use tower_service::Service;

use super::future::BoxFuture;
use super::head::{self, Head, HeadError};
use super::process;
use super::program::{Options, Stderr};
use super::spool::{self, SpoolError, Spooled};
use super::{CgiBin, CgiProgram, ReasonPhrase, ResponseBody};
use crate::BoxError;
use crate::Environ;
use crate::environ::EnvironBuilder;
use crate::panic::log;

/// What runs: the program's file and what belongs to it alone.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) path: Arc<Path>,
    /// The program's directory, the default working directory.
    pub(crate) exec_dir: Option<PathBuf>,
    /// Prepared with `SCRIPT_NAME`, `SCRIPT_FILENAME` and the options.
    pub(crate) environ: EnvironBuilder,
    pub(crate) nph: bool,
}

/// A configured local-redirect service, type-erased.
#[derive(Clone)]
pub(crate) struct Redirect(Arc<dyn Fn(Request<String>) -> BoxFuture + Send + Sync>);

impl Redirect {
    pub(crate) fn new<S, RB>(service: S) -> Self
    where
        S: Service<Request<String>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        Redirect(Arc::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                let ready = std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into);
                let result: Result<_, BoxError> = match ready {
                    Ok(()) => service.call(request).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(response) => response.map(ResponseBody::boxed),
                    Err(error) => {
                        log(format_args!("local redirect service failed: {error}"));
                        error_response(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                }
            })
        }))
    }
}

/// Where a local redirect goes when no service is configured: the same host.
pub(crate) enum Dispatch {
    Program(CgiProgram),
    Bin(CgiBin),
}

impl Dispatch {
    fn call(self, request: Request<String>) -> BoxFuture {
        match self {
            Dispatch::Program(mut program) => {
                let future = program.call(request);
                Box::pin(async move { future.await.unwrap_or_else(|e| match e {}) })
            }
            Dispatch::Bin(mut bin) => {
                let future = bin.call(request);
                Box::pin(async move { future.await.unwrap_or_else(|e| match e {}) })
            }
        }
    }
}

/// How many local redirects led to this request (a request extension).
#[derive(Clone, Copy, Debug)]
struct Redirects(u32);

/// A short text response for the host's own errors: `502 Bad Gateway` and so on.
pub(crate) fn error_response(status: StatusCode) -> Response<ResponseBody> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

struct Failure<'a> {
    program: &'a Path,
    why: &'a dyn fmt::Display,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CGI program {}: {}", self.program.display(), self.why)
    }
}

fn fail(program: &Path, status: StatusCode, why: &dyn fmt::Display) -> Response<ResponseBody> {
    log(format_args!("{}", Failure { program, why }));
    error_response(status)
}

/// The request body as the program gets it.
enum Input<B> {
    None,
    Stream(B),
    Spooled(Spooled),
}

/// Runs `target` for `request`.
pub(crate) async fn run<B>(
    target: Arc<Target>,
    options: Arc<Options>,
    request: Request<B>,
    home: Dispatch,
) -> Response<ResponseBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let program: &Path = &target.path;
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let (parts, body) = request.into_parts();

    // A process slot.
    let permit = match &options.slots {
        None => None,
        Some(slots) => {
            let acquire = slots.clone().acquire_owned();
            let acquired = match deadline {
                None => Ok(acquire.await),
                Some(deadline) => tokio::time::timeout_at(deadline, acquire).await,
            };
            match acquired {
                Ok(Ok(permit)) => Some(permit),
                _ => {
                    return fail(
                        program,
                        StatusCode::SERVICE_UNAVAILABLE,
                        &"no process slot freed up within the time limit",
                    );
                }
            }
        }
    };

    // The body: declared, known, spooled or streamed (RFC 3875 §4.2).
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut content_length = None;
    let mut chunked_stream = false;
    // A declared length is in the environ already; a length known from the body's size hint
    // (an HTTP/2 body whose frames add up) is passed on as CONTENT_LENGTH.
    let known = match declared {
        Some(length) => Some((length, false)),
        None if body.is_end_stream() => Some((0, false)),
        None => body.size_hint().exact().map(|length| (length, true)),
    };
    let input = if let Some((length, from_hint)) = known {
        if length > options.max_body {
            return fail(
                program,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format_args!("a body of {length} bytes is over the limit"),
            );
        }
        if length == 0 {
            Input::None
        } else {
            if from_hint {
                content_length = Some(length);
            }
            Input::Stream(body)
        }
    } else if !options.spool {
        chunked_stream = true;
        Input::Stream(body)
    } else {
        let dir = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let spooling = spool::spool(body, options.spool_memory, options.max_body, &dir);
        let spooled = match deadline {
            None => Ok(spooling.await),
            Some(deadline) => tokio::time::timeout_at(deadline, spooling).await,
        };
        match spooled {
            Ok(Ok(spooled)) => {
                content_length = Some(spooled.len());
                Input::Spooled(spooled)
            }
            Ok(Err(SpoolError::TooLarge)) => {
                return fail(
                    program,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &"the request body is over the limit",
                );
            }
            Ok(Err(SpoolError::Body(error))) => {
                return fail(
                    program,
                    StatusCode::BAD_REQUEST,
                    &format_args!("the request body failed: {error}"),
                );
            }
            Ok(Err(SpoolError::Io(error))) => {
                return fail(
                    program,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format_args!("cannot spool the request body: {error}"),
                );
            }
            Err(_) => {
                return fail(
                    program,
                    StatusCode::REQUEST_TIMEOUT,
                    &"the request body did not arrive within the time limit",
                );
            }
        }
    };

    // The meta-variables (RFC 3875 §4.1).
    let transfer_encoding = match input {
        Input::Spooled(_) => TransferEncoding::Remove,
        _ if chunked_stream => TransferEncoding::Chunked,
        _ => TransferEncoding::AsIs,
    };
    let environ = environ(&target, &parts, content_length, transfer_encoding);
    if environ
        .iter()
        .any(|(k, v)| k.contains(&0) || v.contains(&0))
    {
        return fail(
            program,
            StatusCode::BAD_REQUEST,
            &"a meta-variable holds a NUL byte",
        );
    }

    // The process.
    let mut command = command(&target, &options, &environ);
    drop(environ);
    let mut feed_later = None;
    // What goes through the standard input pipe, when known.
    let body_length = content_length.or(declared);
    match input {
        Input::None => {
            command.stdin(Stdio::null());
        }
        Input::Spooled(Spooled::File(file, _)) => {
            command.stdin(Stdio::from(file));
        }
        Input::Spooled(Spooled::Memory(chunks, _)) => {
            command.stdin(Stdio::piped());
            feed_later = Some(Err(chunks));
        }
        Input::Stream(body) => {
            command.stdin(Stdio::piped());
            feed_later = Some(Ok(body));
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            return fail(
                program,
                StatusCode::INTERNAL_SERVER_ERROR,
                &format_args!("cannot start: {error}"),
            );
        }
    };
    drop(command);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    // A body larger than the pipe (or of unknown length): a larger pipe, fewer wakeups.
    if let Some(stdin) = &stdin {
        if body_length.is_none_or(|length| length > process::DEFAULT_PIPE_SIZE as u64) {
            process::grow_pipe(stdin);
        }
    }
    let stderr = child.stderr.take();
    let kill = process::supervise(child, deadline, options.grace, permit, target.path.clone());
    if let Some(stderr) = stderr {
        process::drain_stderr(stderr, target.path.clone());
    }
    match (stdin, feed_later) {
        (Some(stdin), Some(Ok(body))) => process::feed(stdin, body),
        (Some(stdin), Some(Err(chunks))) => process::feed_chunks(stdin, chunks),
        _ => {}
    }
    let Some(mut stdout) = stdout else {
        return fail(
            program,
            StatusCode::INTERNAL_SERVER_ERROR,
            &"no standard output pipe",
        );
    };

    // The head (RFC 3875 §6).
    let reading = read_head(&mut stdout, &options.limits);
    let read = match deadline {
        None => Ok(reading.await),
        Some(deadline) => tokio::time::timeout_at(deadline, reading).await,
    };
    let (head, rest) = match read {
        Ok(Ok(read)) => read,
        // The supervisor may have killed it at the deadline just before the timer here
        // fired: that is a timeout too.
        Ok(Err(_)) if deadline.is_some_and(|d| Instant::now() >= d) => {
            return fail(
                program,
                StatusCode::GATEWAY_TIMEOUT,
                &"its time limit expired before it sent its header block",
            );
        }
        Ok(Err(error)) => return fail(program, StatusCode::BAD_GATEWAY, &error),
        Err(_) => {
            return fail(
                program,
                StatusCode::GATEWAY_TIMEOUT,
                &"its time limit expired before it sent its header block",
            );
        }
    };
    let parsed = if target.nph {
        head::parse_nph(&head, &options.limits)
    } else {
        head::parse_cgi(&head, &options.limits)
    };
    let (status, reason, headers) = match parsed {
        Ok(Head::Response {
            status,
            reason,
            headers,
        }) => (status, reason, headers),
        Ok(Head::LocalRedirect(location)) => {
            process::discard(stdout, kill);
            return local_redirect(parts, location, &options, home, program).await;
        }
        Err(error) => return fail(program, StatusCode::BAD_GATEWAY, &error),
    };

    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Some(reason) = reason {
        response.extensions_mut().insert(ReasonPhrase(reason));
    }
    // HEAD: the body is discarded (RFC 3875 §4.3.3); so is one a status forbids.
    if parts.method == Method::HEAD || crate::headers::status_forbids_body(status) {
        if crate::headers::status_forbids_body(status) {
            response.headers_mut().remove(CONTENT_LENGTH);
        }
        process::discard(stdout, kill);
        return response;
    }
    *response.body_mut() = ResponseBody::stream(rest, stdout, deadline, kill);
    response
}

/// What becomes of `HTTP_TRANSFER_ENCODING` for the body the program gets.
#[derive(Clone, Copy)]
pub(crate) enum TransferEncoding {
    /// The request's own, if any.
    AsIs,
    /// Removed: the body was spooled and has a `CONTENT_LENGTH`.
    Remove,
    /// `chunked`: the body streams with no `CONTENT_LENGTH`.
    Chunked,
}

/// The program's meta-variables for a request (RFC 3875 §4.1); `content_length` overrides
/// the request's `Content-Length`.
pub(crate) fn environ(
    target: &Target,
    parts: &http::request::Parts,
    content_length: Option<u64>,
    transfer_encoding: TransferEncoding,
) -> Environ {
    let mut environ = match content_length {
        Some(length) => target
            .environ
            .clone()
            .content_length(length)
            .build_from_parts(parts),
        None => target.environ.build_from_parts(parts),
    };
    match transfer_encoding {
        TransferEncoding::AsIs => {}
        TransferEncoding::Remove => {
            environ.remove("HTTP_TRANSFER_ENCODING");
        }
        TransferEncoding::Chunked => {
            environ.insert("HTTP_TRANSFER_ENCODING", "chunked");
        }
    }
    environ
}

/// The command that starts `target` with `environ` and the options' variables, in an
/// otherwise empty environment; standard input is left to the caller. No `pre_exec` and
/// nothing but plain settings: std takes its `posix_spawn` path.
pub(crate) fn command(target: &Target, options: &Options, environ: &Environ) -> Command {
    let mut command = Command::new(&*target.path);
    command
        .args(&options.args)
        .env_clear()
        .envs(
            environ
                .iter()
                .map(|(k, v)| (OsStr::from_bytes(k), OsStr::from_bytes(v))),
        )
        .envs(options.envs())
        .stdout(Stdio::piped())
        .stderr(match options.stderr {
            Stderr::Log => Stdio::piped(),
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Null => Stdio::null(),
        })
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = options.dir.as_deref().or(target.exec_dir.as_deref()) {
        command.current_dir(dir);
    }
    command
}

/// Reads the head: everything up to and including the blank line, and what was read past
/// it.
async fn read_head(
    stdout: &mut ChildStdout,
    limits: &head::Limits,
) -> Result<(Bytes, Bytes), HeadError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // The head is small (limited): rescanning it whole after each read is cheap.
        if let Some(end) = head::find_end(&buf, limits)? {
            let head = buf.split_to(end).freeze();
            return Ok((head, buf.freeze()));
        }
        buf.reserve(4096);
        match stdout.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Err(HeadError::NoOutput),
            Ok(0) | Err(_) => return Err(HeadError::Unterminated),
            Ok(_) => {}
        }
    }
}

/// Serves a local redirect (RFC 3875 §6.2.2): a `GET` of `location` through the configured
/// service, or this host.
pub(crate) async fn local_redirect(
    parts: http::request::Parts,
    location: Bytes,
    options: &Options,
    home: Dispatch,
    program: &Path,
) -> Response<ResponseBody> {
    let hops = parts.extensions.get::<Redirects>().map_or(0, |r| r.0) + 1;
    if hops > options.max_redirects {
        return fail(
            program,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format_args!(
                "more than {} local redirects in a row",
                options.max_redirects
            ),
        );
    }
    let uri = match http::Uri::try_from(location.as_ref()) {
        Ok(uri) => uri,
        Err(_) => {
            return fail(
                program,
                StatusCode::BAD_GATEWAY,
                &format_args!(
                    "invalid local redirect {:?}",
                    String::from_utf8_lossy(&location)
                ),
            );
        }
    };
    let mut request = Request::new(String::new());
    // "As if the client had requested that URL" (§6.2.2): a GET, or a HEAD for a HEAD.
    if parts.method == Method::HEAD {
        *request.method_mut() = Method::HEAD;
    }
    *request.uri_mut() = uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers;
    for name in [CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING] {
        request.headers_mut().remove(name);
    }
    *request.extensions_mut() = parts.extensions;
    request.extensions_mut().insert(Redirects(hops));
    match &options.redirect {
        Some(redirect) => (redirect.0)(request).await,
        None => home.call(request).await,
    }
}
