//! [`AppService`]: a gateway app as a tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use crate::BoxError;
use crate::environ::{EnvironBuilder, Input};
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::gateway::{App, Exchange, Shared, StartResponse};
use crate::panic::{log, panic_error};
use crate::respond::{Head, Responder, Rules, error_chain, error_head};

/// A gateway [`App`] as a [`tower_service::Service`], for hyper or any tower stack.
///
/// Each request's [`Environ`](crate::Environ) comes from an [`EnvironBuilder`] (RFC 3875
/// §4.1: `SCRIPT_NAME`, `PATH_INFO`, `REMOTE_ADDR` from the
/// [`ConnectInfo`](crate::ext::ConnectInfo) extension, …), with the request body as its
/// [`input`](crate::Environ::input) and the gateway keys of a multithreaded server:
/// multithread true, multiprocess as set by [`multiprocess`](Self::multiprocess) (false by
/// default), run_once false.
///
/// The response future drives the app until its head can be sent (the first non-empty
/// chunk, PEP 3333), then resolves to a response whose [`ResponseBody`] polls the app's body
/// directly: no task, no channel, no boxing per request for an async app, and the client's
/// pace is the app's pace (backpressure). `Content-Length` follows the handler's rules
/// ([`crate::handler`]); a `HEAD` request gets the head and an empty body.
///
/// The app's body must be `Unpin` (every body of this crate is, and `AppBody::new` boxes
/// any other): it is polled inside the response future, then moved into the response.
///
/// Mounted under a prefix, say with axum's `Router::nest_service("/gateway", service)`, set
/// the same prefix with [`script_name`](Self::script_name): `SCRIPT_NAME` is then
/// `/gateway` and `PATH_INFO` the rest, whether or not the router stripped the prefix.
///
/// Spawning a connection task around an `AppService` of an `app_fn` closure written inline
/// can meet a compiler limitation with closures returning async blocks ("one type is more
/// general than the other" at `tokio::spawn`): wrap the app in
/// [`BoxApp`](crate::gateway::BoxApp) (its doctest serves an inline closure from
/// `tokio::spawn`), or name it: a function returning
/// `impl App<Body = AppBody, Future: Send + 'static> + Clone + Send + Sync + 'static`, as
/// `examples/common/gateway_app.rs` does.
///
/// Errors: a failure (or panic) before the head is logged and answered with the
/// [`ErrorResponse`] (500 by default); after the head, it is logged and the body ends with
/// the error, so hyper cuts the connection and the client sees a truncated response. The
/// service itself never fails (`Error = Infallible`). When the client goes away, hyper drops
/// the body and with it the app's body: nothing is logged.
///
/// When the response is over (sent, failed, the client gone, or its future dropped, say by
/// tower's `Timeout`), the app's input is closed: a read of the request body that is still
/// waiting, or comes later, fails ("the response is over: the request body can no longer
/// be read") rather than waiting for a client that stopped sending, which would hold a
/// blocking app's thread for as long as the connection lives.
///
/// ```
/// use tower::ServiceExt;
/// use towergate::gateway::{app_fn, AppBody};
/// use towergate::service::AppService;
/// use towergate::BoxError;
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = app_fn(|environ: towergate::Environ, start_response| async move {
///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///     let path = environ.get_str("PATH_INFO").unwrap_or_default().to_owned();
///     Ok::<_, BoxError>(AppBody::from(path))
/// });
/// let service = AppService::new(app).script_name("/gateway");
/// let request = http::Request::get("/gateway/hello").body(String::new()).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-length"], "6");
/// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "/hello");
/// # }
/// ```
pub struct AppService<A, E = DefaultErrorResponse> {
    app: A,
    environ: EnvironBuilder,
    multiprocess: bool,
    traceback_limit: Option<usize>,
    error_response: Arc<E>,
}

impl<A: Clone, E> Clone for AppService<A, E> {
    fn clone(&self) -> Self {
        AppService {
            app: self.app.clone(),
            environ: self.environ.clone(),
            multiprocess: self.multiprocess,
            traceback_limit: self.traceback_limit,
            error_response: self.error_response.clone(),
        }
    }
}

impl<A, E> fmt::Debug for AppService<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppService")
            .field("environ", &self.environ)
            .field("multiprocess", &self.multiprocess)
            .field("traceback_limit", &self.traceback_limit)
            .finish_non_exhaustive()
    }
}

