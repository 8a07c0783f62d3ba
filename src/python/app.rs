//! [`WsgiApp`] and its [`Builder`].

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::oneshot;

use super::body::{Closer, End, WsgiBody};
use super::environ::environ_dict;
use super::error::{ImportError, PythonError};
use super::file::as_file;
use super::pool::Pool;
use super::respond::StartResponseFn;
use crate::error_response::Overloaded;
use crate::gateway::{App, Msg, Sink, StartResponse, Unsent, channel, stalled};
use crate::{BoxError, Environ};

/// The default number of Python threads of an app.
pub const DEFAULT_THREADS: usize = 8;

pub use crate::gateway::DEFAULT_SEND_TIMEOUT;

/// The default of [`Builder::timeout`]: 60 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The default of [`Builder::max_queued`]: 1024 requests.
pub const DEFAULT_MAX_QUEUED: usize = 1024;

/// A Python WSGI app (PEP 3333) as a gateway [`App`]: Flask, Django, any
/// `app(environ, start_response)` callable.
///
/// Load it with [`import`](Self::import) (`"package.module:attr"`), or with a
/// [`Builder`] to set the Python path, the virtualenv and the number of threads; serve it
/// with [`AppService`](crate::service::AppService) or any gateway handler. Clones share the
/// app and its threads. See the [module docs](super) for what each request goes through.
///
/// ```
/// use towergate::python::WsgiApp;
///
/// let err = WsgiApp::import("no_such_module:app").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "cannot import no_such_module: ModuleNotFoundError: No module named 'no_such_module'"
/// );
/// assert!(err.traceback().unwrap().ends_with("No module named 'no_such_module'"));
///
/// let err = WsgiApp::import("sys:version").unwrap_err(); // a str, not a callable
/// assert_eq!(err.to_string(), "sys:version is not callable");
/// ```
#[derive(Clone)]
pub struct WsgiApp {
    inner: Arc<Inner>,
}

struct Inner {
    app: Py<PyAny>,
    pool: Pool,
    name: String,
    send_timeout: Duration,
    timeout: Option<Duration>,
    max_queued: Option<usize>,
}

impl fmt::Debug for WsgiApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsgiApp")
            .field("app", &self.inner.name)
            .field("threads", &self.inner.pool.threads())
            .field("timeout", &self.inner.timeout)
            .field("max_queued", &self.inner.max_queued)
            .finish_non_exhaustive()
    }
}

impl WsgiApp {
    /// Imports `target`, `"package.module:attr"` (the attribute may be dotted, and defaults
    /// to `application` when there is no `:`), with the [`Builder`]'s defaults.
    ///
    /// # Errors
    ///
    /// When the module fails to import, the attribute is missing or is not callable.
    pub fn import(target: &str) -> Result<Self, ImportError> {
        Builder::new().import(target)
    }

    /// The app `app`, a Python callable, with the [`Builder`]'s defaults.
    ///
    /// # Errors
    ///
    /// When `app` is not callable, or the threads cannot be started.
    pub fn from_object(app: Py<PyAny>) -> Result<Self, ImportError> {
        Builder::new().from_object(app)
    }

    /// A builder, to set the Python path, the virtualenv and the threads.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// How many Python threads serve this app.
    pub fn threads(&self) -> usize {
        self.inner.pool.threads()
    }

    /// Whether a thread keeps the GIL from one queued request to the next
    /// ([`Builder::keep_gil`]).
    pub fn keeps_gil(&self) -> bool {
        self.inner.pool.keeps_gil()
    }

    /// How long the app may go without output ([`Builder::timeout`]); `None`: no limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// How many requests may wait for a Python thread ([`Builder::max_queued`]); `None`:
    /// no limit.
    pub fn max_queued(&self) -> Option<usize> {
        self.inner.max_queued
    }

    /// The Python callable.
    pub fn as_object(&self) -> &Py<PyAny> {
        &self.inner.app
    }
}

