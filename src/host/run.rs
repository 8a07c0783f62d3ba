//! One run of a program: from the request to the response head (RFC 3875 §4 to §6). The
//! runner knows no service: what serves a local redirect is given to it.

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

use super::body::{Source, error_response};
use super::head::{self, Head, HeadError};
use super::options::{Limits, ProgramOptions, Stderr};
use super::process::{self, Ending, Output, Supervision};
use super::redirect::{Hop, Redirect};
use super::slots::NoSlot;
use super::spool::{self, SpoolError, SpoolLimits, Spooled, SpooledData};
use super::{ReasonPhrase, ResponseBody};
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

impl Target {
    pub(crate) fn new(
        path: PathBuf,
        script_name: Bytes,
        nph: bool,
        options: &ProgramOptions,
    ) -> Self {
        let mut target = Target {
            environ: EnvironBuilder::new().script_name(script_name),
            exec_dir: path.parent().map(Path::to_path_buf),
            path: Arc::from(path),
            nph,
        };
        target.refresh(options);
        target
    }

    /// Brings the prepared [`EnvironBuilder`] in line with `options`.
    pub(crate) fn refresh(&mut self, options: &ProgramOptions) {
        self.environ = self
            .environ
            .clone()
            .script_filename(Bytes::copy_from_slice(self.path.as_os_str().as_bytes()))
            .pass_authorization(options.pass_authorization)
            .server_software(options.server_software.clone());
    }
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

/// The program or the host failed: an error log line and `status`.
fn fail(program: &Path, status: StatusCode, why: &dyn fmt::Display) -> Response<ResponseBody> {
    log(format_args!("{}", Failure { program, why }));
    error_response(status)
}

/// The request cannot be served as it is (the client's doing, or a limit of the host): a
/// warning and `status`; 503 comes with `Retry-After: 1`.
fn refuse(program: &Path, status: StatusCode, why: &dyn fmt::Display) -> Response<ResponseBody> {
    let failure = Failure { program, why };
    if tracing::dispatcher::has_been_set() {
        tracing::warn!(target: "towergate::host", status = status.as_u16(), "{failure}");
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "towergate: {failure}");
    }
    error_response(status)
}

/// The request body as the program gets it.
enum Input<B> {
    None,
    /// What arrived before the program started, then the rest.
    Stream(Vec<Bytes>, Option<B>),
    Spooled(Spooled),
}

/// Why waiting for a body's first bytes failed.
enum Prefix {
    Stalled,
    Failed(BoxError),
}

/// Waits for the body's first data (or its end), `idle` at most for each frame.
async fn first_bytes<B>(body: B, idle: std::time::Duration) -> Result<Input<B>, Prefix>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    use bytes::Buf;
    let mut body = body;
    loop {
        let next =
            std::future::poll_fn(|cx| crate::panic::poll_frame(std::pin::Pin::new(&mut body), cx));
        match tokio::time::timeout(idle, next).await {
            Err(_) => return Err(Prefix::Stalled),
            Ok(None) => return Ok(Input::None),
            Ok(Some(Err(error))) => return Err(Prefix::Failed(error)),
            Ok(Some(Ok(frame))) => {
                if let Ok(mut data) = frame.into_data() {
                    if data.has_remaining() {
                        let bytes = data.copy_to_bytes(data.remaining());
                        let rest = (!body.is_end_stream()).then_some(body);
                        return Ok(Input::Stream(vec![bytes], rest));
                    }
                }
            }
        }
    }
}

