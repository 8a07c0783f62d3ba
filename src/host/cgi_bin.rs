//! [`CgiBin`]: a cgi-bin directory as a tower service.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::future::ResponseFuture;
use super::run::{Dispatch, Target, error_response, run};
use super::{CgiProgram, ResponseBody};
use crate::BoxError;

/// A cgi-bin directory: `MOUNT/NAME/REST` runs the executable `DIR/NAME` with `SCRIPT_NAME`
/// `MOUNT/NAME` and `PATH_INFO` `/REST` (percent-decoded, RFC 3875 §4.1.5, §4.1.13).
///
/// `NAME` is the first path segment below the mount point. It never escapes the directory
/// (RFC 3875 §9.8): a segment that is empty, starts with `.` (so `.`, `..` and hidden files),
/// or holds an encoded `/` or `\` (`%2F`, `%5C`) gets 404, as does a name that is not a
/// regular file; a file without an execute bit gets 403. Directories are never listed. A
/// name starting with `nph-` runs as an NPH program (RFC 3875 §5, Apache's convention).
///
/// Every program runs with the options of a template [`CgiProgram`] (its path and script
/// name aside), set with [`options`](Self::options); its working directory is `DIR` unless
/// the template sets one. A local redirect is served by this service (or the template's
/// [`local_redirect`](CgiProgram::local_redirect) service), so a program can redirect to
/// its neighbours.
///
/// In axum, mount it with `route_service("/cgi-bin/{*program}", bin)`, which keeps the full
/// path, rather than `nest_service`, which strips the prefix that `mount` expects.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::os::unix::fs::PermissionsExt;
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
/// use towergate::host::{CgiBin, CgiProgram};
///
/// let dir = std::env::temp_dir().join(format!("towergate-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let script = dir.join("hello");
/// std::fs::write(&script, "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi from %s%s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n").unwrap();
/// std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
///
/// let bin = CgiBin::new(&dir).mount("/cgi-bin").options(CgiProgram::default());
/// let request = http::Request::get("/cgi-bin/hello/a/b").body(String::new()).unwrap();
/// let response = bin.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "hi from /cgi-bin/hello/a/b");
///
/// for path in ["/cgi-bin/..%2Fhello", "/cgi-bin/.hidden", "/cgi-bin/missing", "/elsewhere"] {
///     let request = http::Request::get(path).body(String::new()).unwrap();
///     assert_eq!(bin.clone().oneshot(request).await.unwrap().status(), 404, "{path}");
/// }
/// std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CgiBin {
    dir: Arc<Path>,
    mount: Bytes,
    template: CgiProgram,
}

impl CgiBin {
    /// Serves the programs in `dir` (made absolute now), mounted at the root, with the
    /// default options.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        CgiBin {
            dir: Arc::from(dir),
            mount: Bytes::new(),
            template: CgiProgram::default(),
        }
    }

    /// The path prefix the directory is mounted at, not URL-encoded (`/cgi-bin`); requests
    /// outside it get 404. Trailing slashes are trimmed. Defaults to `""`, the root.
    pub fn mount(mut self, prefix: impl Into<Bytes>) -> Self {
        let mut prefix: Bytes = prefix.into();
        let trimmed = prefix.len() - prefix.iter().rev().take_while(|&&b| b == b'/').count();
        prefix.truncate(trimmed);
        self.mount = prefix;
        self
    }

    /// The options every program runs with: those of `template` (timeout, limits,
    /// environment, process slots, …); its path, script name and `nph` are not used.
    /// Defaults to [`CgiProgram::default`]'s.
    pub fn options(mut self, template: CgiProgram) -> Self {
        self.template = template;
        self
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The program a request path names, or the status that refuses it.
    fn resolve(&self, path: &[u8]) -> Result<(PathBuf, Bytes, bool), StatusCode> {
        let rest = path
            .strip_prefix(self.mount.as_ref())
            .ok_or(StatusCode::NOT_FOUND)?;
        let rest = rest.strip_prefix(b"/").ok_or(StatusCode::NOT_FOUND)?;
        let raw_name = rest.split(|&b| b == b'/').next().unwrap_or_default();
        let lower = raw_name.to_ascii_lowercase();
        if lower.windows(3).any(|w| w == b"%2f" || w == b"%5c") {
            return Err(StatusCode::NOT_FOUND);
        }
        let name = crate::percent::decode(raw_name);
        if name.is_empty()
            || name.starts_with(b".")
            || name.iter().any(|&b| b == b'/' || b == b'\\' || b == 0)
        {
            return Err(StatusCode::NOT_FOUND);
        }
        let file = self.dir.join(OsStr::from_bytes(&name));
        // One stat on the reactor thread: cheaper than a hop to the blocking pool.
        let meta = std::fs::metadata(&file).map_err(|_| StatusCode::NOT_FOUND)?;
        if !meta.is_file() {
            return Err(StatusCode::NOT_FOUND);
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(StatusCode::FORBIDDEN);
        }
        let mut script_name = BytesMut::with_capacity(self.mount.len() + 1 + name.len());
        script_name.put_slice(&self.mount);
        script_name.put_u8(b'/');
        script_name.put_slice(&name);
        Ok((file, script_name.freeze(), name.starts_with(b"nph-")))
    }
}

impl<B> Service<Request<B>> for CgiBin
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
        let (file, script_name, nph) = match self.resolve(request.uri().path().as_bytes()) {
            Ok(found) => found,
            Err(status) => return ResponseFuture::new(async move { error_response(status) }),
        };
        let options = self.template.options.clone();
        let mut target = Target::new(file, script_name, nph || self.template.target.nph, &options);
        if options.dir.is_none() {
            target.exec_dir = Some(self.dir.to_path_buf());
        }
        ResponseFuture::new(run(
            Arc::new(target),
            options,
            request,
            Dispatch::Bin(self.clone()),
        ))
    }
}
