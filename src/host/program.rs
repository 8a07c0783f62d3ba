//! [`CgiProgram`]: one external CGI program as a tower service.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::future::ResponseFuture;
use super::options::{ProgramOptions, Stderr};
use super::redirect::Redirect;
use super::run::{Target, run};
use super::{ResponseBody, ShutdownHandle};
use crate::BoxError;

/// An external CGI program run once per request: a [`Service`] (Go's `cgi.Handler`).
///
/// Each call starts the program with the request's meta-variables (RFC 3875 §4.1, from
/// [`EnvironBuilder`](crate::environ::EnvironBuilder)) in an otherwise empty environment, streams the request body to its
/// standard input while its output is read, and answers with the response its output
/// describes (RFC 3875 §6). The service never fails (`Error = Infallible`): what goes wrong
/// becomes a response and a log line:
///
/// | what | response |
/// |---|---|
/// | the program cannot be started | 500 |
/// | malformed output: no header block, bad `Status`, no `Content-Type` without `Status` or `Location`, a line, block or field count over the limits | 502 |
/// | malformed output: an invalid or conflicting `Content-Length`, a `Transfer-Encoding` | 502 |
/// | the time limit expires before the head | 504 (the program is killed) |
/// | no process slot frees up within [`slot_wait`](Self::slot_wait), or [`max_waiting`](Self::max_waiting) requests wait for one already | 503, `Retry-After: 1` |
/// | the spool space shared by all requests ([`spool_limit`](Self::spool_limit)) is spent | 503, `Retry-After: 1` |
/// | the host is shutting down ([`ShutdownHandle`]) | 503, `Retry-After: 1` |
/// | a body longer than [`max_body`](Self::max_body) | 413 |
/// | a body that stalls longer than [`body_timeout`](Self::body_timeout) | 408 |
/// | meta-variables too large for `exec` ([`max_environ`](Self::max_environ)) | 431 |
/// | a request that cannot be passed (a NUL byte in a meta-variable, a failing body while spooled) | 400 |
/// | too many local redirects in a row | 500 |
///
/// The host's own refusals (4xx, 503) are logged as warnings (target `towergate::host`),
/// the program's failures (5xx) as errors.
///
/// Cloning is cheap (two `Arc`s); clones share the process slots, the spool budget and
/// the [`ShutdownHandle`]. Each setter below is the [`ProgramOptions`] setter of the same
/// name, where its default is given, applied to this program's options.
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
    target: Arc<Target>,
    options: Arc<ProgramOptions>,
}

impl fmt::Debug for CgiProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgiProgram")
            .field("path", &self.target.path)
            .field("options", &self.options)
            .finish()
    }
}

/// The [`ProgramOptions`] setters, for one program.
macro_rules! delegate {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(self, $($arg: $ty),*) -> Self {
                self.map_options(|options| options.$name($($arg),*))
            }
        )*
    };
}

