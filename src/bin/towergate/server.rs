//! The HTTP server loop every `towergate` subcommand that serves shares: a listener with a
//! connection cap, header-read and idle timeouts, hyper's HTTP/1.1 and HTTP/2, the
//! [`ConnectInfo`] extension, an access log written when each response ends, and a graceful
//! shutdown on SIGTERM or Ctrl-C.
//!
//! # Limits
//!
//! - **Connections**: at most `--max-connections` are open at once. Past the cap the server
//!   stops accepting: further clients wait in the kernel's listen queue until a connection
//!   closes (they are not refused, and nothing is read from them meanwhile).
//! - **Header timeout**: a client has `--header-timeout` to send a whole request head,
//!   counted from when the server starts waiting for it (the connection opened, or the
//!   previous response ended). Each connection's watchdog enforces it, for HTTP/1 heads,
//!   the HTTP/2 preface and HTTP/2 connections with no stream open: a slowloris client that
//!   trickles its head is asked to close at that deadline and dropped a second later.
//! - **Idle timeout**: a connection with no request in flight from which nothing arrives for
//!   `--idle-timeout` is closed (keep-alive connections, and connections that never send).
//! - **Accept errors** (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the server pauses
//!   accepting with a back-off from 10 ms to 1 s and logs one warning per episode, not one
//!   per failure; errors of a single connection (`ECONNABORTED`, `ECONNRESET`) are skipped.
//!
//! # Access log
//!
//! One line per response under the `towergate::access` target, `IP "METHOD URI VERSION"
//! STATUS BYTES TIME`, written once the response is over: INFO when the connection wrote it
//! out; INFO ending `incomplete: connection closed before the end…` when the client went
//! away first (its doing); WARN ending `incomplete: REASON` when the body failed (the
//! service's or a program's doing). BYTES counts the body bytes handed to hyper.
//! Connection events (timeouts, parse errors, resets) are INFO lines under
//! `towergate::connection`; accept failures and shutdown under `towergate::server`.
//!
//! # Shutdown
//!
//! On SIGTERM or SIGINT the listener is closed, idle connections are closed, and requests in
//! flight get `--grace` to finish (their connections close after the response). If the
//! grace ends first, every request whose response head was not produced yet is answered
//! `503 Service Unavailable` with `Connection: close` (its service future is dropped). Then
//! the subcommand's hook runs (`towergate serve` ends and reaps every CGI program still
//! running there), the responses still being sent get one more second, and the server
//! returns.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_service::Service;
use towergate::BoxError;
use towergate::ext::ConnectInfo;

/// The options of the HTTP server (shared by the subcommands that serve).
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// The address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
    pub(crate) addr: SocketAddr,
    /// How long a client has to send a request head, counted from when the server starts
    /// waiting for it (connection opened, or previous response ended); then the connection
    /// is closed. Decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_secs)]
    pub(crate) header_timeout: Duration,
    /// How long a connection with no request in flight may stay open while the client
    /// sends nothing (keep-alive). Decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub(crate) idle_timeout: Duration,
    /// The most connections open at once; further clients wait in the listen queue until
    /// one closes.
    #[arg(long, value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: u32,
    /// On SIGTERM or Ctrl-C, how long requests in flight get to finish; then requests with
    /// no response head yet get 503 and running programs are ended. Decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) grace: Duration,
}

/// A number of seconds, decimals allowed, more than zero and at most a day.
pub(crate) fn parse_secs(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "expected seconds between 0 and 86400 (decimals allowed), got {value:?}"
        )),
    }
}

/// Serves `service` on `args.addr` until SIGTERM or Ctrl-C, then shuts down gracefully.
/// Prints `towergate: listening on http://ADDR/` once bound.
#[allow(
    dead_code,
    reason = "the entry point of `towergate wsgi` and `serve --php`"
)]
pub(crate) async fn run<S: HttpService>(args: &ServerArgs, service: S) -> Result<(), BoxError> {
    run_with(args, service, async {}).await
}

