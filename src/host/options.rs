//! [`ProgramOptions`]: how the host runs programs, shared by [`CgiProgram`](super::CgiProgram)
//! and [`CgiBin`](super::CgiBin). A leaf: it knows no service.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::redirect::Redirect;
use super::shutdown::{Registry, ShutdownHandle};
use super::slots::{DEFAULT_MAX_WAITING, Slots};
use super::spool::Budget;
use crate::BoxError;

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

/// The limits the head of a program's output must fit in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Longest line, without its line end.
    pub(crate) line: usize,
    /// Longest head, line ends and blank line included.
    pub(crate) head: usize,
    /// Most header fields.
    pub(crate) fields: usize,
}

impl Limits {
    /// The default limits of a program's head: see the setters.
    pub(crate) const DEFAULT: Limits = Limits {
        line: 8 * 1024,
        head: 64 * 1024,
        fields: 100,
    };
}

/// How the host runs programs: time limits, process slots, body and spool limits, the
/// environment, where standard error goes, local redirects. Shared by every program of a
/// [`CgiBin`](super::CgiBin) ([`CgiBin::options`](super::CgiBin::options)); a
/// [`CgiProgram`](super::CgiProgram) has the same setters.
///
/// Cloning is cheap enough (a few `Arc`s); clones share the process slots, the spool
/// budget and the [`ShutdownHandle`].
///
/// ```
/// use std::time::Duration;
/// use towergate::host::{CgiBin, ProgramOptions};
///
/// let options = ProgramOptions::new()
///     .timeout(Duration::from_secs(30))
///     .max_processes(8)
///     .slot_wait(Duration::from_secs(5))
///     .max_body(10 << 20)
///     .env("APP_MODE", "production");
/// assert_eq!(options.get_timeout(), Some(Duration::from_secs(30)));
/// let bin = CgiBin::new("/srv/cgi-bin").mount("/cgi-bin").options(options);
/// # let _ = bin;
/// ```
#[derive(Clone)]
pub struct ProgramOptions {
    pub(crate) args: Vec<OsString>,
    pub(crate) dir: Option<PathBuf>,
    /// `PATH`, `LD_LIBRARY_PATH`: set first.
    pub(crate) base_env: Vec<(OsString, OsString)>,
    pub(crate) inherited: Vec<(OsString, OsString)>,
    /// Set last: they win.
    pub(crate) extra_env: Vec<(OsString, OsString)>,
    pub(crate) pass_authorization: bool,
    pub(crate) server_software: Bytes,
    pub(crate) timeout: Option<Duration>,
    pub(crate) grace: Duration,
    pub(crate) slots: Option<Slots>,
    pub(crate) max_waiting: usize,
    pub(crate) max_processes: Option<usize>,
    pub(crate) slot_wait: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) max_body: u64,
    pub(crate) spool: bool,
    pub(crate) spool_memory: usize,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_budget: Arc<Budget>,
    pub(crate) max_environ: usize,
    pub(crate) limits: Limits,
    pub(crate) stderr: Stderr,
    pub(crate) redirect: Option<Redirect>,
    pub(crate) max_redirects: u32,
    pub(crate) registry: Arc<Registry>,
}

impl Default for ProgramOptions {
    fn default() -> Self {
        ProgramOptions::new()
    }
}

impl ProgramOptions {
    /// The defaults of every setter below.
    pub fn new() -> Self {
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
        ProgramOptions {
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
            max_waiting: DEFAULT_MAX_WAITING,
            max_processes: None,
            slot_wait: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_body: 1 << 30,
            spool: true,
            spool_memory: 1 << 20,
            spool_dir: None,
            spool_budget: Arc::new(Budget::new(2 << 30)),
            max_environ: 1 << 20,
            limits: Limits::DEFAULT,
            stderr: Stderr::Log,
            redirect: None,
            max_redirects: 10,
            registry: Arc::new(Registry::new()),
        }
    }

