//! The CGI host: external CGI programs as tower services (Go's `net/http/cgi.Handler`,
//! RFC 3875 from the server's side).
//!
//! - [`CgiProgram`] runs one program per request: git-http-backend, php-cgi, Perl and shell
//!   scripts, or a binary built with [`towergate::cgi::run`](crate::cgi::run).
//! - [`CgiBin`] serves a cgi-bin directory: `/cgi-bin/NAME/PATH_INFO` runs `DIR/NAME`.
//!
//! Both answer with a [`ResponseBody`] that streams the program's output, and compose with
//! any tower layer and with axum (`route_service`, `nest_service`, `fallback_service`). The
//! options they run programs with are a [`ProgramOptions`]; a [`ShutdownHandle`] ends every
//! running program when a server stops.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::os::unix::fs::PermissionsExt;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use towergate::host::CgiProgram;
//!
//! let dir = std::env::temp_dir().join(format!("towergate-host-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let script = dir.join("upper.sh");
//! std::fs::write(
//!     &script,
//!     "#!/bin/sh\n\
//!      printf 'Status: 201 Made\\r\\nContent-Type: text/plain\\r\\n\\r\\n'\n\
//!      printf '%s %s ' \"$REQUEST_METHOD\" \"$PATH_INFO\"\n\
//!      head -c \"$CONTENT_LENGTH\" | tr a-z A-Z\n",
//! )
//! .unwrap();
//! std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
//!
//! let program = CgiProgram::new(&script).script_name("/upper");
//! let request = http::Request::post("/upper/x?y=1").body(String::from("hello")).unwrap();
//! let response = program.oneshot(request).await.unwrap();
//!
//! assert_eq!(response.status(), 201);
//! assert_eq!(
//!     response.extensions().get::<towergate::host::ReasonPhrase>().unwrap().as_bytes(),
//!     b"Made"
//! );
//! assert_eq!(response.headers()["content-type"], "text/plain");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "POST /x HELLO");
//! std::fs::remove_dir_all(&dir).unwrap();
//! # }
//! ```
//!
//! # What the program gets (RFC 3875 §4)
//!
//! - An environment holding only the meta-variables of [`EnvironBuilder`](crate::environ::EnvironBuilder)
//!   (the real `SERVER_PROTOCOL`; `SERVER_NAME`/`SERVER_PORT` from `Host`;
//!   `REMOTE_ADDR`/`REMOTE_PORT` from the [`ConnectInfo`](crate::ext::ConnectInfo) extension
//!   a server inserts; `REMOTE_USER`/`AUTH_TYPE` from
//!   [`RemoteUser`](crate::ext::RemoteUser)/[`AuthType`](crate::ext::AuthType); no
//!   `HTTP_PROXY`; `HTTP_AUTHORIZATION` only with
//!   [`pass_authorization`](ProgramOptions::pass_authorization)), then `PATH` and
//!   `LD_LIBRARY_PATH` (as Go), the [`inherit_env`](ProgramOptions::inherit_env) names and
//!   the [`env`](ProgramOptions::env) pairs. Nothing else of the host's environment leaks.
//!   An environment `exec` would refuse (one string over Linux's 128 KiB, or more than
//!   [`max_environ`](ProgramOptions::max_environ) in all: a client's huge header) is a 431
//!   and a warning, before anything runs.
//! - Standard input, output and error, and no other descriptor: every descriptor from 3 up
//!   is marked close-on-exec before a program starts, those the server inherited without
//!   the flag included.
//! - Its directory as the working directory (§7.2), unless [`dir`](ProgramOptions::dir)
//!   says otherwise.
//! - The request body on standard input, streamed while the output is read, so a program
//!   that never reads its input or writes megabytes before reading cannot deadlock the
//!   host. The program starts once the body's first bytes are here (a client that sends
//!   nothing holds no process slot); a body that stalls longer than
//!   [`body_timeout`](ProgramOptions::body_timeout) gets 408. A body of unknown length
//!   (chunked, HTTP/2) is spooled first, in memory then in an unlinked temporary file, so
//!   `CONTENT_LENGTH` is exact (§4.2); see [`spool`](ProgramOptions::spool). Spooling stops
//!   at [`max_body`](ProgramOptions::max_body) (413), and all spools together stay under
//!   [`spool_limit`](ProgramOptions::spool_limit) (503). Without a body, standard input is
//!   `/dev/null`. On Linux the standard input pipe of a body over 64 KiB (or of unknown
//!   length) is grown to 1 MiB (`F_SETPIPE_SZ`, the unprivileged maximum), so that each
//!   side moves more per wakeup.
//! - Standard error, read and logged line by line ([`Stderr`]), never blocking the program.
//!
//! # What the host makes of its output (RFC 3875 §6)
//!
//! - Lines end in LF or CRLF (§7.2). Field names are case-insensitive, `Status` included,
//!   and its reason phrase is kept: when it differs from the standard one it is in the
//!   response's [`ReasonPhrase`] extension and, with the `hyper` feature (a default one),
//!   in hyper's own `hyper::ext::ReasonPhrase`, so hyper's HTTP/1 server puts it on the
//!   status line. A status with no standard phrase and none from the program goes out with
//!   an empty one (`HTTP/1.1 999 `), never hyper's `<none>`.
//! - A document response needs `Content-Type` (§6.2.1) unless it has a `Status`;
//!   `Location: /path` without `Status` is a local redirect (§6.2.2), served as a `GET`
//!   through [`local_redirect`](ProgramOptions::local_redirect) (default: the same service)
//!   at most [`max_redirects`](ProgramOptions::max_redirects) times in a row, under the
//!   first program's deadline; the first program is reaped (its process slot freed, after
//!   the grace at most) before the redirect is served. Any other `Location` without
//!   `Status` is a 302 client redirect (§6.2.3).
//! - Malformed output (no header block, a line without a colon, a continuation line, a bad
//!   or repeated `Status`, no `Content-Type`, a line, block or field count over the limits,
//!   a `Content-Length` that is not one decimal length or two different ones) is a 502 and
//!   a log line that says why. Hop-by-hop fields are dropped (§6.3.4).
//! - The host does not decode a program's own framing: a `Transfer-Encoding` field, from a
//!   CGI or an NPH program, is a 502 (never chunk framing passed on as body bytes).
//! - A valid `Content-Length` is kept and enforced: output past it is not sent (the
//!   program's remaining output is read and discarded); a body that ends short of it ends
//!   with an error (the client sees a truncation) and a log line.
//! - NPH programs (§5; [`CgiProgram::nph`], or a `nph-` name in a [`CgiBin`]) write an HTTP
//!   status line instead of CGI fields.
//! - The body streams as the program writes it, in reads of up to 256 KiB; once the
//!   program fills its 64 KiB standard output pipe, that pipe is grown to 1 MiB (Linux).
//!   Grown pipes count against the per-user `fs.pipe-user-pages-soft` limit; past it the
//!   kernel refuses to grow more and pipes keep their default size. For `HEAD` (§4.3.3),
//!   204 and 304 the body is read and discarded.
//!
//! # Lifecycle
//!
//! Each program runs in its own process group, started through std's `posix_spawn` path
//! (no `pre_exec`, no thread per request). One task per program reaps it and ends its
//! process group — `SIGTERM` to the group, then, after [`grace`](ProgramOptions::grace),
//! `SIGKILL` to whatever is left of it, whether or not the leader died of the `SIGTERM` —
//! when:
//! - the [`timeout`](ProgramOptions::timeout) expires (504 when the head was not sent yet,
//!   else the body ends with an error). The time limit starts when the request's first
//!   program starts and covers its local redirects;
//! - the response future or body is dropped before the end (the client went away, §3.4);
//! - the request body stalls ([`body_timeout`](ProgramOptions::body_timeout): 408 before
//!   the head);
//! - the server shuts down ([`ShutdownHandle::shutdown`]: 503 before the head).
//!
//! A program that exits while members of its process group still hold its standard output
//! or error (`sleep 300 &` in a shell script) does not hold its response: once it has
//! exited, the response ends with what it wrote, and the rest of its process group gets
//! `SIGTERM`, then `SIGKILL` after the grace. A program that detaches properly (a new
//! session, its standard streams closed) is left alone. Every child is reaped and every
//! pipe closed: the host's descriptor count returns to where it was.
//!
//! [`max_processes`](ProgramOptions::max_processes) bounds how many run at once: a slot is
//! taken when a program starts and freed when it is reaped; a request waits for one at
//! most [`slot_wait`](ProgramOptions::slot_wait), then gets 503 with `Retry-After: 1`. At
//! most [`max_waiting`](ProgramOptions::max_waiting) requests (default 1024) wait: past it a
//! request gets the 503 at once, so that a flood of requests (hundreds of HTTP/2 streams on
//! each connection) cannot grow the server without bound.
//!
//! The host's own refusals are logged as warnings under the target `towergate::host`; a
//! program's failures (500, 502, 504, a truncated body) as errors.