/// Linux's limit on one environment string, its NUL included (`MAX_ARG_STRLEN`).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Runs `target` for `request`; `home` gives the service that serves a local redirect
/// when the options name none (the service that runs the program).
pub(crate) async fn run<B>(
    target: Arc<Target>,
    options: Arc<ProgramOptions>,
    request: Request<B>,
    home: impl FnOnce() -> Redirect + Send,
) -> Response<ResponseBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let program: &Path = &target.path;
    if options.registry.is_stopping() {
        return refuse(
            program,
            StatusCode::SERVICE_UNAVAILABLE,
            &"the host is shutting down",
        );
    }
    let (parts, body) = request.into_parts();
    let hop = parts.extensions.get::<Hop>().copied();

    // The body: declared, known, spooled or streamed (RFC 3875 §4.2). Nothing else starts
    // before its first bytes are here.
    let declared = declared_length(&parts.headers);
    let mut content_length = None;
    let mut chunked_stream = false;
    let known = known_length(declared, &body);
    let body = Box::pin(body);
    let input = if let Some((length, from_hint)) = known {
        if length > options.max_body {
            return refuse(
                program,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format_args!("a body of {length} bytes is over the limit"),
            );
        }
        if from_hint {
            content_length = Some(length);
        }
        if length == 0 {
            Input::None
        } else {
            match first_bytes(body, options.body_timeout).await {
                Ok(input) => input,
                Err(Prefix::Stalled) => return stalled(program),
                Err(Prefix::Failed(error)) => return body_failed(program, &error),
            }
        }
    } else if !options.spool {
        chunked_stream = true;
        match first_bytes(body, options.body_timeout).await {
            Ok(input) => input,
            Err(Prefix::Stalled) => return stalled(program),
            Err(Prefix::Failed(error)) => return body_failed(program, &error),
        }
    } else {
        let dir = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let limits = SpoolLimits {
            memory: options.spool_memory,
            max: options.max_body,
            idle: options.body_timeout,
            dir: &dir,
            budget: &options.spool_budget,
        };
        match spool::spool(body, limits).await {
            Ok(spooled) => {
                content_length = Some(spooled.len);
                Input::Spooled(spooled)
            }
            Err(SpoolError::TooLarge) => {
                return refuse(
                    program,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &"the request body is over the limit",
                );
            }
            Err(SpoolError::Body(error)) => return body_failed(program, &error),
            Err(SpoolError::Stalled) => return stalled(program),
            Err(SpoolError::Budget) => {
                return refuse(
                    program,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &"the spool space shared by all requests is spent",
                );
            }
            Err(SpoolError::Io(error)) => {
                return fail(
                    program,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format_args!("cannot spool the request body: {error}"),
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
    if let Err((status, why)) = check_environ(&environ, &options) {
        return refuse(program, status, &why);
    }

    // A process slot, then the process.
    if options.registry.is_stopping() {
        return refuse(
            program,
            StatusCode::SERVICE_UNAVAILABLE,
            &"the host is shutting down",
        );
    }
    let permit = match &options.slots {
        None => None,
        Some(slots) => {
            let deadline = tokio::time::Instant::now() + options.slot_wait;
            let acquire = slots.acquire_until(deadline, options.max_waiting);
            tokio::select! {
                acquired = acquire => match acquired {
                    Ok(permit) => Some(permit),
                    Err(NoSlot::LineFull(waiting)) => {
                        return refuse(
                            program,
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format_args!("the line for a process slot is full ({waiting} waiting)"),
                        );
                    }
                    Err(NoSlot::TimedOut) => {
                        return refuse(
                            program,
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format_args!(
                                "no process slot freed up within {:?}",
                                options.slot_wait
                            ),
                        );
                    }
                },
                () = options.registry.stopping() => {
                    return refuse(program, StatusCode::SERVICE_UNAVAILABLE, &"the host is shutting down");
                }
            }
        }
    };
    // One deadline for the request and its local redirects, from its first program's start.
    let deadline = hop
        .and_then(|hop| hop.deadline)
        .or_else(|| options.timeout.map(|t| Instant::now() + t));

    let mut command = command(&target, &options, &environ);
    drop(environ);
    let mut feed_later = None;
    let mut reservation = None;
    // What goes through the standard input pipe, when known.
    let body_length = content_length.or(declared);
    match input {
        Input::None => {
            command.stdin(Stdio::null());
        }
        Input::Spooled(Spooled {
            data,
            reservation: spooled,
            ..
        }) => {
            reservation = Some(spooled);
            match data {
                SpooledData::File(file) => {
                    command.stdin(Stdio::from(file));
                }
                SpooledData::Memory(chunks) => {
                    command.stdin(Stdio::piped());
                    feed_later = Some((chunks, None));
                }
            }
        }
        Input::Stream(first, rest) => {
            command.stdin(Stdio::piped());
            feed_later = Some((first, rest));
        }
    }
    // Programs get standard input, output and error, nothing else (descriptors the server
    // inherited without close-on-exec included): every descriptor from 3 up is marked
    // close-on-exec first (one `close_range` call on Linux 5.11 and later).
    close_fds::set_fds_cloexec_threadsafe(3, &[]);
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
    let supervised = process::supervise(
        child,
        Supervision {
            deadline,
            grace: options.grace,
            permit,
            reservation,
            registry: &options.registry,
            program: target.path.clone(),
        },
    );
    let control = supervised.control;
    if let Some(stderr) = stderr {
        let (exited, leftover) = supervised.stderr;
        process::drain_stderr(Output::new(stderr, exited), leftover, target.path.clone());
    }
    if let (Some(stdin), Some((first, rest))) = (stdin, feed_later) {
        process::feed(stdin, first, rest, options.body_timeout, supervised.stall);
    }
    let Some(stdout) = stdout else {
        return fail(
            program,
            StatusCode::INTERNAL_SERVER_ERROR,
            &"no standard output pipe",
        );
    };
    let mut stdout = Output::new(stdout, supervised.stdout_exited);

    // The head (RFC 3875 §6). The supervisor ends the program at the deadline, on a stall
    // or a shutdown, and its exit ends the read.
    // Once the program was told to end (the deadline, a stall, a shutdown), the answer is
    // decided, even if a head arrives while it dies.
    let ended = || match control.state.get() {
        Ending::Timeout => Some(fail(
            program,
            StatusCode::GATEWAY_TIMEOUT,
            &"its time limit expired before it sent its header block",
        )),
        Ending::Stalled => Some(stalled(program)),
        Ending::Shutdown => Some(refuse(
            program,
            StatusCode::SERVICE_UNAVAILABLE,
            &"the host shut down before it sent its header block",
        )),
        Ending::Natural | Ending::Abandoned => None,
    };
    let (head, rest) = match read_head(&mut stdout, &options.limits).await {
        Ok(read) => read,
        Err(error) => {
            return ended().unwrap_or_else(|| fail(program, StatusCode::BAD_GATEWAY, &error));
        }
    };
    if let Some(answer) = ended() {
        return answer;
    }
    let parsed = if target.nph {
        head::parse_nph(&head, &options.limits)
    } else {
        head::parse_cgi(&head, &options.limits)
    };
    let (status, reason, headers, content_length) = match parsed {
        Ok(Head::Response {
            status,
            reason,
            headers,
            content_length,
        }) => (status, reason, headers, content_length),
        Ok(Head::LocalRedirect(location)) => {
            // The first program's output is discarded and it is reaped (its slot freed)
            // before the redirect is served; one that lingers is ended after the grace.
            process::finish(stdout, control, options.grace).await;
            return local_redirect(parts, location, &options, home, program, deadline).await;
        }
        Err(error) => return fail(program, StatusCode::BAD_GATEWAY, &error),
    };

    let (mut response, with_body) = response_head(&parts.method, status, reason, headers);
    if !with_body {
        process::spawn_discard(stdout, control.kill);
        return response;
    }
    *response.body_mut() = ResponseBody::stream(Source {
        first: rest,
        stdout,
        deadline,
        kill: control.kill,
        state: control.state,
        content_length,
    });
    response
}

/// The response for a parsed CGI head (RFC 3875 §6), its body still empty, and whether a
/// body is to follow. Shared by the CGI host and the FastCGI client, which read the same
/// heads:
///
/// - a status with no standard reason phrase and none given gets an empty
///   [`ReasonPhrase`], never a made-up one (RFC 9112 §4: the phrase is optional);
/// - `HEAD` gets no body (RFC 3875 §4.3.3), nor does a status that forbids one (1xx, 204,
///   304), which also loses its `Content-Length` (RFC 9110 §8.6): then `false`, and the
///   caller discards what the program still writes.
pub(crate) fn response_head(
    method: &Method,
    status: StatusCode,
    reason: Option<Bytes>,
    headers: http::HeaderMap,
) -> (Response<ResponseBody>, bool) {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let reason = reason.or_else(|| status.canonical_reason().is_none().then(Bytes::new));
    if let Some(reason) = reason {
        super::insert_reason(response.extensions_mut(), ReasonPhrase(reason));
    }
    let forbidden = crate::headers::status_forbids_body(status);
    if forbidden {
        response.headers_mut().remove(CONTENT_LENGTH);
    }
    let with_body = !forbidden && *method != Method::HEAD;
    (response, with_body)
}

fn stalled(program: &Path) -> Response<ResponseBody> {
    refuse(
        program,
        StatusCode::REQUEST_TIMEOUT,
        &"the request body stopped arriving",
    )
}

fn body_failed(program: &Path, error: &BoxError) -> Response<ResponseBody> {
    refuse(
        program,
        StatusCode::BAD_REQUEST,
        &format_args!("the request body failed: {error}"),
    )
}

/// Whether `environ` (and the options' variables) can be passed to `exec`: no NUL byte
/// (400), no string over Linux's per-string limit and no more than
/// [`max_environ`](ProgramOptions::max_environ) bytes in all (431).
fn check_environ(
    environ: &Environ,
    options: &ProgramOptions,
) -> Result<(), (StatusCode, &'static str)> {
    let mut total = 0usize;
    for (key, value) in environ.iter() {
        if key.contains(&0) || value.contains(&0) {
            return Err((StatusCode::BAD_REQUEST, "a meta-variable holds a NUL byte"));
        }
        let size = key.len() + value.len() + 2;
        if size > MAX_ARG_STRLEN {
            return Err((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "a meta-variable is over the system's limit for one environment string",
            ));
        }
        total += size;
    }
    total += options
        .envs()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>();
    if total > options.max_environ {
        return Err((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the meta-variables are over the environment size limit",
        ));
    }
    Ok(())
}

/// The request's valid `Content-Length`.
pub(crate) fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The request body's length before any of it is read (RFC 3875 §4.2): the `declared`
/// one (`false`: the environ has it already), 0 for a body that has ended, or an exact size
/// hint (an HTTP/2 body whose frames add up; `true`: to pass on as `CONTENT_LENGTH`).
/// `None`: unknown, to spool or stream.
pub(crate) fn known_length(declared: Option<u64>, body: &impl Body) -> Option<(u64, bool)> {
    match declared {
        Some(length) => Some((length, false)),
        None if body.is_end_stream() => Some((0, false)),
        None => body.size_hint().exact().map(|length| (length, true)),
    }
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
pub(crate) fn command(target: &Target, options: &ProgramOptions, environ: &Environ) -> Command {
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
    stdout: &mut Output<ChildStdout>,
    limits: &Limits,
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
/// service, or `home`, under the same deadline.
pub(crate) async fn local_redirect(
    parts: http::request::Parts,
    location: Bytes,
    options: &ProgramOptions,
    home: impl FnOnce() -> Redirect,
    program: &Path,
    deadline: Option<Instant>,
) -> Response<ResponseBody> {
    let hops = parts.extensions.get::<Hop>().map_or(0, |hop| hop.count) + 1;
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
    request.extensions_mut().insert(Hop {
        count: hops,
        deadline,
    });
    let service = options.redirect.clone().unwrap_or_else(home);
    let response = service.call(request);
    match deadline {
        None => response.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, response).await {
            Ok(response) => response,
            Err(_) => fail(
                program,
                StatusCode::GATEWAY_TIMEOUT,
                &"the time limit expired while its local redirect was served",
            ),
        },
    }
}
