//! [`CgiProgram`]: one external CGI program as a tower service.

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::sync::Semaphore;
use tower_service::Service;

use super::ResponseBody;
use super::future::ResponseFuture;
use super::head::Limits;
use super::run::{Dispatch, Redirect, Target, run};
use crate::BoxError;
use crate::environ::EnvironBuilder;

/// Where a program's standard error goes. It is never mixed into the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stderr {
    /// Read line by line and logged: a `tracing` warning (target `towergate::host::stderr`,
    /// with the program's path) when a subscriber is installed, else a line on the host's
    /// standard error prefixed with the program's path. The default.
    #[default]
    Log,
    /// The host process's own standard error, shared as is (no reading task).
    Inherit,
    /// Discarded (`/dev/null`).
    Null,
}

/// The search path given to programs when the host has no `PATH` (Go's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin:/usr/ucb:/usr/bsd:/usr/local/bin";

/// The options shared by every program a host runs.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) args: Vec<OsString>,
    pub(crate) dir: Option<PathBuf>,
    /// `PATH`, `LD_LIBRARY_PATH`, inherited names, then extra variables: later ones win.
    pub(crate) base_env: Vec<(OsString, OsString)>,
    pub(crate) inherited: Vec<(OsString, OsString)>,
    pub(crate) extra_env: Vec<(OsString, OsString)>,
    pub(crate) pass_authorization: bool,
    pub(crate) server_software: Bytes,
    pub(crate) timeout: Option<Duration>,
    pub(crate) grace: Duration,
    pub(crate) slots: Option<Arc<Semaphore>>,
    pub(crate) max_processes: Option<usize>,
    pub(crate) max_body: u64,
    pub(crate) spool: bool,
    pub(crate) spool_memory: usize,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) limits: Limits,
    pub(crate) nph: bool,
    pub(crate) stderr: Stderr,
    pub(crate) redirect: Option<Redirect>,
    pub(crate) max_redirects: u32,
}

impl Options {
    fn new() -> Self {
        let mut base_env = vec![(
            OsString::from("PATH"),
            std::env::var_os("PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PATH.into()),
        )];
        // Like Go: the dynamic linker's search path, so programs built against libraries
        // outside the default path still start.
        if let Some(value) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
            base_env.push(("LD_LIBRARY_PATH".into(), value));
        }
        Options {
            args: Vec::new(),
            dir: None,
            base_env,
            inherited: Vec::new(),
            extra_env: Vec::new(),
            pass_authorization: false,
            server_software: Bytes::from_static(crate::SERVER_SOFTWARE.as_bytes()),
            timeout: None,
            grace: Duration::from_secs(3),
            slots: None,
            max_processes: None,
            max_body: 1 << 30,
            spool: true,
            spool_memory: 1 << 20,
            spool_dir: None,
            limits: Options::default_limits(),
            nph: false,
            stderr: Stderr::Log,
            redirect: None,
            max_redirects: 10,
        }
    }

    /// The default limits of a program's head: see the setters.
    pub(crate) const fn default_limits() -> Limits {
        Limits {
            line: 8 * 1024,
            head: 64 * 1024,
            fields: 100,
        }
    }

    pub(crate) fn envs(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.base_env
            .iter()
            .chain(&self.inherited)
            .chain(&self.extra_env)
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("args", &self.args)
            .field("dir", &self.dir)
            .field("extra_env", &self.extra_env)
            .field("inherited", &self.inherited)
            .field("pass_authorization", &self.pass_authorization)
            .field("timeout", &self.timeout)
            .field("grace", &self.grace)
            .field("max_processes", &self.max_processes)
            .field("max_body", &self.max_body)
            .field("spool", &self.spool)
            .field("spool_memory", &self.spool_memory)
            .field("limits", &self.limits)
            .field("nph", &self.nph)
            .field("stderr", &self.stderr)
            .field("local_redirect", &self.redirect.is_some())
            .field("max_redirects", &self.max_redirects)
            .finish()
    }
}

