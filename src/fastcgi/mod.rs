//! Run a tower service as a FastCGI application (FastCGI 1.0 specification).
//!
//! DOCS

mod body;
mod connection;
mod listener;
// Some of the codec serves only the client side.
#[allow(dead_code)]
pub(crate) mod record;
mod respond;

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

pub use body::{BodyError, RequestBody};
pub use listener::Listener;

use crate::BoxError;
use crate::error_response::{DefaultErrorResponse, ErrorResponse};
use crate::panic::log;

/// The role the web server asked the application to play for a request (FastCGI §6), in
/// the request's extensions.
///
/// A Responder answers the request; an Authorizer answers `200 OK` to let the request
/// through (its `Variable-NAME` headers become meta-variables of the request the web server
/// then serves) or any other status to refuse it. The Filter role is refused with
/// `FCGI_UNKNOWN_ROLE`.
///
/// ```
/// use towergate::fastcgi::Role;
///
/// fn is_authorizer(request: &http::Request<()>) -> bool {
///     request.extensions().get::<Role>() == Some(&Role::Authorizer)
/// }
/// assert!(!is_authorizer(&http::Request::new(())));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// `FCGI_RESPONDER`: the application answers the request (FastCGI §6.2).
    Responder,
    /// `FCGI_AUTHORIZER`: the application decides whether the web server serves the request
    /// (FastCGI §6.3). The request has no body.
    Authorizer,
}

/// Serves FastCGI connections from `listener` with the default options until the process
/// ends; see [`Builder::serve`].
pub async fn serve<S, B>(listener: impl Into<Listener>, service: S) -> std::io::Result<()>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Builder::new().serve(listener, service).await
}

/// Runs `service` as a FastCGI application on the listening socket that the process
/// manager put on descriptor 0, with the default options; see [`Builder::run`].
pub fn run<S, B>(service: S) -> ExitCode
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Builder::new().run(service)
}

/// Options of a FastCGI application.
///
/// ```
/// use std::time::Duration;
///
/// let builder = towergate::fastcgi::Builder::new()
///     .max_connections(256)
///     .max_requests(1)
///     .grace(Duration::from_secs(5));
/// # drop(builder);
/// ```
#[derive(Clone, Debug)]
pub struct Builder<E = DefaultErrorResponse> {
    pub(crate) max_connections: usize,
    pub(crate) max_requests: usize,
    pub(crate) max_params: usize,
    pub(crate) request_buffer: usize,
    pub(crate) stdin_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) error_response: E,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// The default options (each setter says its default).
    pub fn new() -> Self {
        Builder {
            max_connections: 1024,
            max_requests: 64,
            max_params: 128 * 1024,
            request_buffer: 256 * 1024,
            stdin_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            error_response: DefaultErrorResponse::new(),
        }
    }
}

