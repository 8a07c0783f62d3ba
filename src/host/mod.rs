//! The CGI host: external CGI programs as tower services (Go's `net/http/cgi.Handler`,
//! RFC 3875 from the server's side).
//!
//! - [`CgiProgram`] runs one program per request: git-http-backend, php-cgi, Perl and shell
//!   scripts, or a binary built with [`towergate::cgi::run`](crate::cgi::run).
//! - [`CgiBin`] serves a cgi-bin directory: `/cgi-bin/NAME/PATH_INFO` runs `DIR/NAME`.
//!
//! Both answer with a [`ResponseBody`] that streams the program's output, and compose with
//! any tower layer and with axum (`route_service`, `fallback_service`).
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
//!   [`pass_authorization`](CgiProgram::pass_authorization)), then `PATH` and
//!   `LD_LIBRARY_PATH` (as Go), the [`inherit_env`](CgiProgram::inherit_env) names and the
//!   [`env`](CgiProgram::env) pairs. Nothing else of the host's environment leaks.
//! - Its directory as the working directory (§7.2), unless [`dir`](CgiProgram::dir) says
//!   otherwise.
//! - The request body on standard input, streamed while the output is read, so a program
//!   that never reads its input or writes megabytes before reading cannot deadlock the
//!   host. A body of unknown length (chunked, HTTP/2) is spooled first, in memory then in
//!   an unlinked temporary file, so `CONTENT_LENGTH` is exact (§4.2); see
//!   [`spool`](CgiProgram::spool). Without a body, standard input is `/dev/null`. On Linux
//!   the standard input pipe of a body over 64 KiB (or of unknown length) is grown to
//!   1 MiB (`F_SETPIPE_SZ`, the unprivileged maximum), so that each side moves more per
//!   wakeup.
//! - Standard error, read and logged line by line ([`Stderr`]), never blocking the program.
//!
//! # What the host makes of its output (RFC 3875 §6)
//!
//! - Lines end in LF or CRLF (§7.2). Field names are case-insensitive, `Status` included,
//!   and its reason phrase is kept: when it differs from the standard one it is in the
//!   response's [`ReasonPhrase`] extension, which a server can turn into hyper's
//!   `hyper::ext::ReasonPhrase` (the `towergate` CLI does; towergate's `host` feature does
//!   not depend on hyper's server).
//! - A document response needs `Content-Type` (§6.2.1) unless it has a `Status`;
//!   `Location: /path` without `Status` is a local redirect (§6.2.2), served as a `GET`
//!   through [`local_redirect`](CgiProgram::local_redirect) (default: the same service) at
//!   most [`max_redirects`](CgiProgram::max_redirects) times in a row; any other `Location`
//!   without `Status` is a 302 client redirect (§6.2.3).
//! - Malformed output (no header block, a line without a colon, a continuation line, a bad
//!   or repeated `Status`, no `Content-Type`, a line, block or field count over the limits)
//!   is a 502 and a log line that says why. Hop-by-hop fields are dropped (§6.3.4).
//! - NPH programs (§5; [`nph`](CgiProgram::nph), or a `nph-` name in a [`CgiBin`]) write
//!   an HTTP status line instead of CGI fields.
//! - The body streams as the program writes it, in reads of up to 256 KiB; once the
//!   program fills its 64 KiB standard output pipe, that pipe is grown to 1 MiB (Linux).
//!   Grown pipes count against the per-user `fs.pipe-user-pages-soft` limit; past it the
//!   kernel refuses to grow more and pipes keep their default size. For `HEAD` (§4.3.3),
//!   204 and 304 the body is read and discarded.
//!
//! # Lifecycle
//!
//! Each program runs in its own process group, started through std's `posix_spawn` path
//! (no `pre_exec`, no thread per request). One task per program reaps it; it kills the
//! group (`SIGTERM`, then `SIGKILL` after [`grace`](CgiProgram::grace)) when the
//! [`timeout`](CgiProgram::timeout) expires (504 when the head was not sent yet) or when the
//! response future or body is dropped before the end (the client went away, §3.4). Every
//! child is reaped and every pipe closed. [`max_processes`](CgiProgram::max_processes)
//! bounds how many run at once: further requests wait for a slot, up to the timeout, then
//! get 503.

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
