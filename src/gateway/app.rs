//! The [`App`] trait and the closure adapters.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;

use super::body::{AppBody, BlockingBody, DEFAULT_SEND_TIMEOUT, Unsent, channel, stalled};
use super::start_response::{Msg, StartResponse};
use crate::panic::panic_error;
use crate::{BoxError, Environ};

/// A gateway app: called with the request's [`Environ`] and a [`StartResponse`], it returns
/// its body (PEP 3333 "The Application/Framework Side").
///
/// # Contract
///
/// A server calls [`call`](App::call) once per request, and drives the returned future to
/// completion, then the body:
///
/// 1. The environ holds the meta-variables (RFC 3875 §4.1), the gateway keys
///    ([`url_scheme`](Environ::url_scheme), [`multithread`](Environ::multithread),
///    [`multiprocess`](Environ::multiprocess), [`run_once`](Environ::run_once),
///    [`file_wrapper`](Environ::file_wrapper)), the request body as
///    [`input`](Environ::input) and the error sink [`errors`](Environ::errors).
/// 2. The app calls [`StartResponse::start`] exactly once with its status and headers,
///    before its first chunk: in `call`, in the future, or while the body produces its
///    first chunk. It may write imperative output with the returned
///    [`Writer`](super::Writer); that output precedes the body.
/// 3. The future resolves to the body, a sequence of chunks ([`http_body::Body`] data
///    frames). The server sends each chunk before asking for the next (no buffering, PEP
///    3333 "Buffering and Streaming"), waits for the first non-empty chunk before sending the
///    head, and sets `Content-Length` when the whole body is known (one chunk, an exact size
///    hint, a [`FileWrapper`](super::FileWrapper)); an empty body gets `Content-Length: 0`.
/// 4. The server drops the body when the response is over, normally, after an error, or when
///    the client went away: dropping is Python's `close()`, so cleanup goes in `Drop`.
///
/// Apps may be shared between requests running at the same time (`&self`); a server that
/// runs them so says [`multithread`](Environ::multithread).
///
/// # Errors
///
/// An error from the future, or from the body before its first non-empty chunk, is logged
/// and answered with the server's error response (wsgiref's `error_status`, `error_headers`
/// and `error_body`: `500 Internal Server Error` by default), unless the head was sent.
/// After the head, an error ends the output early (the response is truncated, so the
/// client sees it failed) and is logged. A contract violation (a second `start_response`
/// without an error, a bad status, a hop-by-hop header, a body without `start_response`) is
/// such an error even when the app ignores the `Err` that `start_response` returned.
///
/// # Panics
///
/// A panic in `call`, in the future or in the body counts as an error, with the panic's
/// message: it never takes the server down.
///
/// # Blocking apps
///
/// An app that blocks (reads files, waits on locks, calls blocking libraries) must not do it
/// in `call` or in a future: use [`blocking_app_fn`], which runs it on a blocking thread.
///
/// # Implementing `App`
///
/// Most apps are closures ([`app_fn`]); a type of its own suits an app with state:
///
/// ```
/// use std::future::{ready, Ready};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use towergate::gateway::{App, AppBody, StartResponse};
/// use towergate::handler::SimpleHandler;
/// use towergate::{BoxError, Environ};
///
/// #[derive(Default)]
/// struct Counter(AtomicU64);
///
/// impl App for Counter {
///     type Body = AppBody;
///     type Future = Ready<Result<AppBody, BoxError>>;
///
///     fn call(&self, _environ: Environ, start_response: StartResponse) -> Self::Future {
///         let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
///         ready(
///             start_response
///                 .start("200 OK", [("Content-Type", "text/plain")])
///                 .map(|_writer| AppBody::from(format!("request {n}")))
///                 .map_err(BoxError::from),
///         )
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = Counter::default();
/// for expected in ["request 1", "request 2"] {
///     let environ = Environ::from_vars([("REQUEST_METHOD", "GET")]);
///     let mut handler = SimpleHandler::base_cgi(Vec::new(), environ);
///     handler.run(&app).await.unwrap();
///     assert!(handler.transport().ends_with(expected.as_bytes()));
/// }
/// # }
/// ```
pub trait App {
    /// The body: a sequence of chunks.
    type Body: Body<Data = Bytes, Error: Into<BoxError>>;
    /// The future resolving to the body.
    type Future: Future<Output = Result<Self::Body, BoxError>>;

    /// Handles one request.
    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future;
}

impl<A: App + ?Sized> App for Arc<A> {
    type Body = A::Body;
    type Future = A::Future;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future {
        (**self).call(environ, start_response)
    }
}

impl<A: App + ?Sized> App for &A {
    type Body = A::Body;
    type Future = A::Future;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future {
        (**self).call(environ, start_response)
    }
}