impl<E> Builder<E>
where
    E: ErrorResponse + Clone + Send + Sync + 'static,
{
    /// The most connections served at once; more wait in the listener's backlog until one
    /// ends. Announced as `FCGI_MAX_CONNS` (FastCGI §4.1). Defaults to 1024.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The most requests in flight on one connection (multiplexing, FastCGI §3.3); one
    /// more is refused with `FCGI_OVERLOADED`, or `FCGI_CANT_MPX_CONN` when the limit is 1.
    /// `FCGI_MAX_REQS` is announced as this times [`max_connections`](Self::max_connections)
    /// and `FCGI_MPXS_CONNS` as 1 when it is above 1. Defaults to 64.
    pub fn max_requests(mut self, max: usize) -> Self {
        self.max_requests = max.max(1);
        self
    }

    /// The most bytes of PARAMS (the request's meta-variables, encoded) one request may
    /// send; a request over it is answered `431 Request Header Fields Too Large`. Defaults
    /// to 128 KiB.
    pub fn max_params(mut self, max: usize) -> Self {
        self.max_params = max;
        self
    }

    /// The most request body bytes held for one request while its service has not read
    /// them (rounded up to whole 64 KiB records); when it is full the connection stops
    /// reading from the web server until the service reads. Defaults to 256 KiB.
    pub fn request_buffer(mut self, bytes: usize) -> Self {
        self.request_buffer = bytes;
        self
    }

    /// How long a full request buffer may wait for its service to read before the request
    /// is ended (its body fails, END_REQUEST is sent), so that one request that does not
    /// read its body holds up the others on its connection for no longer. Defaults to 60
    /// seconds.
    pub fn stdin_timeout(mut self, timeout: Duration) -> Self {
        self.stdin_timeout = timeout;
        self
    }

    /// How long a write to the web server may wait (it stopped reading) before the
    /// connection is closed and its requests cancelled. Defaults to 60 seconds.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// On shutdown, how long in-flight requests may take to finish before they are
    /// cancelled. Defaults to 30 seconds.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The response sent when the service fails or panics before the head is written
    /// (a 500 like wsgiref's by default; see [`ErrorResponse`]).
    pub fn with_error_response<E2>(self, error_response: E2) -> Builder<E2>
    where
        E2: ErrorResponse + Clone + Send + Sync + 'static,
    {
        Builder {
            max_connections: self.max_connections,
            max_requests: self.max_requests,
            max_params: self.max_params,
            request_buffer: self.request_buffer,
            stdin_timeout: self.stdin_timeout,
            write_timeout: self.write_timeout,
            grace: self.grace,
            error_response,
        }
    }

    /// Runs `service` as a FastCGI application on descriptor 0, the listening socket that
    /// Apache `mod_fcgid`, lighttpd (`bin-path`), spawn-fcgi or systemd
    /// (`StandardInput=socket`) hand it, until `SIGTERM` or `SIGINT`: then it stops
    /// accepting, lets in-flight requests finish within the [`grace`](Self::grace), and
    /// exits with status 0.
    ///
    /// Run by hand (descriptor 0 is not a listening socket), it writes one line saying so on
    /// standard error and exits with status 1. Requests run on a multi-threaded runtime.
    pub fn run<S, B>(self, service: S) -> ExitCode
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let listener = match listener::from_stdin() {
            Ok(Some(listener)) => listener,
            Ok(None) => {
                let name = std::env::args_os()
                    .next()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "this program".into());
                let _ = writeln!(
                    std::io::stderr(),
                    "{name}: this is a FastCGI application: a process manager (spawn-fcgi, Apache mod_fcgid, lighttpd) starts it with a listening socket on descriptor 0, and descriptor 0 is not one"
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                log(format_args!("FastCGI: descriptor 0: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                log(format_args!("cannot start the async runtime: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let served = runtime.block_on(async move {
            let listener = listener.into_tokio()?;
            self.serve_with_shutdown(listener, service, terminated())
                .await
        });
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log(format_args!("FastCGI: {e}"));
                ExitCode::FAILURE
            }
        }
    }

    /// Serves FastCGI connections from `listener` until accepting fails for good (not for
    /// a passing lack of descriptors or memory, which is logged and waited out).
    pub async fn serve<S, B>(self, listener: impl Into<Listener>, service: S) -> std::io::Result<()>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(listener, service, std::future::pending())
            .await
    }

    /// Serves FastCGI connections from `listener` until `signal` completes: then it stops
    /// accepting, closes idle connections, lets in-flight requests finish within the
    /// [`grace`](Self::grace) and cancels the rest.
    pub async fn serve_with_shutdown<S, B, F>(
        self,
        listener: impl Into<Listener>,
        service: S,
        signal: F,
    ) -> std::io::Result<()>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        F: Future<Output = ()>,
    {
        let listener = listener.into();
        let grace = self.grace;
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let options = Arc::new(self);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        let result = loop {
            tokio::select! {
                () = &mut signal => break Ok(()),
                Some(_) = connections.join_next() => {}
                accepted = listener.accept(&slots) => match accepted {
                    Ok((slot, reader, writer)) => {
                        let service = service.clone();
                        let options = options.clone();
                        let shutdown = shutdown.clone();
                        connections.spawn(async move {
                            connection::serve(reader, writer, service, options, shutdown).await;
                            drop(slot);
                        });
                    }
                    Err(e) if listener::is_transient(&e) => {
                        log(format_args!("FastCGI: accepting a connection failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => break Err(e),
                },
            }
        };
        drop(listener);
        let _ = shutdown_tx.send(true);
        let finished = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            log(format_args!(
                "FastCGI: {} connections still busy after the grace of {grace:?}: cancelling them",
                connections.len()
            ));
            connections.shutdown().await;
        }
        result
    }

    /// Serves one connection (any byte stream: a socket accepted elsewhere, or an in-memory
    /// pipe in a test) until the web server closes it, or until a request without
    /// `FCGI_KEEP_CONN` is answered.
    pub async fn serve_connection<IO, S, B>(self, io: IO, service: S)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (reader, writer) = tokio::io::split(io);
        let (_shutdown_tx, shutdown) = watch::channel(false);
        connection::serve(reader, writer, service, Arc::new(self), shutdown).await;
    }
}

/// Completes at the first `SIGTERM` or `SIGINT`.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log(format_args!(
            "FastCGI: cannot listen for SIGTERM; running until killed"
        ));
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A service of [`RequestBody`] requests serving CGI requests, for [`crate::run`].
#[derive(Clone, Debug)]
pub(crate) struct FromCgi<S>(pub(crate) S);