/// Loads a [`WsgiApp`]: the interpreter's module search path and the app's threads.
///
/// ```
/// use pyo3::prelude::*;
/// use towergate::python::{WsgiApp, DEFAULT_THREADS};
///
/// // Any Python callable is accepted; a real app takes (environ, start_response).
/// Python::initialize();
/// let callable = Python::attach(|py| -> PyResult<Py<PyAny>> {
///     Ok(py.import("wsgiref.simple_server")?.getattr("demo_app")?.unbind())
/// })
/// .unwrap();
/// let app = WsgiApp::builder().threads(2).from_object(callable).unwrap();
/// assert_eq!(app.threads(), 2);
/// assert_eq!(WsgiApp::import("wsgiref.simple_server:demo_app").unwrap().threads(), DEFAULT_THREADS);
/// ```
///
/// A Django project in a virtualenv:
///
/// ```no_run
/// use towergate::python::WsgiApp;
///
/// let app = WsgiApp::builder()
///     .python_path("/srv/mysite")
///     .virtualenv("/srv/mysite/.venv")
///     .threads(16)
///     .import("mysite.wsgi:application")?;
/// assert_eq!(app.threads(), 16);
/// # Ok::<(), towergate::python::ImportError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    python_path: Vec<PathBuf>,
    virtualenv: Option<PathBuf>,
    threads: usize,
    keep_gil: bool,
    send_timeout: Duration,
    timeout: Option<Duration>,
    max_queued: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: no extra path, the virtualenv named by `VIRTUAL_ENV` if set, and
    /// [`DEFAULT_THREADS`] threads.
    ///
    /// Starts the interpreter if it is not running yet (see the [module docs](super)).
    pub fn new() -> Self {
        Python::initialize();
        Builder {
            python_path: Vec::new(),
            virtualenv: std::env::var_os("VIRTUAL_ENV")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            threads: DEFAULT_THREADS,
            keep_gil: true,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            timeout: Some(DEFAULT_TIMEOUT),
            max_queued: Some(DEFAULT_MAX_QUEUED),
        }
    }

    /// A directory put in front of `sys.path` (repeatable; earlier calls come first), where
    /// the app's modules are found. Defaults to none.
    pub fn python_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.python_path.push(dir.into());
        self
    }

    /// A virtualenv whose `site-packages` is added to `sys.path` (with its `.pth` files,
    /// through `site.addsitedir`): an embedded interpreter does not look at `VIRTUAL_ENV` by
    /// itself. The virtualenv must be made from the interpreter the program was built
    /// against. Defaults to the `VIRTUAL_ENV` environment variable, if set.
    pub fn virtualenv(mut self, dir: impl Into<PathBuf>) -> Self {
        self.virtualenv = Some(dir.into());
        self
    }

    /// How many threads run Python code for the app: the number of requests the app works
    /// on at once (others wait in a queue). Python holds its GIL while it runs, so threads
    /// help apps that wait (on databases, files, other services, slow clients) rather than
    /// ones that compute. Defaults to [`DEFAULT_THREADS`] (8); 0 counts as 1.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Whether a thread that finishes a request goes on with the next queued one without
    /// letting go of the GIL. Defaults to `true`.
    ///
    /// With `true`, requests are taken under the GIL. While requests wait, one idle thread
    /// waits for the GIL without a request; it gets the GIL as soon as the running thread
    /// waits (for I/O, a sleep, a lock, C code that lets go of the GIL), or when Python
    /// makes that thread let go (every `sys.getswitchinterval()`, 5 ms), and takes the
    /// queue over. An app that computes then runs its requests one after the other on one
    /// thread, with no GIL hand-over between them; an app that waits has as many threads
    /// running as it needs, at once.
    ///
    /// With `false`, every thread that takes a request then waits for the GIL with it, and
    /// the GIL changes hands between requests, as in Granian and gunicorn's threads.
    ///
    /// Measured with one process on a multi-threaded runtime (BENCHMARKS.md, 2026-12-02):
    /// `true` served a Flask hello at 1.25× Granian against 0.92× with `false`, a plain
    /// hello at 1.05× against 0.91×, and an app that sleeps 0.2 ms a request as fast. With
    /// a process per core, each on a current-thread runtime, `false` served Flask 1.2× as
    /// fast as `true`: `towergate wsgi` keeps the GIL only with one process. Keeping it
    /// lengthens the tail of an app that computes: a request whose thread Python makes let
    /// go of the GIL waits while the thread that took it answers the queued ones (Flask
    /// hello, one process: p99 70 ms against 39 ms, Granian 51 ms).
    ///
    /// ```no_run
    /// use towergate::python::WsgiApp;
    ///
    /// let app = WsgiApp::builder().keep_gil(false).import("mysite.wsgi:application")?;
    /// assert!(!app.keeps_gil());
    /// # Ok::<(), towergate::python::ImportError>(())
    /// ```
    pub fn keep_gil(mut self, keep: bool) -> Self {
        self.keep_gil = keep;
        self
    }

    /// How long a Python thread waits for the client to take the response's output: the
    /// result's chunks and `write()` output go through a small buffer, and a client that
    /// stops reading would otherwise keep the thread for as long as its connection lives.
    /// Past the timeout the thread stops iterating (the result is closed), or `write()`
    /// raises `OSError` in the app; a line is logged and the response is cut. Defaults to
    /// [`DEFAULT_SEND_TIMEOUT`] (60 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long the app may go without output: from the request's call (its wait for a
    /// thread included) to the first piece of the response, then between two pieces while
    /// the client waits for the next. Time in which the request body comes in does not
    /// count: a slow upload is the client's time. Past it the response fails with
    /// [`TimedOut`](crate::error_response::TimedOut): before the head, the error response
    /// (`504 Gateway Timeout` by default), after it the response is cut; a line is logged
    /// either way. When the app was waiting in a read of `wsgi.input` for a body that
    /// stopped arriving, the error is
    /// [`BodyStalled`](crate::error_response::BodyStalled) instead (`408 Request Timeout`),
    /// and the read raises `OSError`. Python code cannot be interrupted: the app's thread
    /// goes on until the app next produces output, which then fails as for a client gone
    /// away (the result is closed), or returns. `None` sets no limit. Defaults to
    /// [`DEFAULT_TIMEOUT`] (60 s).
    ///
    /// The limit is counted by the async runtime's timer (tokio's time driver, which
    /// `#[tokio::main]` and `towergate`'s own runtimes enable).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towergate::python::{DEFAULT_TIMEOUT, WsgiApp};
    ///
    /// let demo = "wsgiref.simple_server:demo_app";
    /// assert_eq!(WsgiApp::import(demo).unwrap().timeout(), Some(DEFAULT_TIMEOUT));
    /// let reports = WsgiApp::builder().timeout(Duration::from_secs(600)).import(demo).unwrap();
    /// assert_eq!(reports.timeout(), Some(Duration::from_secs(600)));
    /// let unlimited = WsgiApp::builder().timeout(None).import(demo).unwrap();
    /// assert_eq!(unlimited.timeout(), None);
    /// ```
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// How many requests may wait for a Python thread: when every thread is busy and this
    /// many wait already, a request is refused at once with
    /// [`Overloaded`](crate::error_response::Overloaded), which the default error response
    /// answers with `503 Service Unavailable` and `Retry-After: 1` (a line is logged). A
    /// waiting request holds memory (its head, its stream, a few KiB), and an HTTP/2 client
    /// can send hundreds at once on each connection: the limit keeps a flood of them, or a
    /// stalled app, from growing the server without bound. `0` lets no request wait;
    /// `None` sets no limit. Defaults to [`DEFAULT_MAX_QUEUED`] (1024).
    ///
    /// ```
    /// use towergate::python::{DEFAULT_MAX_QUEUED, WsgiApp};
    ///
    /// let demo = "wsgiref.simple_server:demo_app";
    /// assert_eq!(WsgiApp::import(demo).unwrap().max_queued(), Some(DEFAULT_MAX_QUEUED));
    /// let app = WsgiApp::builder().max_queued(64).import(demo).unwrap();
    /// assert_eq!(app.max_queued(), Some(64));
    /// assert_eq!(WsgiApp::builder().max_queued(None).import(demo).unwrap().max_queued(), None);
    /// ```
    pub fn max_queued(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_queued = max.into();
        self
    }

    /// Imports `target`, `"package.module:attr"`.
    ///
    /// # Errors
    ///
    /// When the paths cannot be set up, the module fails to import, the attribute is
    /// missing or is not callable. The error carries the Python traceback.
    pub fn import(self, target: &str) -> Result<WsgiApp, ImportError> {
        let (module, attr) = target.split_once(':').unwrap_or((target, "application"));
        if module.is_empty() || attr.is_empty() {
            return Err(ImportError::new(format!(
                "{target:?} is not MODULE:ATTR (for example mysite.wsgi:application)"
            )));
        }
        let app = Python::attach(|py| -> Result<Py<PyAny>, ImportError> {
            self.setup_paths(py)?;
            let mut object = py
                .import(module)
                .map_err(|e| ImportError::python(py, format!("cannot import {module}"), &e))?
                .into_any();
            for part in attr.split('.') {
                object = object.getattr(part).map_err(|e| {
                    ImportError::python(py, format!("{module} has no attribute {attr}"), &e)
                })?;
            }
            Ok(object.unbind())
        })?;
        self.start(app, target.to_owned())
    }

    /// The app `app`, a Python callable.
    ///
    /// # Errors
    ///
    /// When the paths cannot be set up, `app` is not callable or the threads cannot start.
    pub fn from_object(self, app: Py<PyAny>) -> Result<WsgiApp, ImportError> {
        let name = Python::attach(|py| -> Result<String, ImportError> {
            self.setup_paths(py)?;
            Ok(app
                .bind(py)
                .repr()
                .map_or_else(|_| "<app>".to_owned(), |r| r.to_string()))
        })?;
        self.start(app, name)
    }

    fn start(self, app: Py<PyAny>, name: String) -> Result<WsgiApp, ImportError> {
        let callable = Python::attach(|py| app.bind(py).is_callable());
        if !callable {
            return Err(ImportError::new(format!("{name} is not callable")));
        }
        let pool = Pool::new(self.threads, self.keep_gil)
            .map_err(|e| ImportError::new(format!("cannot start the Python threads: {e}")))?;
        Ok(WsgiApp {
            inner: Arc::new(Inner {
                app,
                pool,
                name,
                send_timeout: self.send_timeout,
                timeout: self.timeout,
                max_queued: self.max_queued,
            }),
        })
    }

    fn setup_paths(&self, py: Python<'_>) -> Result<(), ImportError> {
        let sys = py
            .import("sys")
            .map_err(|e| ImportError::python(py, "cannot import sys", &e))?;
        if let Some(venv) = &self.virtualenv {
            let setup = || -> PyResult<()> {
                let version = sys.getattr("version_info")?;
                let (major, minor): (u32, u32) = (
                    version.getattr("major")?.extract()?,
                    version.getattr("minor")?.extract()?,
                );
                let site_packages = venv
                    .join("lib")
                    .join(format!("python{major}.{minor}"))
                    .join("site-packages");
                if site_packages.is_dir() {
                    py.import("site")?
                        .call_method1("addsitedir", (site_packages.as_os_str(),))?;
                }
                Ok(())
            };
            setup().map_err(|e| {
                ImportError::python(
                    py,
                    format!("cannot use the virtualenv {}", venv.display()),
                    &e,
                )
            })?;
            let lib = venv.join("lib");
            let found = std::fs::read_dir(&lib).is_ok_and(|mut d| d.next().is_some());
            if !found {
                return Err(ImportError::new(format!(
                    "the virtualenv {} has no lib directory",
                    venv.display()
                )));
            }
        }
        let path = sys
            .getattr("path")
            .map_err(|e| ImportError::python(py, "cannot read sys.path", &e))?;
        for (i, dir) in self.python_path.iter().enumerate() {
            // A str: the import system skips other kinds of sys.path entries.
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let dir = dir.as_os_str();
            let present = path.contains(dir).unwrap_or(false);
            if !present {
                path.call_method1("insert", (i, dir))
                    .map_err(|e| ImportError::python(py, "cannot extend sys.path", &e))?;
            }
        }
        Ok(())
    }
}