/// An async app from a closure: `async fn(Environ, StartResponse) -> Result<Body, BoxError>`.
///
/// ```
/// use towergate::gateway::{app_fn, AppBody};
/// use towergate::BoxError;
///
/// let app = app_fn(|environ, start_response| async move {
///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///     let name = environ.get_str("PATH_INFO").unwrap_or("/").to_owned();
///     Ok::<_, BoxError>(AppBody::from(format!("Hello from {name}")))
/// });
/// # let _ = app;
/// ```
pub fn app_fn<F, Fut>(f: F) -> AppFn<F>
where
    F: Fn(Environ, StartResponse) -> Fut,
{
    AppFn { f }
}

/// The app [`app_fn`] returns.
#[derive(Clone, Copy)]
pub struct AppFn<F> {
    f: F,
}

impl<F> fmt::Debug for AppFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppFn").finish_non_exhaustive()
    }
}

impl<F, Fut, B> App for AppFn<F>
where
    F: Fn(Environ, StartResponse) -> Fut,
    Fut: Future<Output = Result<B, BoxError>>,
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    type Body = B;
    type Future = Fut;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Fut {
        (self.f)(environ, start_response)
    }
}

/// Any app behind one type: its future and body boxed (`Send`).
///
/// The escape hatch for a compiler limitation: an [`AppService`](crate::service::AppService)
/// of an [`app_fn`] closure written inline cannot always be moved into `tokio::spawn` (rustc
/// reports "one type is more general than the other" or "implementation of `From` is not
/// general enough" for the closure's future). Boxing the app hides the closure's type from
/// the service's, at the cost of one allocation per request. Naming the app (a function
/// returning `impl App<…> + Clone`) is the other way out, without boxing.
///
/// ```
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::service::TowerToHyperService;
/// use towergate::gateway::{app_fn, AppBody, BoxApp};
/// use towergate::service::AppService;
/// use towergate::BoxError;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = BoxApp::new(app_fn(|_environ, start_response| async move {
///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///     Ok::<_, BoxError>(AppBody::from("hi"))
/// }));
/// let service = AppService::new(app);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = tokio::spawn(async move {
///     let (stream, _) = listener.accept().await.unwrap();
///     hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
///         .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
///         .await
///         .unwrap();
/// });
/// let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
/// let mut answer = String::new();
/// stream.read_to_string(&mut answer).await.unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
/// assert!(answer.ends_with("\r\n\r\nhi"), "{answer}");
/// server.await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct BoxApp {
    call: Arc<dyn Fn(Environ, StartResponse) -> BoxAppFuture + Send + Sync>,
}

/// The future of a [`BoxApp`].
pub type BoxAppFuture = std::pin::Pin<Box<dyn Future<Output = Result<AppBody, BoxError>> + Send>>;

impl BoxApp {
    /// Boxes `app`.
    pub fn new<A>(app: A) -> Self
    where
        A: App + Send + Sync + 'static,
        A::Future: Send + 'static,
        A::Body: Send + 'static,
    {
        BoxApp {
            call: Arc::new(move |environ, start_response| {
                let future = app.call(environ, start_response);
                Box::pin(async move { future.await.map(AppBody::new) })
            }),
        }
    }
}

impl fmt::Debug for BoxApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxApp").finish_non_exhaustive()
    }
}

impl App for BoxApp {
    type Body = AppBody;
    type Future = BoxAppFuture;

    fn call(&self, environ: Environ, start_response: StartResponse) -> BoxAppFuture {
        (self.call)(environ, start_response)
    }
}

/// A blocking app from a closure returning an iterator of chunks, as in Python:
/// `fn(Environ, StartResponse) -> Result<impl IntoIterator<Item = Result<chunk, BoxError>>,
/// BoxError>`.
///
/// Each request runs the closure, and then its iterator, on a blocking thread (tokio's
/// blocking pool, or a new thread outside a runtime), never on the reactor. Chunks and
/// [`Writer`](super::Writer) output travel to the server through a bounded channel: a slow
/// client slows the app down, memory stays bounded. When the client goes away the app's next
/// chunk or write fails and the iterator is dropped (closed). A client that takes no output
/// for the [send timeout](BlockingAppFn::send_timeout) (default 60 s) is taken to have
/// stopped reading: the same happens, the response is cut and a line is logged, so that it
/// does not hold the thread for as long as its connection lives.
///
/// Requests run at once, each on a thread of tokio's blocking pool (512 threads by default,
/// then a queue without bound): to bound how many run and wait, put tower's
/// `ConcurrencyLimitLayer` and `LoadShedLayer` in front of the service.
///
/// When the iterator says it has nothing left after a chunk (its `size_hint` upper bound is
/// 0, as a one-element `Vec`'s does), that chunk is the last and the body's length is known:
/// a one-chunk answer gets a `Content-Length`.
///
/// ```
/// use towergate::gateway::blocking_app_fn;
/// use towergate::BoxError;
///
/// let app = blocking_app_fn(|environ, start_response| {
///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///     let body = environ.input().blocking_read_to_end()?; // blocking is fine here
///     Ok::<_, BoxError>(vec![Ok::<_, BoxError>(body)])
/// });
/// # let _ = app;
/// ```
pub fn blocking_app_fn<F, R>(f: F) -> BlockingAppFn<F>
where
    F: Fn(Environ, StartResponse) -> R + Send + Sync + 'static,
{
    BlockingAppFn {
        f: Arc::new(f),
        send_timeout: DEFAULT_SEND_TIMEOUT,
    }
}