impl<S> Service<Request<crate::cgi::RequestBody>> for FromCgi<S>
where
    S: Service<Request<RequestBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<crate::cgi::RequestBody>) -> S::Future {
        self.0.call(request.map(RequestBody::from))
    }
}

/// True when descriptor 0 is a listening socket: the program was started as a FastCGI
/// application (php-cgi and Go's `net/http/fcgi` decide the same way).
pub(crate) fn started_as_fastcgi() -> bool {
    listener::stdin_is_listening()
}
/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing` only).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzz {
    use bytes::BytesMut;

    use super::record::{
        BeginRequest, Decoder, EndRequest, RecordType, decode_pairs, encode_record,
        parse_unknown_type,
    };

    /// Decodes `data` as a record stream fed in pieces of `step` bytes: every record
    /// decodes, re-encodes to the same record, and its body parses or is refused, without
    /// a panic and without the buffer growing past one record.
    pub fn records(data: &[u8], step: usize) {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let step = step.max(1);
        let mut records = Vec::new();
        for piece in data.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) => records.push(record),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            assert!(buf.len() <= Decoder::MAX_RECORD_LEN + step);
        }
        let _ = decoder.decode_eof(&mut buf);
        for record in records {
            let mut again = BytesMut::new();
            encode_record(&mut again, record.kind, record.request_id, &record.content);
            let decoded = Decoder::new().decode_eof(&mut again);
            assert_eq!(decoded, Ok(Some(record.clone())));
            match record.kind {
                RecordType::BeginRequest => drop(BeginRequest::parse(&record.content)),
                RecordType::EndRequest => drop(EndRequest::parse(&record.content)),
                RecordType::UnknownType => drop(parse_unknown_type(&record.content)),
                _ => decode_pairs(&record.content).for_each(drop),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_point_takes_any_bytes() {
        let mut wire = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
        wire.extend_from_slice(&[1, 4, 0, 1, 0, 3, 5, 0, 0x80, 0, 0]);
        wire.extend_from_slice(&[0; 5]);
        wire.extend_from_slice(&[1, 4, 0, 1, 0xff, 0xff, 0xff]);
        for step in [0, 1, 3, 8, 255] {
            super::fuzz::records(&wire, step);
            super::fuzz::records(&[2, 0, 0], step);
        }
    }
}