impl App for WsgiApp {
    type Body = WsgiBody;
    type Future = ResponseFuture;

    /// Queues the request for a Python thread and answers with its body at once: the body
    /// carries what the thread produces, `write()` output included, as it comes. Fails
    /// with [`Overloaded`] when [`Builder::max_queued`] requests wait already.
    fn call(&self, environ: Environ, start_response: StartResponse) -> ResponseFuture {
        let (sink, chunks) = channel(self.inner.send_timeout);
        let (end_tx, end_rx) = oneshot::channel();
        let limit = self
            .inner
            .timeout
            .map(|limit| (limit, environ.input().clone()));
        let inner = self.inner.clone();
        let max_queued = self.inner.max_queued;
        let queued = self.inner.pool.spawn_within(
            move || run(&inner, environ, start_response, sink, end_tx),
            max_queued,
        );
        let body = if queued {
            Ok(WsgiBody::new(chunks, end_rx, limit))
        } else {
            Err(Overloaded::new(max_queued.unwrap_or_default()).into())
        };
        ResponseFuture { body: Some(body) }
    }
}

/// The future of [`WsgiApp::call`]: ready at once with the body (the app runs on a Python
/// thread, and its errors come through the body).
#[derive(Debug)]
pub struct ResponseFuture {
    body: Option<Result<WsgiBody, BoxError>>,
}