/// [`run`], with `on_drained` run at the end of a shutdown, once the requests finished or
/// the grace ended (the requests still running then answer 503 if they can), before the
/// server returns: to end what the requests started, such as CGI program groups.
pub(crate) async fn run_with<S: HttpService>(
    args: &ServerArgs,
    service: S,
    on_drained: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.addr))?;
    println!("towergate: listening on http://{}/", listener.local_addr()?);
    let signal = shutdown_signal();
    serve(args, listener, service, signal, on_drained, Tasks::Spawned).await
}

/// [`run`] on a listener made elsewhere (a `towergate wsgi --workers` worker's, beside the
/// other workers' on the same address), until `signal`. Prints nothing.
///
/// Its connections are tasks of the current [`LocalSet`](tokio::task::LocalSet), which it
/// must run in: a worker runs them all on one thread, its runtime's. The Python threads
/// wake those tasks from outside; a runtime woken from outside is unparked for every task
/// (a write to its event descriptor, a request), where a `LocalSet` is woken once for every
/// task woken since it last ran. Measured (hello, two workers): 1.0 such writes a request
/// without it, 0.06–0.07 with it.
#[cfg(feature = "python")]
pub(crate) async fn run_on<S: HttpService>(
    args: &ServerArgs,
    listener: std::net::TcpListener,
    service: S,
    signal: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    serve(args, listener, service, signal, async {}, Tasks::Local).await
}

/// Where a server's connection tasks run.
#[derive(Clone, Copy, Debug)]
enum Tasks {
    /// Spawned on the runtime.
    Spawned,
    /// Spawned on the current `LocalSet`.
    #[cfg_attr(not(feature = "python"), allow(dead_code, reason = "used by run_on"))]
    Local,
}

/// Serves `service` on `listener` until `signal` completes, then shuts down gracefully.
async fn serve<S: HttpService>(
    args: &ServerArgs,
    listener: TcpListener,
    service: S,
    signal: impl Future<Output = ()>,
    on_drained: impl Future<Output = ()>,
    tasks: Tasks,
) -> Result<(), BoxError> {
    let local = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is the connection watchdog's (`Connection::run`), for HTTP/1 as
    // for HTTP/2: hyper's own would arm and drop a timer for every request head.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let shared = Arc::new(Shared {
        builder,
        epoch: Instant::now(),
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
    });
    let connections = Arc::new(Semaphore::new(args.max_connections as usize));
    let (phase, _) = watch::channel(Phase::Running);
    let mut signal = std::pin::pin!(signal);
    let mut backoff = Backoff::default();

    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            () = &mut signal => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(target: "towergate::server", "accept: {error}");
                continue;
            }
            Err(error) => {
                let pause = backoff.failed(&error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut signal => break,
                }
            }
        };
        backoff.succeeded();
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            shared: shared.clone(),
            state: Arc::new(ConnState::new(shared.now())),
            info: ConnectInfo {
                remote,
                local: Some(local),
            },
            phase: phase.subscribe(),
        };
        let service = service.clone();
        let task = async move {
            connection.run(stream, service).await;
            drop(permit);
        };
        match tasks {
            Tasks::Spawned => drop(tokio::spawn(task)),
            Tasks::Local => drop(tokio::task::spawn_local(task)),
        }
    }

    drop(listener);
    let max = args.max_connections;
    let open = max as usize - connections.available_permits();
    tracing::info!(
        target: "towergate::server",
        "shutting down: {open} connection(s) open, {:?} to finish",
        args.grace
    );
    phase.send_replace(Phase::Draining);
    let drained = connections.acquire_many(max);
    let mut drained = std::pin::pin!(drained);
    let in_time = tokio::time::timeout(args.grace, &mut drained).await.is_ok();
    if !in_time {
        tracing::warn!(
            target: "towergate::server",
            "requests still running after the {:?} grace: answering 503 where no head was sent",
            args.grace
        );
        phase.send_replace(Phase::Aborting);
    }
    on_drained.await;
    if !in_time
        && tokio::time::timeout(Duration::from_secs(1), &mut drained)
            .await
            .is_err()
    {
        let open = max as usize - connections.available_permits();
        tracing::warn!(target: "towergate::server", "closing {open} connection(s) still open");
    }
    Ok(())
}