    pub(crate) fn envs(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.base_env
            .iter()
            .chain(&self.inherited)
            .chain(&self.extra_env)
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// Arguments after `argv[0]`. Defaults to none.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The working directory (RFC 3875 §7.2). Defaults to the program's directory (for a
    /// [`CgiBin`](super::CgiBin), the directory served).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// An extra environment variable, set after every other one, so it can override
    /// anything, `PATH` included (as Go's `Env`). Repeatable. Defaults to none.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.extra_env.push((key.into(), value.into()));
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
            self.inherited.push((name, value));
        }
        self
    }

    /// Whether the `Authorization` header is passed as `HTTP_AUTHORIZATION` (RFC 3875 §9.2,
    /// Apache's `CGIPassAuth`). Defaults to false.
    pub fn pass_authorization(mut self, pass: bool) -> Self {
        self.pass_authorization = pass;
        self
    }

    /// `SERVER_SOFTWARE` (RFC 3875 §4.1.17). Defaults to `towergate/VERSION`.
    pub fn server_software(mut self, software: impl Into<Bytes>) -> Self {
        self.server_software = software.into();
        self
    }

    /// The time limit of a request's programs: it starts when the first program starts
    /// (waiting for a process slot and for the request body does not count, they have
    /// their own limits: [`slot_wait`](Self::slot_wait), [`body_timeout`](Self::body_timeout))
    /// and covers the programs its local redirects run. On expiry the program's process
    /// group gets `SIGTERM`, then `SIGKILL` after [`grace`](Self::grace), and is reaped;
    /// the response is 504 if its head was not sent, else the body ends with an error.
    /// Defaults to none (no limit, like Go).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The [`timeout`](Self::timeout), if any.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// How long a process group has to exit after `SIGTERM` before `SIGKILL`. Defaults to
    /// 3 seconds (Apache's).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The most programs running at once, across every service sharing these options. A
    /// request beyond it waits in line for a slot (first come, first served) inside the
    /// response future, for at most [`slot_wait`](Self::slot_wait): then it gets 503 with
    /// `Retry-After: 1`; at most [`max_waiting`](Self::max_waiting) wait. `poll_ready` is
    /// always ready. A slot is taken when the program starts (after the request body's
    /// first bytes arrived) and freed when it is reaped. Defaults to no limit.
    pub fn max_processes(mut self, max: usize) -> Self {
        self.max_processes = Some(max);
        self.slots = Some(Slots::new(max));
        self
    }

    /// How many requests may wait for a process slot
    /// ([`max_processes`](Self::max_processes)): past it a request gets 503 with
    /// `Retry-After: 1` at once. A waiting request holds memory (its head, its stream, a
    /// few KiB), and an HTTP/2 client can send hundreds at once on each connection: the
    /// limit keeps a flood of them from growing the server without bound. `0` lets no
    /// request wait. Defaults to 1024.
    pub fn max_waiting(mut self, max: usize) -> Self {
        self.max_waiting = max;
        self
    }

    /// How long a request waits for a process slot ([`max_processes`](Self::max_processes))
    /// before it gets 503 with `Retry-After: 1`. Not counted in the
    /// [`timeout`](Self::timeout). Defaults to 10 seconds.
    pub fn slot_wait(mut self, wait: Duration) -> Self {
        self.slot_wait = wait;
        self
    }

    /// The longest wait for the next piece of the request body. The program starts once
    /// the body's first bytes arrived (or the whole body, when it is spooled), so a client
    /// that trickles nothing holds no process slot; a body that stalls longer gets 408 (a
    /// running program is killed; after its head the response body ends with an error).
    /// Defaults to 30 seconds.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The longest request body accepted, in bytes: a longer declared `Content-Length`, or
    /// a spooled body that grows past it, gets 413 before the program starts; spooling stops
    /// at the limit. Defaults to 1 GiB.
    pub fn max_body(mut self, max: u64) -> Self {
        self.max_body = max;
        self
    }

    /// Whether a request body of unknown length (chunked, HTTP/2) is spooled first, so that
    /// `CONTENT_LENGTH` is exact (RFC 3875 §4.2). When false such a body is streamed to the
    /// program with no `CONTENT_LENGTH` and `HTTP_TRANSFER_ENCODING=chunked`, for programs
    /// that read to end of file (towergate's own CGI side does). Defaults to true.
    pub fn spool(mut self, spool: bool) -> Self {
        self.spool = spool;
        self
    }

    /// How much of a spooled body stays in memory; the rest goes to an unlinked temporary
    /// file. Defaults to 1 MiB.
    pub fn spool_memory(mut self, bytes: usize) -> Self {
        self.spool_memory = bytes;
        self
    }

    /// Where spool files are created. Defaults to [`std::env::temp_dir`].
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The most bytes all spooled bodies may hold at once (memory and files together),
    /// across every service sharing these options. A spool that would go past it stops
    /// and the request gets 503 with `Retry-After: 1`; a spooled body's bytes count until
    /// its program is reaped. Defaults to 2 GiB.
    pub fn spool_limit(mut self, bytes: u64) -> Self {
        self.spool_budget = Arc::new(Budget::new(bytes));
        self
    }

    /// The largest environment a program is started with, in bytes (every `NAME=value`
    /// plus its terminating NUL). A request whose meta-variables go past it, or with one
    /// variable over Linux's 128 KiB per-string limit (`MAX_ARG_STRLEN`), gets 431 Request
    /// Header Fields Too Large and a warning, instead of a failing `exec`. Defaults to
    /// 1 MiB.
    pub fn max_environ(mut self, bytes: usize) -> Self {
        self.max_environ = bytes;
        self
    }

    /// The longest line of the program's header block, in bytes. Defaults to 8 KiB.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.limits.line = bytes;
        self
    }

    /// The largest header block, in bytes. Defaults to 64 KiB.
    pub fn max_head(mut self, bytes: usize) -> Self {
        self.limits.head = bytes;
        self
    }

    /// The most header fields in the block. Defaults to 100 (Apache's
    /// `LimitRequestFields`).
    pub fn max_fields(mut self, fields: usize) -> Self {
        self.limits.fields = fields;
        self
    }

    /// Where the program's standard error goes. Defaults to [`Stderr::Log`].
    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.stderr = stderr;
        self
    }

    /// The service a local redirect (`Location: /path`, no `Status`, RFC 3875 §6.2.2) is
    /// served by: a `GET` (a `HEAD` for a `HEAD`) of the new path and query, with the
    /// original request's headers minus its body's (`Content-Length`, `Content-Type`,
    /// `Transfer-Encoding`), its version and extensions, and an empty `String` body.
    /// Defaults to the service that ran the program.
    pub fn local_redirect<S, RB>(mut self, service: S) -> Self
    where
        S: Service<Request<String>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        self.redirect = Some(Redirect::new(service));
        self
    }

    /// The most local redirects followed for one request; one more gets 500. Defaults to
    /// 10 (Apache's `LimitInternalRecursion`).
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.max_redirects = max;
        self
    }

    /// A handle that ends every program run with these options (or their clones): see
    /// [`ShutdownHandle`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.registry.clone())
    }
}

impl fmt::Debug for ProgramOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramOptions")
            .field("args", &self.args)
            .field("dir", &self.dir)
            .field("extra_env", &self.extra_env)
            .field("inherited", &self.inherited)
            .field("pass_authorization", &self.pass_authorization)
            .field("timeout", &self.timeout)
            .field("grace", &self.grace)
            .field("max_processes", &self.max_processes)
            .field("slot_wait", &self.slot_wait)
            .field("max_waiting", &self.max_waiting)
            .field("body_timeout", &self.body_timeout)
            .field("max_body", &self.max_body)
            .field("spool", &self.spool)
            .field("spool_memory", &self.spool_memory)
            .field("spool_limit", &self.spool_budget.limit())
            .field("max_environ", &self.max_environ)
            .field("limits", &self.limits)
            .field("stderr", &self.stderr)
            .field("local_redirect", &self.redirect.is_some())
            .field("max_redirects", &self.max_redirects)
            .finish()
    }
}