impl Future for ResponseFuture {
    type Output = Result<WsgiBody, BoxError>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(
            self.body
                .take()
                .unwrap_or_else(|| Err("ResponseFuture polled after it completed".into())),
        )
    }
}

/// One request, on a Python thread: calls the app, then sends its output to the body.
fn run(
    inner: &Arc<Inner>,
    environ: Environ,
    start_response: StartResponse,
    sink: Sink,
    end: oneshot::Sender<End>,
) {
    if sink.is_closed() {
        // The client went away while the request waited for a thread.
        return;
    }
    let shared = start_response.shared().clone();
    shared.set_sink(Some(sink.clone()));
    let mut output = Output {
        sink,
        end: Some(end),
    };
    Python::attach(|py| {
        let (dict, errors) = match environ_dict(py, &environ) {
            Ok(made) => made,
            Err(e) => return output.fail(py, python_error(py, &e)),
        };
        let called = Bound::new(py, StartResponseFn { start_response })
            .and_then(|start| inner.app.bind(py).call1((dict, start)));
        match called {
            Err(e) => output.fail(py, python_error(py, &e)),
            Ok(result) => match as_file(&result) {
                // Served from the file by Rust after any write() output; closed (on this
                // pool) when the body is dropped.
                Some(file) => {
                    let closer = Closer::new(result.unbind(), inner.pool.clone());
                    output.end(End(file, closer));
                }
                None => {
                    if let Err(e) = stream(py, &result, &mut output, &shared) {
                        output.fail(py, e);
                    }
                    // PEP 3333: close() is called whatever happened, client gone included.
                    if let Err(e) = close(&result) {
                        output.fail(py, python_error(py, &e));
                    }
                }
            },
        }
        // The request's own stream, flushed from Rust: a partial line is not lost.
        errors.get().flush();
    });
    if output.sink.is_stalled() {
        // The body fails with these words once it has given out what was sent.
        crate::panic::log(format_args!(
            "{} {}: {}",
            inner.name,
            request_line(&environ),
            stalled(output.sink.timeout())
        ));
    }
    shared.set_sink(None);
}