mod body;
mod cgi_bin;
mod future;
pub(crate) mod head;
mod options;
mod process;
mod program;
pub(crate) mod redirect;
pub(crate) mod run;
mod shutdown;
pub(crate) mod slots;
pub(crate) mod spool;

#[cfg(feature = "unstable-bench")]
pub mod bench;

use std::fmt;

use bytes::Bytes;

pub use body::ResponseBody;
// For the FastCGI client, which answers with the host's responses.
#[cfg(feature = "fastcgi")]
pub(crate) use body::error_response;
pub use cgi_bin::CgiBin;
pub use future::ResponseFuture;
pub use options::{ProgramOptions, Stderr};
pub use program::CgiProgram;
pub use shutdown::ShutdownHandle;

/// Puts a program's reason phrase in a response's extensions: as [`ReasonPhrase`], and,
/// with the `hyper` feature, as `hyper::ext::ReasonPhrase`, which hyper's HTTP/1 server
/// writes on the status line.
pub(crate) fn insert_reason(extensions: &mut http::Extensions, reason: ReasonPhrase) {
    #[cfg(feature = "hyper")]
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.0.clone()) {
        extensions.insert(phrase);
    }
    extensions.insert(reason);
}

/// The reason phrase of a program's `Status` field (RFC 3875 §6.3.3) or NPH status line,
/// when it differs from the standard one for the code: a response extension.
///
/// A status with no standard phrase (`Status: 299`, `Status: 999`) and none from the program
/// gets an empty phrase (RFC 9112 §4 makes it optional), never a made-up one.
///
/// hyper's HTTP/1 server sends a custom reason phrase only from its own
/// `hyper::ext::ReasonPhrase` extension: with towergate's `hyper` feature the host inserts
/// that one too, so nothing is left to convert.
#[derive(Clone, PartialEq, Eq)]
pub struct ReasonPhrase(pub(crate) Bytes);

impl ReasonPhrase {
    /// The phrase's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The phrase as shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for ReasonPhrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReasonPhrase")
            .field(&String::from_utf8_lossy(&self.0))
            .finish()
    }
}
