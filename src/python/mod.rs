//! Python WSGI apps (PEP 3333) as gateway apps, through an embedded interpreter (PyO3):
//! Flask, Django or any `app(environ, start_response)` mounted in hyper as a tower service,
//! beside Rust routes and behind tower layers. Feature `python`.
//!
//! ```no_run
//! use towergate::python::WsgiApp;
//! use towergate::service::AppService;
//!
//! # fn main() -> Result<(), towergate::python::ImportError> {
//! let django = AppService::new(WsgiApp::import("mysite.wsgi:application")?);
//! let flask = AppService::new(WsgiApp::import("myapp:app")?).script_name("/flask");
//! let router: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "from Rust" }))
//!     .route_service("/flask/{*rest}", flask)
//!     .fallback_service(django);
//! # let _ = router; Ok(()) }
//! ```
//!
//! A complete request, with an app written in place:
//!
//! ```
//! use http_body_util::BodyExt;
//! use pyo3::prelude::*;
//! use tower::ServiceExt;
//! use towergate::python::WsgiApp;
//! use towergate::service::AppService;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let code = c"
//! def app(environ, start_response):
//!     body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
//!     start_response('200 OK', [('Content-Type', 'text/plain')])
//!     return [environ['PATH_INFO'].encode('latin-1'), b' got ', body]
//! ";
//! Python::initialize(); // before the first `attach`, unless a `WsgiApp` was made already
//! let app = Python::attach(|py| -> PyResult<Py<PyAny>> {
//!     let module = PyModule::from_code(py, code, c"doc.py", c"doc")?;
//!     Ok(module.getattr("app")?.unbind())
//! })
//! .unwrap();
//! let service = AppService::new(WsgiApp::from_object(app).unwrap()).script_name("/py");
//!
//! let request = http::Request::post("/py/caf%C3%A9")
//!     .header("content-length", "10")
//!     .body("some bytes".to_owned())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], b"/caf\xc3\xa9 got some bytes"); // PATH_INFO's bytes, back
//! # }
//! ```
//!
//! # What a request goes through (PEP 3333)
//!
//! | step | towergate |
//! |---|---|
//! | the app is called ("Specification Details") | on one of the app's Python threads ([`Builder::threads`], default [`DEFAULT_THREADS`]), never on the async runtime's (with [`Builder::keep_gil`], the default, a thread keeps the GIL from one queued request to the next, and another takes the queue over as soon as it waits); requests beyond the threads wait in a queue, and one whose client went away meanwhile is skipped; past [`Builder::max_queued`] (default [`DEFAULT_MAX_QUEUED`], 1024) waiting, a request is refused at once: `503 Service Unavailable`, `Retry-After: 1` |
//! | `environ` ("environ Variables") | a real `dict`: every meta-variable of the [`Environ`](crate::Environ) as a native string, each byte one latin-1 character ("A Note On String Types", so `PATH_INFO` holds the percent-decoded bytes: `environ["PATH_INFO"].encode("latin-1")` gives them back); `wsgi.version` `(1, 0)`, `wsgi.url_scheme`, and `wsgi.multithread`, `wsgi.multiprocess`, `wsgi.run_once` as the `Environ` says (under [`AppService`](crate::service::AppService): true, false unless [`AppService::multiprocess`](crate::service::AppService::multiprocess) says otherwise, false) |
//! | `wsgi.input` ("Input and Error Streams") | the request body, streamed: `read()`, `read(n)`, `readline()`, `readline(n)`, `readlines(hint)`, iteration; never buffered whole by the server, the GIL released while a read waits; empty bytes at the end; a read still waiting when the response is over (the app's [`Builder::timeout`] answered 504, a client gone) raises `OSError`, so a client that stops sending its body does not keep the thread. `wsgi.input_terminated` is true when the body has no `CONTENT_LENGTH` (chunked, HTTP/2): read it to the end |
//! | `wsgi.errors` | a text stream; each complete line goes to the `Environ`'s [`Errors`](crate::environ::Errors) sink, by default the log (`tracing`) |
//! | `start_response(status, headers, exc_info=None)` ("The start_response() Callable") | [`StartResponse::start`](crate::gateway::StartResponse::start): native strings, latin-1 only; the contract's checks (status form, header tokens, no control characters, no hop-by-hop header, one call unless `exc_info`) raise in Python and fail the response (500) even when the app swallows the exception. With `exc_info` before any output: the head is replaced; after: the exception is raised again |
//! | `write(data)` ("The write() Callable") | sent at once (bytes only), ahead of the result's chunks; the GIL released while the client is slow; a client that takes nothing for [`Builder::send_timeout`] makes it raise `OSError` (a line is logged, the response is cut) |
//! | the result iterable ("Buffering and Streaming") | each non-empty chunk sent before the next is asked for, through a bounded channel (a slow client slows the app, memory stays flat), the GIL released between chunks; a client that takes nothing for [`Builder::send_timeout`] (default 60 s) frees the thread: the result is closed, the response cut and a line logged; when `len(result)` works, the last chunk is known, so a one-element list gets a `Content-Length` |
//! | `close()` | always called on the result, once: after the last chunk, after an error, when the client went away |
//! | `wsgi.file_wrapper` ("Optional Platform-Specific File Handling") | a result wrapping a regular file is served by Rust from its own handle on the file, from the file's position, with its length as `Content-Length`: the bytes never pass through Python. Other file-likes are iterated in blocks |
//!
//! The response rules (the head waits for the first non-empty chunk, `Content-Length`, `HEAD`,
//! 1xx/204/304) are the gateway engine's, the same for every app.
//!
//! # Errors
//!
//! An exception before the head (from the app, `start_response`, or the result before its
//! first chunk) is logged with its traceback and answered with the error response (500 by
//! default, see [`AppService::with_error_response`](crate::service::AppService::with_error_response));
//! after the head, the response is cut (the client sees it fail) and the traceback logged.
//! An app that produces no output for [`Builder::timeout`] (default [`DEFAULT_TIMEOUT`], 60 s)
//! fails the same way with [`TimedOut`](crate::error_response::TimedOut): `504 Gateway
//! Timeout` before the head (the default error response's answer to it), the response cut
//! after; its thread, which Python cannot interrupt, stops at its next output.
//! A request that finds [`Builder::max_queued`] requests waiting for a thread already
//! (default [`DEFAULT_MAX_QUEUED`], 1024) fails at once with
//! [`Overloaded`](crate::error_response::Overloaded): `503 Service Unavailable` with
//! `Retry-After: 1`.
//! A module that fails to import, or an attribute that is missing or not callable, is an
//! [`ImportError`] when the app is loaded, with the Python traceback.
//!
//! # The interpreter
//!
//! The interpreter is the one PyO3 found when the crate was built: the first `python3` on
//! `PATH`, or the one `PYO3_PYTHON` names. Build with the interpreter whose `libpython` the
//! program loads at run time (on Debian, `PYO3_PYTHON=/usr/bin/python3` and the
//! `python3-dev` package), and make virtualenvs from that same interpreter. An embedded
//! interpreter does not read `VIRTUAL_ENV` by itself: [`Builder::virtualenv`] adds a
//! virtualenv's `site-packages` (defaulting to `VIRTUAL_ENV`), and [`Builder::python_path`]
//! puts directories in front of `sys.path`.
//!
//! The interpreter is started by the first [`Builder`] (every way of loading an app makes
//! one), without Python's signal handlers (the server keeps `SIGINT` and `SIGTERM`), and
//! lives as long as the process; apps imported in one process share it, and share its GIL.
//! Code that uses PyO3 before that calls [`pyo3::Python::initialize`] first, which starts
//! it the same way (the crate does not enable PyO3's `auto-initialize`, so that the
//! interpreter can be linked statically).
//!
//! ## Linking the interpreter statically
//!
//! A distribution's `libpython3.X.so` is compiled as position-independent code, as a
//! shared library must be, while the distribution's own `python3` (what a server started
//! from Python, Granian or gunicorn, runs on) links the interpreter statically without it:
//! the usual figure for that difference is 10–20% on Python code (our measurements on a
//! noisy 2-core machine are in BENCHMARKS.md). `scripts/python-static.sh` in the
//! repository sets up the same kind of build: PyO3's build configuration naming the static
//! `libpython3.X.a` (Debian's `python3.X-dev` has it), a non-PIE program for the host
//! triple, and `--export-dynamic` so that extension modules find the interpreter in the
//! program:
//!
//! ```text
//! eval "$(scripts/python-static.sh /usr/bin/python3)"
//! cargo build --release --features cli,python --bin towergate
//! # target/x86_64-unknown-linux-gnu/release/towergate
//! ```

mod app;
mod body;
mod environ;
mod error;
mod file;
mod pool;
mod respond;

pub use app::{
    Builder, DEFAULT_MAX_QUEUED, DEFAULT_SEND_TIMEOUT, DEFAULT_THREADS, DEFAULT_TIMEOUT,
    ResponseFuture, WsgiApp,
};
pub use body::WsgiBody;
pub use error::ImportError;