/// `METHOD URI` of a request, for a log line.
fn request_line(environ: &Environ) -> String {
    let get = |name| String::from_utf8_lossy(environ.get(name).unwrap_or_default()).into_owned();
    format!("{} {}", get("REQUEST_METHOD"), get("REQUEST_URI"))
}

/// Where a Python thread sends a request's output: the body's channel, then the body's end.
struct Output {
    sink: Sink,
    end: Option<oneshot::Sender<End>>,
}

impl Output {
    /// Sends `msg` to the body, or gives it back. The GIL is released only when the channel
    /// is full and the thread must wait: a free slot takes the message at once, sparing the
    /// other threads a GIL hand-over per chunk.
    fn send(&mut self, py: Python<'_>, msg: Msg) -> Result<(), (Unsent, Msg)> {
        match self.sink.try_send(msg) {
            Err((Unsent::Full, msg)) => {
                let sink = &self.sink;
                py.detach(|| sink.wait_send(msg))
            }
            sent => sent,
        }
    }

    /// Fails the response with `error`: after what was sent; logged when the response is
    /// over or the client stopped reading (the body then fails with its own error).
    fn fail(&mut self, py: Python<'_>, error: BoxError) {
        match self.send(py, Err(error)) {
            Ok(()) => {}
            Err((unsent, Err(error))) => {
                let after = match unsent {
                    Unsent::Stalled => "the client stopped reading",
                    // Sent, failed (a time limit), or the client went away.
                    Unsent::Full | Unsent::Gone => "its response was over",
                };
                crate::panic::log(format_args!("app failed after {after}: {error}"));
            }
            Err((_, Ok(_))) => {}
        }
    }

