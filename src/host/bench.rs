//! The host's per-request steps, one by one, for `benches/host.rs` (feature
//! `unstable-bench`). **Unstable**: these functions expose internals and may change or go
//! away in any release; they are not covered by semver.
//!
//! ```
//! use towergate::host::{CgiProgram, bench};
//!
//! let head = bytes::Bytes::from_static(b"Content-Type: text/plain\r\n\r\nhello");
//! let (status, headers) = bench::parse_head(&head).unwrap();
//! assert_eq!((status.as_u16(), headers.len()), (200, 1));
//!
//! let program = CgiProgram::new("/srv/cgi-bin/hello").script_name("/cgi-bin/hello");
//! let (parts, ()) = http::Request::get("/cgi-bin/hello/x").body(()).unwrap().into_parts();
//! let environ = bench::environ(&program, &parts);
//! assert_eq!(environ.get("PATH_INFO").as_deref(), Some(&b"/x"[..]));
//! bench::prepare_command(&program, &environ);
//! ```

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::CgiProgram;
use super::head::{self, Head};
use super::options::Limits;
use super::run::{self, TransferEncoding};
use crate::Environ;

/// Finds the end of a CGI response head (RFC 3875 §6) in `output` (what the first read
/// returned) and parses it with the default limits, as a response does; `None` when it
/// is incomplete or invalid.
pub fn parse_head(output: &Bytes) -> Option<(StatusCode, HeaderMap)> {
    let end = head::find_end(output, &Limits::DEFAULT).ok()??;
    match head::parse_cgi(&output.slice(..end), &Limits::DEFAULT).ok()? {
        Head::Response {
            status, headers, ..
        } => Some((status, headers)),
        Head::LocalRedirect(_) => None,
    }
}

/// The meta-variables `program` gets for a request (RFC 3875 §4.1).
pub fn environ(program: &CgiProgram, parts: &http::request::Parts) -> Environ {
    run::environ(program.target(), parts, None, TransferEncoding::AsIs)
}

/// Builds (and drops, unstarted) the command that would start `program` with `environ`:
/// the environment work of a request before its spawn.
pub fn prepare_command(program: &CgiProgram, environ: &Environ) {
    let command = run::command(program.target(), program.get_options(), environ);
    std::hint::black_box(&command);
}