impl<A> AppService<A> {
    /// Serves `app` with the defaults below.
    pub fn new(app: A) -> Self {
        AppService {
            app,
            environ: EnvironBuilder::new(),
            multiprocess: false,
            traceback_limit: None,
            error_response: Arc::new(DefaultErrorResponse::new()),
        }
    }
}

impl<A, E> AppService<A, E> {
    /// The mount point (`SCRIPT_NAME`); the rest of the path is `PATH_INFO`. Defaults to
    /// `""` (the root).
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        self.environ = self.environ.script_name(script_name);
        self
    }

    /// How each request's environ is built (mount point, `SERVER_SOFTWARE`, whether
    /// `Authorization` is passed, …). Defaults to [`EnvironBuilder::new`].
    pub fn environ(mut self, builder: EnvironBuilder) -> Self {
        self.environ = builder;
        self
    }

    /// `wsgi.multiprocess` ([`Environ::multiprocess`](crate::Environ::multiprocess)): set it
    /// when other processes run the same app at the same time, as the workers of `towergate
    /// wsgi --workers` do (PEP 3333: an app may then not keep state in its process). Defaults
    /// to `false`.
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use towergate::gateway::{app_fn, AppBody};
    /// use towergate::service::AppService;
    /// use towergate::BoxError;
    /// use http_body_util::BodyExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = app_fn(|environ: towergate::Environ, start_response| async move {
    ///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
    ///     Ok::<_, BoxError>(AppBody::from(format!("multiprocess={}", environ.multiprocess())))
    /// });
    /// let service = AppService::new(app).multiprocess(true);
    /// let request = http::Request::get("/").body(String::new()).unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// let body = response.into_body().collect().await.unwrap().to_bytes();
    /// assert_eq!(body, "multiprocess=true");
    /// # }
    /// ```
    pub fn multiprocess(mut self, multiprocess: bool) -> Self {
        self.multiprocess = multiprocess;
        self
    }

    /// How many causes (`source()` levels) of an app's error are logged; `None` logs them
    /// all. Defaults to `None`.
    pub fn traceback_limit(mut self, limit: Option<usize>) -> Self {
        self.traceback_limit = limit;
        self
    }

    /// The response sent when the app fails before its head. Defaults to
    /// [`DefaultErrorResponse`].
    pub fn with_error_response<E2: ErrorResponse>(self, error_response: E2) -> AppService<A, E2> {
        AppService {
            app: self.app,
            environ: self.environ,
            multiprocess: self.multiprocess,
            traceback_limit: self.traceback_limit,
            error_response: Arc::new(error_response),
        }
    }

    /// The app.
    pub fn get_ref(&self) -> &A {
        &self.app
    }

    /// The app.
    pub fn into_inner(self) -> A {
        self.app
    }
}