/// A service the server runs: any `Clone` tower service of `Request<Incoming>` whose
/// response body yields [`Bytes`] (an axum `Router`, a `CgiBin`, …).
pub(crate) trait HttpService: Clone + Send + 'static {
    /// Waits until the service is ready, then calls it.
    fn respond(
        self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    async fn respond(mut self, request: Request<Incoming>) -> Result<Response<Body>, BoxError> {
        std::future::poll_fn(|cx| self.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        let response = self.call(request).await.map_err(Into::into)?;
        Ok(response.map(Body::new))
    }
}

/// Ctrl-C (SIGINT) or SIGTERM. Both are watched from this call on (it must be made inside
/// the runtime), not from the first poll: a signal that comes before the future is awaited
/// is not lost, and does not end the process.
#[cfg(unix)]
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let watch = |kind| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(target: "towergate::server", "cannot watch a signal: {error}");
            None
        }
    };
    async fn received(stream: Option<Signal>) {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let (interrupt, terminate) = (
        watch(SignalKind::interrupt()),
        watch(SignalKind::terminate()),
    );
    async move {
        tokio::select! {
            () = received(interrupt) => {}
            () = received(terminate) => {}
        }
    }
}

/// Ctrl-C.
#[cfg(not(unix))]
pub(crate) async fn shutdown_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    /// Finish what runs, close connections after their response.
    Draining,
    /// The grace is over: requests without a head get 503.
    Aborting,
}

/// Whether an accept error belongs to one connection only (retry at once).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The pause after accept failures (out of descriptors or memory): 10 ms doubling to 1 s,
/// one warning per episode.
#[derive(Debug, Default)]
struct Backoff {
    failures: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn failed(&mut self, error: &io::Error) -> Duration {
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(
                target: "towergate::server",
                "accept failed: {error}; pausing new connections (back-off up to {:?})",
                Self::MAX
            );
        }
        let shift = (self.failures - 1).min(7) as u32;
        Self::FIRST.saturating_mul(1 << shift).min(Self::MAX)
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                target: "towergate::server",
                "accepting again after {} failed accept(s)",
                self.failures
            );
            self.failures = 0;
        }
    }
}

/// What every connection shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    epoch: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    /// Milliseconds since the server started.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What a connection's watchdog knows about its traffic.
struct ConnState {
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    /// When the last bytes arrived (ms since the epoch).
    last_read: AtomicU64,
    /// When the connection last became idle: opened, or its last response ended.
    idle_since: AtomicU64,
    /// The access lines of responses whose body ended, written once the connection has
    /// handed what is left of them to the kernel (or failed to).
    sent: Mutex<Vec<AccessLine>>,
}