/// An external CGI program run once per request: a [`Service`] (Go's `cgi.Handler`).
///
/// Each call starts the program with the request's meta-variables (RFC 3875 §4.1, from
/// [`EnvironBuilder`]) in an otherwise empty environment, streams the request body to its
/// standard input while its output is read, and answers with the response its output
/// describes (RFC 3875 §6). The service never fails (`Error = Infallible`): what goes wrong
/// becomes a response and a log line:
///
/// | what | response |
/// |---|---|
/// | the program cannot be started | 500 |
/// | malformed output: no header block, bad `Status`, no `Content-Type` without `Status` or `Location`, a line, block or field count over the limits | 502 |
/// | the time limit expires before the head | 504 (the program is killed) |
/// | no process slot frees up within the time limit | 503 |
/// | a body longer than [`max_body`](Self::max_body) | 413 |
/// | a request that cannot be passed (a NUL byte in a meta-variable, a failing body while spooled) | 400 |
/// | too many local redirects in a row | 500 |
///
/// Cloning is cheap (two `Arc`s); clones share the process slots.
///
/// ```no_run
/// use std::time::Duration;
/// use towergate::host::CgiProgram;
///
/// let program = CgiProgram::new("/usr/lib/git-core/git-http-backend")
///     .script_name("/git")
///     .env("GIT_PROJECT_ROOT", "/srv/git")
///     .env("GIT_HTTP_EXPORT_ALL", "1")
///     .timeout(Duration::from_secs(300))
///     .max_processes(16);
/// let app = axum::Router::new().route_service("/git/{*rest}", program);
/// # let _: axum::Router = app;
/// ```
#[derive(Clone)]
pub struct CgiProgram {
    pub(crate) target: Arc<Target>,
    pub(crate) options: Arc<Options>,
}

impl fmt::Debug for CgiProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgiProgram")
            .field("path", &self.target.path)
            .field("options", &self.options)
            .finish()
    }
}

impl CgiProgram {
    /// The program at `path`, with the defaults of every setter below. A relative path is
    /// made absolute against the current directory now, so that the working directory the
    /// program runs in does not change which file runs. `path` is also `argv[0]` and
    /// `SCRIPT_FILENAME`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let options = Options::new();
        CgiProgram {
            target: Arc::new(Target::new(path, Bytes::new(), false, &options)),
            options: Arc::new(options),
        }
    }

    /// The program's path (absolute).
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    fn options_mut(&mut self) -> &mut Options {
        Arc::make_mut(&mut self.options)
    }

    fn target_mut(&mut self) -> &mut Target {
        Arc::make_mut(&mut self.target)
    }

    /// Arguments after `argv[0]`. Defaults to none.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.options_mut().args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The working directory (RFC 3875 §7.2). Defaults to the program's directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options_mut().dir = Some(dir.into());
        self
    }

    /// The mount point: `SCRIPT_NAME`, and the prefix removed from the path to give
    /// `PATH_INFO` (RFC 3875 §4.1.13, §4.1.5). Trailing slashes are trimmed, so `/` is the
    /// root, `""`. Defaults to `""`.
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        let target = self.target_mut();
        target.environ = target.environ.clone().script_name(script_name);
        self
    }

    /// An extra environment variable, set after every other one, so it can override
    /// anything, `PATH` included (as Go's `Env`). Repeatable. Defaults to none.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.options_mut()
            .extra_env
            .push((key.into(), value.into()));
        self
    }

    /// A variable of the host's environment to pass on, read now; unset or empty variables
    /// are skipped (as Go's `InheritEnv`). Repeatable. Defaults to none: the program sees
    /// only its meta-variables, `PATH` (the host's, or
    /// `/bin:/usr/bin:/usr/ucb:/usr/bsd:/usr/local/bin`) and `LD_LIBRARY_PATH` when the host
    /// has one.
    pub fn inherit_env(mut self, name: impl Into<OsString>) -> Self {
        let name = name.into();
        if let Some(value) = std::env::var_os(&name).filter(|v| !v.is_empty()) {
            self.options_mut().inherited.push((name, value));
        }
        self
    }

    /// Whether the `Authorization` header is passed as `HTTP_AUTHORIZATION` (RFC 3875 §9.2,
    /// Apache's `CGIPassAuth`). Defaults to false.
    pub fn pass_authorization(mut self, pass: bool) -> Self {
        self.options_mut().pass_authorization = pass;
        let options = self.options.clone();
        self.target_mut().refresh(&options);
        self
    }

    /// `SERVER_SOFTWARE` (RFC 3875 §4.1.17). Defaults to `towergate/VERSION`.
    pub fn server_software(mut self, software: impl Into<Bytes>) -> Self {
        self.options_mut().server_software = software.into();
        let options = self.options.clone();
        self.target_mut().refresh(&options);
        self
    }

    /// The time limit of one run, from the request's arrival (waiting for a process slot
    /// and spooling the body count) to the end of the program's output. On expiry the
    /// program's process group gets `SIGTERM`, then `SIGKILL` after [`grace`](Self::grace),
    /// and is reaped; the response is 504 if its head was not sent, else the body ends with
    /// an error. Defaults to none (no limit, like Go).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options_mut().timeout = Some(timeout);
        self
    }

    /// How long a program has to exit after `SIGTERM` before `SIGKILL`. Defaults to 3
    /// seconds (Apache's).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options_mut().grace = grace;
        self
    }

    /// The most programs running at once, across this service and its clones. A request
    /// beyond it waits in line for a slot (first come, first served) inside the response
    /// future, for at most the [`timeout`](Self::timeout): then it gets 503. `poll_ready`
    /// is always ready. A slot is freed when the program is reaped. Defaults to no limit.
    pub fn max_processes(mut self, max: usize) -> Self {
        let options = self.options_mut();
        options.max_processes = Some(max);
        options.slots = Some(Arc::new(Semaphore::new(max)));
        self
    }

    /// The longest request body accepted, in bytes: a longer declared `Content-Length`, or
    /// a spooled body that grows past it, gets 413 before the program starts. Defaults to
    /// 1 GiB.
    pub fn max_body(mut self, max: u64) -> Self {
        self.options_mut().max_body = max;
        self
    }

    /// Whether a request body of unknown length (chunked, HTTP/2) is spooled first, so that
    /// `CONTENT_LENGTH` is exact (RFC 3875 §4.2). When false such a body is streamed to the
    /// program with no `CONTENT_LENGTH` and `HTTP_TRANSFER_ENCODING=chunked`, for programs
    /// that read to end of file (towergate's own CGI side does). Defaults to true.
    pub fn spool(mut self, spool: bool) -> Self {
        self.options_mut().spool = spool;
        self
    }

    /// How much of a spooled body stays in memory; the rest goes to an unlinked temporary
    /// file. Defaults to 1 MiB.
    pub fn spool_memory(mut self, bytes: usize) -> Self {
        self.options_mut().spool_memory = bytes;
        self
    }

    /// Where spool files are created. Defaults to [`std::env::temp_dir`].
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options_mut().spool_dir = Some(dir.into());
        self
    }

    /// The longest line of the program's header block, in bytes. Defaults to 8 KiB.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.options_mut().limits.line = bytes;
        self
    }

    /// The largest header block, in bytes. Defaults to 64 KiB.
    pub fn max_head(mut self, bytes: usize) -> Self {
        self.options_mut().limits.head = bytes;
        self
    }

    /// The most header fields in the block. Defaults to 100 (Apache's
    /// `LimitRequestFields`).
    pub fn max_fields(mut self, fields: usize) -> Self {
        self.options_mut().limits.fields = fields;
        self
    }

    /// Whether the program is a non-parsed-header program (RFC 3875 §5): its output starts
    /// with an HTTP status line (`HTTP/1.1 200 OK`) instead of CGI fields. The status line
    /// and header fields are parsed (hop-by-hop fields dropped) and the body passed on
    /// unaltered. Defaults to false.
    pub fn nph(mut self, nph: bool) -> Self {
        self.target_mut().nph = nph;
        self
    }

    /// Where the program's standard error goes. Defaults to [`Stderr::Log`].
    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.options_mut().stderr = stderr;
        self
    }

    /// The service a local redirect (`Location: /path`, no `Status`, RFC 3875 §6.2.2) is
    /// served by: a `GET` (a `HEAD` for a `HEAD`) of the new path and query, with the
    /// original request's headers minus its body's (`Content-Length`, `Content-Type`,
    /// `Transfer-Encoding`), its version and extensions, and an empty `String` body.
    /// Defaults to this service itself.
    pub fn local_redirect<S, RB>(mut self, service: S) -> Self
    where
        S: Service<Request<String>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        self.options_mut().redirect = Some(Redirect::new(service));
        self
    }

    /// The most local redirects followed for one request; one more gets 500. Defaults to
    /// 10 (Apache's `LimitInternalRecursion`).
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.options_mut().max_redirects = max;
        self
    }
}