/// The app [`blocking_app_fn`] returns.
pub struct BlockingAppFn<F> {
    f: Arc<F>,
    send_timeout: Duration,
}

impl<F> BlockingAppFn<F> {
    /// How long the app's thread waits for the client to take a chunk or a `write()`: the
    /// output goes through a small buffer, and a client that stops reading would otherwise
    /// keep the thread for as long as its connection lives. Past the timeout the chunk's
    /// send or the write fails (the iterator is dropped, the app should return), a line is
    /// logged and the response is cut. Defaults to [`DEFAULT_SEND_TIMEOUT`] (60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towergate::BoxError;
    /// use towergate::gateway::{DEFAULT_SEND_TIMEOUT, blocking_app_fn};
    ///
    /// let app = blocking_app_fn(|_environ, start_response| {
    ///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
    ///     Ok::<_, BoxError>(vec![Ok::<_, BoxError>("hi")])
    /// });
    /// assert_eq!(app.get_send_timeout(), DEFAULT_SEND_TIMEOUT);
    /// let app = app.send_timeout(Duration::from_secs(5));
    /// assert_eq!(app.get_send_timeout(), Duration::from_secs(5));
    /// ```
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// The [send timeout](Self::send_timeout).
    pub fn get_send_timeout(&self) -> Duration {
        self.send_timeout
    }
}

impl<F> Clone for BlockingAppFn<F> {
    fn clone(&self) -> Self {
        BlockingAppFn {
            f: self.f.clone(),
            send_timeout: self.send_timeout,
        }
    }
}

impl<F> fmt::Debug for BlockingAppFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingAppFn")
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl<F, I, C, E> App for BlockingAppFn<F>
where
    F: Fn(Environ, StartResponse) -> Result<I, BoxError> + Send + Sync + 'static,
    I: IntoIterator<Item = Result<C, E>>,
    C: Into<Bytes>,
    E: Into<BoxError>,
{
    type Body = BlockingBody;
    type Future = Ready<Result<BlockingBody, BoxError>>;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future {
        let (sink, body) = channel(self.send_timeout);
        let shared = start_response.shared().clone();
        shared.set_sink(Some(sink.clone()));
        let f = self.f.clone();
        let task = move || {
            if sink.is_closed() {
                // The client went away while the request waited for a thread.
                return;
            }
            let send = |msg: Msg| match sink.send(msg) {
                Ok(()) => true,
                Err((Unsent::Stalled, _)) => {
                    crate::panic::log(format_args!("blocking app: {}", stalled(sink.timeout())));
                    false
                }
                Err(_) => false,
            };
            match catch_unwind(AssertUnwindSafe(|| f(environ, start_response))) {
                Err(panic) => {
                    send(Err(panic_error(panic)));
                }
                Ok(Err(e)) => {
                    send(Err(e));
                }
                Ok(Ok(iter)) => {
                    let mut iter = iter.into_iter();
                    loop {
                        match catch_unwind(AssertUnwindSafe(|| iter.next())) {
                            Ok(Some(Ok(chunk))) => {
                                let chunk: Bytes = chunk.into();
                                let last = iter.size_hint().1 == Some(0);
                                if !chunk.is_empty() {
                                    // Output is on its way: start_response re-raises now.
                                    shared.mark_output();
                                }
                                if !send(Ok((chunk, last))) || last {
                                    break;
                                }
                            }
                            Ok(Some(Err(e))) => {
                                send(Err(e.into()));
                                break;
                            }
                            Ok(None) => break,
                            Err(panic) => {
                                send(Err(panic_error(panic)));
                                break;
                            }
                        }
                    }
                    // Dropping the iterator is its close(); a panic there is not the
                    // client's concern.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(iter)));
                }
            }
            // The channel closes when the last sender goes: the writer's too.
            shared.set_sink(None);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(task);
            }
            Err(_) => {
                std::thread::spawn(task);
            }
        }
        ready(Ok(body))
    }
}