    /// Sends the body's end (the first one counts).
    fn end(&mut self, end: End) {
        if let Some(tx) = self.end.take() {
            let _ = tx.send(end);
        }
    }
}

/// Sends the chunks of `result` until it ends, fails, or the client goes away or stops
/// reading.
fn stream(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    output: &mut Output,
    shared: &crate::gateway::Shared,
) -> Result<(), BoxError> {
    let iter = result.try_iter().map_err(|e| python_error(py, &e))?;
    // PEP 3333: when len(result) works it is accurate, so the last chunk is known. Asked
    // of lists and tuples only: on other iterables (generators, Werkzeug's responses) the
    // TypeError it raises costs more than the extra poll of a body not known to be ended.
    let sized = result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>();
    let mut left = if sized { result.len().ok() } else { None };
    let mut shared_chunks = 0usize;
    for item in iter {
        let item = item.map_err(|e| python_error(py, &e))?;
        left = left.map(|n| n.saturating_sub(1));
        let chunk = item.cast::<PyBytes>().map_err(|_| {
            BoxError::from(format!(
                "the app's iterable yielded {} instead of bytes",
                item.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        let last = left == Some(0);
        if chunk.as_bytes().is_empty() && !last {
            continue;
        }
        let chunk = to_bytes(chunk);
        if chunk.len() >= SHARE_FROM {
            // Python objects the body has finished with are released when this thread
            // next re-attaches: make sure it does, so they never pile up.
            shared_chunks += 1;
            if shared_chunks % RELEASE_EVERY == 0 {
                py.detach(|| ());
            }
        }
        if !chunk.is_empty() {
            // Output is on its way: start_response re-raises from now on.
            shared.mark_output();
        }
        let sent = output.send(py, Ok((chunk, last))).is_ok();
        if !sent || last {
            break;
        }
    }
    Ok(())
}

/// From this size on, a chunk is not copied: the `Bytes` holds the Python object itself
/// (released under the GIL later). Smaller chunks are copied, which costs less.
const SHARE_FROM: usize = 16 * 1024;

/// How many uncopied chunks a thread sends before it lets go of the GIL once, so that the
/// Python objects of sent chunks are released (PyO3 releases objects dropped without the
/// GIL when a thread attaches again).
const RELEASE_EVERY: usize = 8;

/// The bytes of a Python `bytes` object, for the response body.
pub(crate) fn to_bytes(chunk: &Bound<'_, PyBytes>) -> Bytes {
    if chunk.as_bytes().len() >= SHARE_FROM {
        Bytes::from_owner(pyo3::pybacked::PyBackedBytes::from(chunk.clone()))
    } else {
        Bytes::copy_from_slice(chunk.as_bytes())
    }
}

fn close(result: &Bound<'_, PyAny>) -> PyResult<()> {
    // The common results have no close(): spare the AttributeError a lookup would raise.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = result.getattr_opt("close")? {
        close.call0()?;
    }
    Ok(())
}

pub(crate) fn python_error(py: Python<'_>, err: &PyErr) -> BoxError {
    Box::new(PythonError::from_err(py, err))
}

/// Runs `close()` of a result on a Python thread.
pub(crate) fn close_on(pool: &Pool, result: Py<PyAny>) {
    let job = move || {
        Python::attach(|py| {
            if let Err(e) = close(result.bind(py)) {
                crate::panic::log(format_args!(
                    "app failed in close(): {}",
                    PythonError::from_err(py, &e)
                ));
            }
        });
    };
    pool.spawn(job);
}