impl ConnState {
    fn new(now: u64) -> Self {
        ConnState {
            in_flight: AtomicUsize::new(0),
            last_read: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Writes the waiting access lines: the responses finished, or, with `error`, the
    /// connection failed before they were written out.
    fn settle(&self, error: Option<&dyn std::fmt::Display>) {
        // Drained in place: the vector keeps its room for the next responses.
        let mut lines = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        for line in lines.drain(..) {
            match error {
                None => line.write(Outcome::Finished),
                Some(error) => line.write(Outcome::Unsent(error)),
            }
        }
    }
}

/// Counts a request in flight on its connection until dropped (with the response body).
struct InFlight {
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl InFlight {
    fn new(state: Arc<ConnState>, shared: Arc<Shared>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { state, shared }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.shared.now(), Ordering::SeqCst);
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Connection {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    info: ConnectInfo,
    phase: watch::Receiver<Phase>,
}

impl Connection {
    async fn run<S: HttpService>(mut self, stream: TcpStream, service: S) {
        let io = TokioIo::new(Watched {
            inner: stream,
            state: self.state.clone(),
            shared: self.shared.clone(),
        });
        let handler = Handler {
            service,
            shared: self.shared.clone(),
            state: self.state.clone(),
            info: self.info,
            phase: self.phase.clone(),
        };
        let connection = self
            .shared
            .builder
            .serve_connection(io, hyper::service::service_fn(move |r| handler.handle(r)));
        let mut connection = std::pin::pin!(connection);
        let remote = self.info.remote;
        // Set once the connection was asked to close: dropped if still open a second later
        // with nothing in flight.
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            let check = match closing {
                Some(deadline) => deadline,
                None => self.next_check(),
            };
            // Biased: the connection first (what wakes this task nearly every time), and
            // no random pick per wake-up.
            tokio::select! {
                biased;
                result = connection.as_mut() => {
                    match result {
                        Ok(()) => self.state.settle(None),
                        Err(error) => {
                            tracing::info!(target: "towergate::connection", "{remote}: {error}");
                            self.state.settle(Some(&error));
                        }
                    }
                    return;
                }
                changed = self.phase.changed(), if closing.is_none() => {
                    if changed.is_err() || *self.phase.borrow() != Phase::Running {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    }
                }
                () = tokio::time::sleep_until(check) => {
                    let busy = self.state.in_flight.load(Ordering::SeqCst) > 0;
                    if let Some(deadline) = closing {
                        if !busy && tokio::time::Instant::now() >= deadline {
                            tracing::debug!(target: "towergate::connection", "{remote}: dropped");
                            self.state.settle(Some(&"the connection was dropped"));
                            return;
                        }
                        closing = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    } else if let Some(why) = self.expired() {
                        tracing::info!(target: "towergate::connection", "{remote}: closed: {why}");
                        connection.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// When to look at the connection's timeouts next.
    fn next_check(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        if self.state.in_flight.load(Ordering::SeqCst) > 0 {
            return now + self.shared.idle_timeout.min(self.shared.header_timeout);
        }
        let elapsed = |since: &AtomicU64| {
            Duration::from_millis(
                self.shared
                    .now()
                    .saturating_sub(since.load(Ordering::SeqCst)),
            )
        };
        let idle_left = self
            .shared
            .idle_timeout
            .saturating_sub(elapsed(&self.state.last_read).min(elapsed(&self.state.idle_since)));
        let head_left = self
            .shared
            .header_timeout
            .saturating_sub(elapsed(&self.state.idle_since));
        // A few milliseconds late rather than early: the clock is in whole milliseconds.
        now + idle_left.min(head_left) + Duration::from_millis(5)
    }

    /// Which timeout, if any, has expired for a connection with nothing in flight.
    fn expired(&self) -> Option<&'static str> {
        if self.state.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let now = self.shared.now();
        let since =
            |at: &AtomicU64| Duration::from_millis(now.saturating_sub(at.load(Ordering::SeqCst)));
        let idle = since(&self.state.idle_since);
        let silent = since(&self.state.last_read).min(idle);
        if idle >= self.shared.header_timeout {
            Some("no request head within the header timeout")
        } else if silent >= self.shared.idle_timeout {
            Some("idle timeout")
        } else {
            None
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's stream, noting when bytes arrive.
    struct Watched {
        #[pin]
        inner: TcpStream,
        state: Arc<ConnState>,
        shared: Arc<Shared>,
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state
                .last_read
                .store(this.shared.now(), Ordering::SeqCst);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        settle_on_error(this.state, this.inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        settle_on_error(this.state, this.inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = settle_on_error(this.state, this.inner.poll_flush(cx));
        if let Poll::Ready(Ok(())) = flushed {
            // Everything hyper wrote, the ends of finished responses included, is out.
            this.state.settle(None);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// A failed write fails the responses waiting to be written out.
fn settle_on_error<T>(state: &ConnState, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    if let Poll::Ready(Err(error)) = &polled {
        state.settle(Some(error));
    }
    polled
}

/// The per-connection request handler around the subcommand's service.
#[derive(Clone)]
struct Handler<S> {
    service: S,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    info: ConnectInfo,
    phase: watch::Receiver<Phase>,
}

impl<S: HttpService> Handler<S> {
    fn handle(
        &self,
        mut request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<LoggedBody>, Infallible>> + Send + use<S> {
        // A new request: what came before it on this connection was written out.
        self.state.settle(None);
        let in_flight = InFlight::new(self.state.clone(), self.shared.clone());
        let access = Access {
            remote: self.info.remote,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            start: Instant::now(),
        };
        request.extensions_mut().insert(self.info);
        host_from_authority(&mut request);
        // Boxed: the service future (a FastCGI call or an app's exchange, hundreds of bytes)
        // is then moved by pointer into the `select!` below and into hyper's slot.
        let answer = Box::pin(self.service.clone().respond(request));
        let mut phase = self.phase.clone();
        async move {
            let aborted = phase.wait_for(|phase| *phase == Phase::Aborting);
            let response = tokio::select! {
                biased;
                answer = answer => match answer {
                    Ok(response) => response,
                    Err(error) => {
                        tracing::warn!(target: "towergate::server", "{} {}: service failed: {error}", access.method, access.uri);
                        text_response(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                },
                _ = aborted => {
                    let mut response = text_response(StatusCode::SERVICE_UNAVAILABLE);
                    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
                    response
                }
            };
            let (parts, body) = response.into_parts();
            let body = LoggedBody {
                log: Some(AccessLine {
                    access,
                    status: parts.status,
                    bytes: 0,
                    length: http_body::Body::size_hint(&body).exact().or_else(|| {
                        let length = parts.headers.get(http::header::CONTENT_LENGTH)?;
                        length.to_str().ok()?.parse().ok()
                    }),
                    in_flight,
                }),
                inner: body,
            };
            Ok(Response::from_parts(parts, body))
        }
    }
}

/// A plain-text response with the status's canonical reason as its body.
pub(crate) fn text_response(status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default()
    );
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// For an absolute-form request target (`GET http://example.com:8080/x HTTP/1.1`), the
/// server ignores `Host` and uses the target's authority (RFC 9112 §3.2.2): `Host` is
/// replaced by it, without user information and with the scheme's default port when it has
/// none, so that `SERVER_NAME`, `SERVER_PORT` and `HTTP_HOST` come from the target. (Under
/// HTTP/2 the URI always carries `:authority`; the environ already prefers it.)
fn host_from_authority<B>(request: &mut Request<B>) {
    if request.version() > Version::HTTP_11 {
        return;
    }
    let Some(authority) = request.uri().authority() else {
        return;
    };
    let port = match (authority.port_u16(), request.uri().scheme_str()) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, _) => 80,
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{}:{port}", authority.host())) {
        request.headers_mut().insert(HOST, value);
    }
}

/// What the access line says about the request.
struct Access {
    remote: SocketAddr,
    method: Method,
    uri: Uri,
    version: Version,
    start: Instant,
}

/// The access line of a response, written when its body ends or is dropped.
struct AccessLine {
    access: Access,
    status: StatusCode,
    bytes: u64,
    /// The body's length when known from the start: a body hyper stops polling once that
    /// much is sent ended normally.
    length: Option<u64>,
    /// Holds the request in flight on its connection until the response has ended.
    in_flight: InFlight,
}

impl AccessLine {
    /// The body ended: the line waits until the connection has written it out.
    fn ended(self) {
        let state = self.in_flight.state.clone();
        state
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self);
    }

    /// Writes the line: INFO when the response finished, or when the client went away
    /// (a client's doing); WARN when the body failed (the server's or the program's).
    fn write(&self, outcome: Outcome<'_>) {
        // Formatted only when the level is enabled.
        let line = self;
        match outcome {
            Outcome::Finished => tracing::info!(target: "towergate::access", "{line}"),
            Outcome::Dropped => {
                tracing::info!(target: "towergate::access", "{line} incomplete: connection closed before the end")
            }
            Outcome::Failed(error) => {
                tracing::warn!(target: "towergate::access", "{line} incomplete: {error}")
            }
            Outcome::Unsent(error) => {
                tracing::info!(target: "towergate::access", "{line} incomplete: connection closed before the end: {error}")
            }
        }
    }
}

impl std::fmt::Display for AccessLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.access;
        write!(
            f,
            "{} \"{} {} {:?}\" {} {} {:.1}ms",
            a.remote.ip(),
            a.method,
            a.uri,
            a.version,
            self.status.as_u16(),
            self.bytes,
            a.start.elapsed().as_secs_f64() * 1000.0,
        )
    }
}

enum Outcome<'a> {
    /// The body ended and the connection wrote it out.
    Finished,
    /// hyper dropped the body before its end: the connection closed.
    Dropped,
    /// The body failed (the service's or the program's doing).
    Failed(&'a BoxError),
    /// The body ended, but the connection failed before writing it out.
    Unsent(&'a dyn std::fmt::Display),
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes it hands to hyper and writes the access line
    /// when it ends, fails or is dropped.
    pub(crate) struct LoggedBody {
        #[pin]
        inner: Body,
        log: Option<AccessLine>,
    }

    impl PinnedDrop for LoggedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(log) = this.log.take() {
                // hyper drops without polling a body it must not send (HEAD, 204, 304) or
                // one that is already at its end.
                let bodiless = log.access.method == Method::HEAD
                    || log.status.is_informational()
                    || log.status == StatusCode::NO_CONTENT
                    || log.status == StatusCode::NOT_MODIFIED;
                let whole = log.length.is_some_and(|length| length == log.bytes);
                if bodiless || whole || http_body::Body::is_end_stream(&*this.inner) {
                    log.ended();
                } else {
                    log.write(Outcome::Dropped);
                }
            }
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(log), Some(data)) = (this.log.as_mut(), frame.data_ref()) {
                    log.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(log) = this.log.take() {
                    let error: BoxError = error.to_string().into();
                    log.write(Outcome::Failed(&error));
                }
            }
            Poll::Ready(None) => {
                if let Some(log) = this.log.take() {
                    log.ended();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_decimals_and_refuse_zero_negative_and_text() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("20"), Ok(Duration::from_secs(20)));
        for bad in ["0", "-1", "soon", "NaN", "inf", "86401"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accept_back_off_doubles_up_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let error = io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..10).map(|_| backoff.failed(&error)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[6], Duration::from_millis(640));
        assert_eq!(pauses[7], Duration::from_secs(1));
        assert_eq!(pauses[9], Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), Duration::from_millis(10));
        assert!(!is_connection_error(&error));
        assert!(is_connection_error(
            &io::ErrorKind::ConnectionAborted.into()
        ));
    }

    #[test]
    fn an_absolute_form_target_replaces_host() {
        let host = |uri: &str, version: Version| {
            let mut request = Request::get(uri)
                .version(version)
                .header(HOST, "other:9")
                .body(())
                .unwrap();
            host_from_authority(&mut request);
            request.headers()[HOST].to_str().unwrap().to_owned()
        };
        assert_eq!(
            host("http://a.test:8080/x", Version::HTTP_11),
            "a.test:8080"
        );
        assert_eq!(host("http://u:p@a.test/x", Version::HTTP_11), "a.test:80");
        assert_eq!(host("https://a.test/x", Version::HTTP_10), "a.test:443");
        assert_eq!(host("http://[::1]/x", Version::HTTP_11), "[::1]:80");
        assert_eq!(host("/x", Version::HTTP_11), "other:9");
        assert_eq!(host("http://a.test/x", Version::HTTP_2), "other:9");
    }
}