impl Default for CgiProgram {
    /// A program with an empty path and the default options: a template for
    /// [`CgiBin::options`](super::CgiBin::options).
    fn default() -> Self {
        let options = Options::new();
        CgiProgram {
            target: Arc::new(Target::new(PathBuf::new(), Bytes::new(), false, &options)),
            options: Arc::new(options),
        }
    }
}

impl<B> Service<Request<B>> for CgiProgram
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        ResponseFuture::new(run(
            self.target.clone(),
            self.options.clone(),
            request,
            Dispatch::Program(self.clone()),
        ))
    }
}

impl Target {
    pub(crate) fn new(path: PathBuf, script_name: Bytes, nph: bool, options: &Options) -> Self {
        let mut target = Target {
            environ: EnvironBuilder::new(),
            exec_dir: path.parent().map(Path::to_path_buf),
            path: Arc::from(path),
            nph,
        };
        target.environ = target.environ.clone().script_name(script_name);
        target.refresh(options);
        target
    }

    /// Brings the prepared [`EnvironBuilder`] in line with `options`.
    pub(crate) fn refresh(&mut self, options: &Options) {
        self.environ = self
            .environ
            .clone()
            .script_filename(Bytes::copy_from_slice(self.path.as_os_str().as_bytes()))
            .pass_authorization(options.pass_authorization)
            .server_software(options.server_software.clone());
    }
}
