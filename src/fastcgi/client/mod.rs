//! [`Client`]: a tower service that calls a FastCGI server (php-fpm, `php-cgi -b`, any
//! FastCGI application), and [`Address`], where that server listens.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::BoxError;
use crate::host::redirect::Redirect;
use crate::host::run::Target;
use crate::host::slots::{DEFAULT_MAX_WAITING, Slots};
use crate::host::{ProgramOptions, ResponseBody, ResponseFuture};

mod call;
mod pool;

use pool::{Pool, Settings};

/// Where a FastCGI server listens: `HOST:PORT` or `unix:PATH`.
///
/// ```
/// use towergate::fastcgi::Address;
///
/// let tcp: Address = "127.0.0.1:9000".parse().unwrap();
/// assert_eq!(tcp, Address::Tcp("127.0.0.1:9000".into()));
/// let unix: Address = "unix:/run/php/php-fpm.sock".parse().unwrap();
/// assert_eq!(unix, Address::Unix("/run/php/php-fpm.sock".into()));
/// assert_eq!(unix.to_string(), "unix:/run/php/php-fpm.sock");
/// assert!("no-port".parse::<Address>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address, `HOST:PORT` (the host name is resolved at each connect).
    Tcp(String),
    /// A Unix domain socket's path.
    Unix(PathBuf),
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr.to_string())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => f.write_str(addr),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// An [`Address`] that does not parse: not `HOST:PORT` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError(String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not HOST:PORT or unix:PATH: {:?}", self.0)
    }
}

impl std::error::Error for AddressError {}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressError(s.to_owned()));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(s.to_owned()))
            }
            _ => Err(AddressError(s.to_owned())),
        }
    }
}

/// Where the script of one request is: set by [`PhpFiles`](super::PhpFiles).
#[derive(Clone, Debug)]
pub(crate) struct Script {
    /// `SCRIPT_NAME`: the script's URL path.
    pub(crate) name: Bytes,
    /// `PATH_INFO`: the decoded path after it.
    pub(crate) path_info: Bytes,
    /// `SCRIPT_FILENAME`: the real file.
    pub(crate) filename: Bytes,
}