impl<A, B, E> Service<Request<B>> for AppService<A, E>
where
    A: App,
    A::Body: Unpin,
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
    E: ErrorResponse,
{
    type Response = Response<ResponseBody<A::Body>>;
    type Error = Infallible;
    type Future = ResponseFuture<A::Future, A::Body, E>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let mut environ = self.environ.build_from_parts(&parts);
        environ.set_multithread(true);
        environ.set_multiprocess(self.multiprocess);
        environ.set_run_once(false);
        let input = (!body.is_end_stream()).then(|| {
            let input = Input::new(body);
            environ.set_input(input.clone());
            CloseInput(input)
        });
        let shared = Arc::new(Shared::default());
        let start_response = StartResponse::new(shared.clone());
        let state = match catch_unwind(AssertUnwindSafe(|| self.app.call(environ, start_response)))
        {
            Ok(future) => State::Call { future },
            Err(panic) => State::Failed {
                error: Some(panic_error(panic)),
            },
        };
        ResponseFuture {
            state,
            input,
            shared: Some(shared),
            rules: Rules {
                head_only: parts.method == Method::HEAD,
                content_type: false,
            },
            traceback_limit: self.traceback_limit,
            error_response: self.error_response.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AppService`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B>,
        // Moves to the response body (the app's, or the error response's).
        input: Option<CloseInput>,
        shared: Option<Arc<Shared>>,
        rules: Rules,
        traceback_limit: Option<usize>,
        error_response: Arc<E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Call { #[pin] future: F },
        Head { responder: Option<Responder<Exchange<B>>> },
        Failed { error: Option<BoxError> },
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<B, BoxError>>,
    B: Body<Data = Bytes, Error: Into<BoxError>> + Unpin,
    E: ErrorResponse,
{
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let error = match this.state.as_mut().project() {
                StateProj::Failed { error } => error
                    .take()
                    .unwrap_or_else(|| "the response future was polled after it completed".into()),
                StateProj::Call { future } => {
                    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(Ok(body))) => {
                            let shared = this.shared.take().unwrap_or_default();
                            let exchange = Exchange::new(body, shared, None);
                            this.state.set(State::Head {
                                responder: Some(Responder::new(exchange, *this.rules)),
                            });
                            continue;
                        }
                        Ok(Poll::Ready(Err(e))) => e,
                        Err(panic) => panic_error(panic),
                    }
                }
                StateProj::Head { responder } => {
                    let polled = match responder.as_mut() {
                        Some(r) => Pin::new(r).poll_head(cx),
                        None => Poll::Ready(Err(BoxError::from(
                            "the response future was polled after it completed",
                        ))),
                    };
                    match polled {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => {
                            *responder = None;
                            e
                        }
                        Poll::Ready(Ok(head)) => {
                            let responder = responder.take().filter(|_| head.more);
                            return Poll::Ready(Ok(response(
                                head,
                                responder,
                                *this.traceback_limit,
                                this.input.take(),
                            )));
                        }
                    }
                }
            };
            this.state.set(State::Failed { error: None });
            log(format_args!(
                "app failed: {}",
                error_chain(&error, *this.traceback_limit)
            ));
            let head = error_head(&**this.error_response, &error, *this.rules);
            return Poll::Ready(Ok(response(head, None, None, this.input.take())));
        }
    }
}

/// The `http::Response` for a completed head: its first chunk, then the responder's; its body
/// holds the closer of the app's input.
fn response<B>(
    head: Head,
    responder: Option<Responder<Exchange<B>>>,
    traceback_limit: Option<usize>,
    input: Option<CloseInput>,
) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody {
        first: head.first,
        responder,
        traceback_limit,
        _input: input,
    });
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    response
}

/// The body of an [`AppService`] response: the app's chunks, as they come.
pub struct ResponseBody<B> {
    first: Option<Bytes>,
    responder: Option<Responder<Exchange<B>>>,
    traceback_limit: Option<usize>,
    // Held for its `Drop`.
    _input: Option<CloseInput>,
}

/// Closes the app's input ([`Input::close`]) when dropped: once the response is over (sent,
/// failed, or the client gone), a read of a request body the client stopped sending ends
/// with an error instead of holding the app's thread for as long as the connection lives.
struct CloseInput(Input);

impl Drop for CloseInput {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> Default for ResponseBody<B> {
    /// An empty body.
    fn default() -> Self {
        ResponseBody {
            first: None,
            responder: None,
            traceback_limit: None,
            _input: None,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let Some(responder) = this.responder.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(responder).poll_chunk(cx) {
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(Some(Err(e))) => {
                log(format_args!(
                    "app failed after the head was sent: {}",
                    error_chain(&e, this.traceback_limit)
                ));
                this.responder = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.responder = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.responder.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |b| b.len() as u64);
        let rest = self
            .responder
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Responder::size_hint);
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint.set_lower(rest.lower().saturating_add(first));
        hint
    }
}
