//! [`SimpleHandler`]: a handler over explicit streams.

use super::{Error, Handler, Transport};
use crate::Environ;
use crate::environ::{Errors, Input};
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::gateway::App;

/// wsgiref's `SimpleHandler` (and `BaseCGIHandler`): runs an app over an environ and a
/// transport given explicitly, typically an in-memory `Vec<u8>` in tests.
///
/// The environ carries the input and the error sink ([`Environ::set_input`],
/// [`Environ::set_errors`]), or use [`streams`](Self::streams).
///
/// ```
/// use towergate::gateway::{app_fn, AppBody};
/// use towergate::handler::SimpleHandler;
/// use towergate::{BoxError, Environ};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = app_fn(|environ: Environ, start_response| async move {
///     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
///     let body = environ.input().read_to_end().await?;
///     Ok::<_, BoxError>(AppBody::from(body))
/// });
/// let environ = Environ::from_vars([("REQUEST_METHOD", "POST"), ("SERVER_PROTOCOL", "HTTP/1.0")]);
/// let mut handler = SimpleHandler::base_cgi(Vec::new(), environ)
///     .streams(towergate::environ::Input::from_bytes("echo"), Default::default());
/// handler.run(&app).await.unwrap();
/// assert_eq!(
///     handler.into_transport(),
///     b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\necho"
/// );
/// # }
/// ```
#[derive(Debug)]
pub struct SimpleHandler<T, E = DefaultErrorResponse> {
    handler: Handler<E>,
    environ: Environ,
    transport: T,
}

impl<T: Transport> SimpleHandler<T> {
    /// `SimpleHandler(stdin, stdout, stderr, environ)`: an origin server (full status line),
    /// multithread true, multiprocess false, run_once false.
    pub fn new(transport: T, environ: Environ) -> Self {
        SimpleHandler {
            handler: Handler::simple(),
            environ,
            transport,
        }
    }

    /// `BaseCGIHandler`: [`new`](Self::new) with a CGI `Status:` head.
    pub fn base_cgi(transport: T, environ: Environ) -> Self {
        SimpleHandler {
            handler: Handler::base_cgi(),
            environ,
            transport,
        }
    }
}

impl<T: Transport, E: ErrorResponse> SimpleHandler<T, E> {
    /// Sets the environ's input and error sink (`stdin`, `stderr`).
    pub fn streams(mut self, input: Input, errors: Errors) -> Self {
        self.environ.set_input(input);
        self.environ.set_errors(errors);
        self
    }

    /// Replaces the handler's options (see [`Handler`]).
    pub fn with_handler<E2: ErrorResponse>(self, handler: Handler<E2>) -> SimpleHandler<T, E2> {
        SimpleHandler {
            handler,
            environ: self.environ,
            transport: self.transport,
        }
    }

    /// The handler's options.
    pub fn handler(&self) -> &Handler<E> {
        &self.handler
    }

    /// What was written so far.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, with what was written.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Runs `app` once (see [`Handler::run`]). The environ is used up: a second run sees
    /// only the base environ.
    pub async fn run<A>(&mut self, app: &A) -> Result<(), Error>
    where
        A: App,
        A::Body: 'static,
    {
        let environ = std::mem::take(&mut self.environ);
        self.handler.run(app, environ, &mut self.transport).await
    }
}