impl CgiProgram {
    /// The program at `path`, with the default [`ProgramOptions`]. A relative path is made
    /// absolute against the current directory now, so that the working directory the
    /// program runs in does not change which file runs. `path` is also `argv[0]` and
    /// `SCRIPT_FILENAME`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let options = ProgramOptions::new();
        CgiProgram {
            target: Arc::new(Target::new(path, Bytes::new(), false, &options)),
            options: Arc::new(options),
        }
    }

    /// The program's path (absolute).
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    #[cfg(feature = "unstable-bench")]
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Every option at once, replacing those set so far (the script name and
    /// [`nph`](Self::nph) belong to the program and stay).
    pub fn options(self, options: ProgramOptions) -> Self {
        self.map_options(|_| options)
    }

    /// The program's options.
    pub fn get_options(&self) -> &ProgramOptions {
        &self.options
    }

    /// A handle that ends every running program of this service and its clones when a
    /// server shuts down: see [`ShutdownHandle`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.options.shutdown_handle()
    }

    fn map_options(mut self, f: impl FnOnce(ProgramOptions) -> ProgramOptions) -> Self {
        let options = f(Arc::unwrap_or_clone(self.options));
        Arc::make_mut(&mut self.target).refresh(&options);
        self.options = Arc::new(options);
        self
    }

    /// The mount point: `SCRIPT_NAME`, and the prefix removed from the path to give
    /// `PATH_INFO` (RFC 3875 §4.1.13, §4.1.5); a request whose path lies outside it (a
    /// service nested with the prefix stripped) gets its whole path as `PATH_INFO`.
    /// Trailing slashes are trimmed, so `/` is the root, `""`. Defaults to `""`.
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        let target = Arc::make_mut(&mut self.target);
        target.environ = target.environ.clone().script_name(script_name);
        self
    }

    /// Whether the program is a non-parsed-header program (RFC 3875 §5): its output starts
    /// with an HTTP status line (`HTTP/1.1 200 OK`) instead of CGI fields. The status line
    /// and header fields are parsed (hop-by-hop fields dropped; `Transfer-Encoding` is a
    /// 502, as from any program) and the body passed on unaltered. Defaults to false.
    pub fn nph(mut self, nph: bool) -> Self {
        Arc::make_mut(&mut self.target).nph = nph;
        self
    }

    delegate! {
        /// [`ProgramOptions::dir`].
        fn dir(dir: impl Into<PathBuf>);
        /// [`ProgramOptions::pass_authorization`].
        fn pass_authorization(pass: bool);
        /// [`ProgramOptions::timeout`].
        fn timeout(timeout: Duration);
        /// [`ProgramOptions::grace`].
        fn grace(grace: Duration);
        /// [`ProgramOptions::max_processes`].
        fn max_processes(max: usize);
        /// [`ProgramOptions::slot_wait`].
        fn slot_wait(wait: Duration);
        /// [`ProgramOptions::max_waiting`].
        fn max_waiting(max: usize);
        /// [`ProgramOptions::body_timeout`].
        fn body_timeout(timeout: Duration);
        /// [`ProgramOptions::max_body`].
        fn max_body(max: u64);
        /// [`ProgramOptions::spool`].
        fn spool(spool: bool);
        /// [`ProgramOptions::spool_memory`].
        fn spool_memory(bytes: usize);
        /// [`ProgramOptions::spool_dir`].
        fn spool_dir(dir: impl Into<PathBuf>);
        /// [`ProgramOptions::spool_limit`].
        fn spool_limit(bytes: u64);
        /// [`ProgramOptions::max_environ`].
        fn max_environ(bytes: usize);
        /// [`ProgramOptions::max_line`].
        fn max_line(bytes: usize);
        /// [`ProgramOptions::max_head`].
        fn max_head(bytes: usize);
        /// [`ProgramOptions::max_fields`].
        fn max_fields(fields: usize);
        /// [`ProgramOptions::stderr`].
        fn stderr(stderr: Stderr);
        /// [`ProgramOptions::max_redirects`].
        fn max_redirects(max: u32);
    }

    /// [`ProgramOptions::args`].
    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.map_options(|options| options.args(args))
    }

    /// [`ProgramOptions::env`].
    pub fn env(self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.map_options(|options| options.env(key, value))
    }

    /// [`ProgramOptions::inherit_env`].
    pub fn inherit_env(self, name: impl Into<OsString>) -> Self {
        self.map_options(|options| options.inherit_env(name))
    }

    /// [`ProgramOptions::server_software`].
    pub fn server_software(self, software: impl Into<Bytes>) -> Self {
        self.map_options(|options| options.server_software(software))
    }

    /// [`ProgramOptions::local_redirect`] (default: this service itself).
    pub fn local_redirect<S, RB>(self, service: S) -> Self
    where
        S: Service<Request<String>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        self.map_options(|options| options.local_redirect(service))
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
        let home = self.clone();
        ResponseFuture::new(run(
            self.target.clone(),
            self.options.clone(),
            request,
            move || Redirect::new(home),
        ))
    }
}