/// A FastCGI server as a tower [`Service`]: each request goes to the server as a Responder
/// request (FastCGI specification §6.2) on a pooled connection, and its answer comes back
/// through the same rules as a CGI program's output.
///
/// - **Parameters**: the meta-variables the CGI host gives a program
///   ([`CgiProgram`](crate::host::CgiProgram)): built by the same code, so no `HTTP_PROXY`
///   (httpoxy), `HTTP_AUTHORIZATION` only with
///   [`pass_authorization`](crate::host::ProgramOptions::pass_authorization) (see [`options`](Self::options)), `SCRIPT_NAME`/`PATH_INFO` from
///   [`script_name`](Self::script_name), plus `SCRIPT_FILENAME` and `DOCUMENT_ROOT`, which
///   php-fpm needs to find the script ([`script_filename`](Self::script_filename),
///   [`document_root`](Self::document_root)), and any [`param`](Self::param).
/// - **Request body**: streamed in STDIN records as it arrives. A body of unknown length
///   (chunked, HTTP/2) is spooled first (memory, then an unlinked temporary file) so that
///   `CONTENT_LENGTH` is exact: php-fpm reads no body without it (RFC 3875 §4.2).
/// - **Response**: STDOUT is a CGI response (RFC 3875 §6), read by the CGI host's parser
///   and turned into a response by the same code: `Status` (its reason phrase in
///   [`ReasonPhrase`](crate::host::ReasonPhrase)), `Location` (a local redirect, RFC 3875
///   §6.2.2, is served again as a `GET` through
///   [`local_redirect`](crate::host::ProgramOptions::local_redirect), by default this client,
///   under the first request's head timeout), 502 for malformed output, no body for `HEAD`,
///   204 and 304 (what the server still sends is read and dropped behind the response). The
///   body streams record by record. STDERR records are logged (target
///   `towergate::fastcgi::stderr`), never a failure.
/// - **Connections**: kept alive (`FCGI_KEEP_CONN`) in a pool. The first connection asks
///   the server with GET_VALUES whether it multiplexes (`FCGI_MPXS_CONNS`, §4.1): if so,
///   up to `FCGI_MAX_REQS` requests share a connection, else each connection carries one
///   request at a time (php-fpm, php-cgi), and that request reads it itself, as nginx does
///   (no task or channel in between). A response that is whole behind its head (php-fpm
///   writes a small one at once) becomes a body of known length, and its connection takes
///   the next request before the response is even written. A kept-alive connection that
///   the server closed while idle is dropped before use; one that it closed
///   before answering (php-fpm recycling a worker after `pm.max_requests`) is not a 502:
///   the request goes out again on a fresh connection, since nothing of it was served.
///   That needs the whole body: a spooled one (any body of unknown length, by default) is
///   read again from its start, a streamed one (a declared `Content-Length`, or
///   [`spool`](crate::host::ProgramOptions::spool) off) is kept for that up to its first
///   64 KiB. A streamed body already sent past that cannot be sent again: 502 and a log
///   line, never the rest alone as if it were the whole body.
/// - **Multiplexed responses**: FastCGI has no flow control per request, so while one
///   request's [response buffer](Self::response_buffer) is full the connection reads
///   nothing. A reader that does not take its response for
///   [`stdout_timeout`](Self::stdout_timeout) has its request aborted
///   (`FCGI_ABORT_REQUEST`): its body ends with an error, a line is logged, and the other
///   requests go on.
///
/// What goes wrong becomes a response and a log line (`Error = Infallible`):
///
/// | what | response |
/// |---|---|
/// | the server cannot be reached, closes the connection before the head, or its output is malformed | 502 |
/// | no connection within [`connect_timeout`](Self::connect_timeout) or no head within [`head_timeout`](Self::head_timeout) | 504 |
/// | no request slot ([`max_requests`](Self::max_requests)) within the head timeout, or [`max_waiting`](Self::max_waiting) requests wait for one already; the server answers `FCGI_OVERLOADED`; no room left under [`spool_limit`](crate::host::ProgramOptions::spool_limit) | 503, `Retry-After: 1` |
/// | a body over [`max_body`](crate::host::ProgramOptions::max_body) | 413 |
/// | a body that fails (the HTTP client went away) before the head | 400 |
/// | a body to spool that stalls for [`body_timeout`](crate::host::ProgramOptions::body_timeout) | 408 |
///
/// After the head, a connection that breaks ends the body with an error, so a server
/// aborts the response instead of passing a truncated body off as whole. Dropping the
/// response (the client went away) aborts the request: `FCGI_ABORT_REQUEST` on a
/// multiplexed connection, closing a connection that carries one request.
///
/// Cloning is cheap; clones share the pool and the request slots. Use one client (and its
/// clones) per server: each pool keeps connections of its own.
///
/// Against towergate's own FastCGI server (which multiplexes):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
/// use towergate::ext::RequestExt;
/// use towergate::fastcgi::{self, Client};
///
/// let app = tower::service_fn(|request: http::Request<fastcgi::RequestBody>| async move {
///     let text = format!("{} {}", request.script_name(), request.uri().path());
///     Ok::<_, std::convert::Infallible>(http::Response::new(text))
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let address = listener.local_addr().unwrap();
/// let server = tokio::spawn(fastcgi::serve(listener, app));
///
/// let client = Client::new(address.into()).script_name("/app");
/// let request = http::Request::get("/app/hello").body(String::new()).unwrap();
/// let response = client.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "/app /hello");
/// assert!(client.requests_per_connection().is_some_and(|n| n > 1));
/// server.abort();
/// # }
/// ```
///
/// # Deployment with php-fpm
///
/// A php-fpm pool of its own, on a Unix socket that the server's user may open
/// (`listen.owner`), is all it takes:
///
/// ```text
/// ; /etc/php/8.2/fpm/pool.d/site.conf
/// [site]
/// user = www-data
/// group = www-data
/// listen = /run/php/site.sock
/// listen.owner = www-data
/// pm = static
/// pm.max_children = 8
/// pm.max_requests = 500
/// ```
///
/// then `towergate serve /srv/www --php unix:/run/php/site.sock` (see
/// [`PhpFiles`](super::PhpFiles) for the routing), or in a program of your own, a
/// [`PhpFiles`](super::PhpFiles) (every script of a directory) or a client with a
/// [`script_filename`](Self::script_filename) (one front controller) as an axum fallback.
/// The tests run exactly this against Debian's php-fpm (`php-fpm8.2 -F -y CONFIG`) and
/// `php-cgi -b 127.0.0.1:PORT`.
///
/// - php-fpm gives each connection a worker until the connection closes, and does not say
///   how many workers it has. When a new connection of the pool waits unanswered for 50 ms
///   (every worker held by a kept-alive connection), an idle connection is closed for it,
///   and a connection whose request ends is closed instead of kept, so that no request
///   starves; keeping
///   [`max_requests`](Self::max_requests) at or below `pm.max_children` keeps every
///   connection alive.
/// - `pm.max_requests` recycles workers: their connections close, and a request that went
///   out on one just before is sent again on a fresh connection (tested with
///   `pm.max_requests = 2`).
/// - php-fpm reads no body without `CONTENT_LENGTH`: keep
///   [`spool`](crate::host::ProgramOptions::spool) on (the default).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tower::ServiceExt;
/// use towergate::fastcgi::Client;
///
/// // One front controller for every request.
/// let php = Client::new("unix:/run/php/site.sock".parse().unwrap())
///     .script_filename("/srv/www/index.php")
///     .document_root("/srv/www")
///     .max_requests(8)
///     .head_timeout(Duration::from_secs(30));
/// let request = http::Request::get("/hello?name=x").body(String::new()).unwrap();
/// let response = php.oneshot(request).await.unwrap();
/// println!("{}", response.status());
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    address: Arc<Address>,
    settings: Settings,
    pool: Arc<Pool>,
    slots: Slots,
    /// How many requests may wait for one of the slots.
    max_waiting: usize,
    /// The CGI host's options: limits, spooling, redirects.
    options: Arc<ProgramOptions>,
    /// The prepared environ, as the CGI host keeps it for a program.
    target: Arc<Target>,
    script_filename: Option<Bytes>,
    document_root: Option<Bytes>,
    params: Arc<Vec<(Bytes, Bytes)>>,
    head_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("settings", &self.settings)
            .field("head_timeout", &self.head_timeout)
            .field("max_waiting", &self.max_waiting)
            .field("script_filename", &self.script_filename)
            .field("document_root", &self.document_root)
            .field("open_connections", &self.pool.open_connections())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `address`, with the defaults of every setter below.
    pub fn new(address: Address) -> Self {
        let options = ProgramOptions::new();
        let settings = Settings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            multiplex: true,
            max_requests: 64,
            response_records: 4,
            stdout_timeout: Duration::from_secs(10),
        };
        Client {
            pool: Arc::new(Pool::new(address.clone(), settings.clone())),
            slots: Slots::new(settings.max_requests),
            max_waiting: DEFAULT_MAX_WAITING,
            address: Arc::new(address),
            settings,
            target: Arc::new(Target::new(PathBuf::new(), Bytes::new(), false, &options)),
            options: Arc::new(options),
            script_filename: None,
            document_root: None,
            params: Arc::new(Vec::new()),
            head_timeout: Duration::from_secs(60),
        }
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// How many connections to the server are open now.
    pub fn open_connections(&self) -> usize {
        self.pool.open_connections()
    }

    /// How many requests share one connection: 1, or more when the server said it
    /// multiplexes; `None` before the first request asked.
    pub fn requests_per_connection(&self) -> Option<u16> {
        self.pool.capacity()
    }

    fn settings_mut(&mut self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.settings);
        self.pool = Arc::new(Pool::new((*self.address).clone(), self.settings.clone()));
    }

    /// The mount point: `SCRIPT_NAME`, and the prefix removed from the path to give
    /// `PATH_INFO` (RFC 3875 §4.1.13, §4.1.5). Defaults to `""`.
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        let target = Arc::make_mut(&mut self.target);
        target.environ = target.environ.clone().script_name(script_name);
        self
    }

    /// The options this client shares with the CGI host
    /// ([`ProgramOptions`]), replacing those set so far. Those that apply to a FastCGI
    /// server: [`pass_authorization`](ProgramOptions::pass_authorization) (default false),
    /// [`server_software`](ProgramOptions::server_software),
    /// [`body_timeout`](ProgramOptions::body_timeout),
    /// [`max_body`](ProgramOptions::max_body) (default 1 GiB, then 413),
    /// [`spool`](ProgramOptions::spool) (when false, a body of unknown length streams
    /// with no `CONTENT_LENGTH` to the end of STDIN, which php-fpm does not read but
    /// towergate's FastCGI server does), [`spool_memory`](ProgramOptions::spool_memory),
    /// [`spool_dir`](ProgramOptions::spool_dir), [`spool_limit`](ProgramOptions::spool_limit)
    /// (one total for every client and CGI host sharing the options; a spooled body's
    /// bytes count until it is sent to the server, then 503),
    /// [`max_line`](ProgramOptions::max_line), [`max_head`](ProgramOptions::max_head),
    /// [`max_fields`](ProgramOptions::max_fields) (the response head's limits, 502 beyond),
    /// [`local_redirect`](ProgramOptions::local_redirect) (default: this client) and
    /// [`max_redirects`](ProgramOptions::max_redirects). Those about processes are not
    /// used. Defaults to [`ProgramOptions::new`].
    pub fn options(mut self, options: ProgramOptions) -> Self {
        Arc::make_mut(&mut self.target).refresh(&options);
        self.options = Arc::new(options);
        self
    }

    /// `SCRIPT_FILENAME`, the file the server runs (php-fpm answers "Primary script
    /// unknown" without it). Defaults to none (unset); [`PhpFiles`](super::PhpFiles) sets
    /// it per request.
    pub fn script_filename(mut self, filename: impl AsRef<Path>) -> Self {
        use std::os::unix::ffi::OsStrExt;
        self.script_filename = Some(Bytes::copy_from_slice(
            filename.as_ref().as_os_str().as_bytes(),
        ));
        self
    }

    /// `DOCUMENT_ROOT`, and the base of `PATH_TRANSLATED` (RFC 3875 §4.1.6). Defaults to
    /// none (both unset).
    pub fn document_root(mut self, root: impl AsRef<Path>) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let root = Bytes::copy_from_slice(root.as_ref().as_os_str().as_bytes());
        self.document_root = Some(root.clone());
        let target = Arc::make_mut(&mut self.target);
        target.environ = target.environ.clone().document_root(root);
        self
    }

    /// An extra parameter sent with every request, after the meta-variables (so it can
    /// override them). Repeatable. Defaults to none.
    pub fn param(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Arc::make_mut(&mut self.params).push((name.into(), value.into()));
        self
    }

    /// How long connecting (and the first GET_VALUES question) may take: then 504.
    /// Defaults to 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut(|s| s.connect_timeout = timeout);
        self
    }

    /// How long from the request's arrival to the end of the response head (waiting for a
    /// slot and a connection, spooling the body and the server's work count): then 504.
    /// Defaults to 60 seconds.
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// How long a kept-alive connection stays open with no request. Defaults to 60
    /// seconds.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut(|s| s.idle_timeout = timeout);
        self
    }

    /// The most requests in flight at once, across this client and its clones (a request
    /// holds its slot until its response body ends or is dropped); further requests wait
    /// for a slot, up to the head timeout, then get 503; at most
    /// [`max_waiting`](Self::max_waiting) wait. Also the most requests on one multiplexed
    /// connection. Defaults to 64.
    pub fn max_requests(mut self, max: usize) -> Self {
        let max = max.max(1);
        self.slots = Slots::new(max);
        self.settings_mut(|s| s.max_requests = max);
        self
    }

    /// How many requests may wait for a request slot
    /// ([`max_requests`](Self::max_requests)): past it a request gets 503 with
    /// `Retry-After: 1` at once. A waiting request holds memory (its head, its stream, a
    /// few KiB), and an HTTP/2 client can send hundreds at once on each connection: the
    /// limit keeps a flood of them from growing the server without bound. `0` lets no
    /// request wait. Defaults to 1024.
    pub fn max_waiting(mut self, max: usize) -> Self {
        self.max_waiting = max;
        self
    }

    /// The most response bytes held for one request of a multiplexed connection while its
    /// reader (the response body) does not take them, rounded up to whole 64 KiB records.
    /// When it is full, the connection reads nothing more until the reader takes some: the
    /// server is slowed down, memory does not grow. (A connection that carries one request
    /// at a time is read only as its response body is read.) Defaults to 256 KiB.
    pub fn response_buffer(mut self, bytes: usize) -> Self {
        let records = bytes.div_ceil(64 * 1024).max(1);
        self.settings_mut(|s| s.response_records = records);
        self
    }

    /// How long a request's full [response buffer](Self::response_buffer) may hold up the
    /// other requests of a multiplexed connection (FastCGI has no flow control per request:
    /// while one request's records cannot be handed on, none are read). Then that request
    /// is aborted (`FCGI_ABORT_REQUEST`), its response body ends with an error and a log
    /// line says why, and the others go on. A connection that carries one request at a
    /// time (php-fpm, php-cgi) waits for its reader as long as it takes: it holds up nobody.
    /// Defaults to 10 seconds.
    pub fn stdout_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut(|s| s.stdout_timeout = timeout);
        self
    }

    /// Whether requests share a connection when the server says it can
    /// (`FCGI_MPXS_CONNS`). When false, no GET_VALUES question is asked and each
    /// connection carries one request at a time. Defaults to true.
    pub fn multiplex(mut self, multiplex: bool) -> Self {
        self.settings_mut(|s| s.multiplex = multiplex);
        self
    }

    /// Serves `request` with the script at `script` (for [`PhpFiles`](super::PhpFiles));
    /// `home` serves its local redirects unless the options name a service.
    pub(crate) fn call_script<B>(
        &self,
        request: Request<B>,
        script: Script,
        home: impl FnOnce(&Client) -> Redirect + Send + 'static,
    ) -> ResponseFuture
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        ResponseFuture::new(call::call(self.clone(), request, Some(script), home))
    }
}

impl<B> Service<Request<B>> for Client
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
        ResponseFuture::new(call::call(self.clone(), request, None, |client| {
            Redirect::new(client.clone())
        }))
    }
}
