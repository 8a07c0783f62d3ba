//! [`CgiBin`]: a cgi-bin directory as a tower service.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use tower_service::Service;

use super::body::error_response;
use super::future::ResponseFuture;
use super::options::ProgramOptions;
use super::redirect::Redirect;
use super::run::{Target, run};
use super::{ResponseBody, ShutdownHandle};
use crate::BoxError;
use crate::panic::log;

/// A cgi-bin directory: `MOUNT/NAME/REST` runs the executable `DIR/NAME` with `SCRIPT_NAME`
/// `MOUNT/NAME` and `PATH_INFO` `/REST` (percent-decoded, RFC 3875 §4.1.5, §4.1.13).
///
/// `NAME` is the first path segment below the mount point. It never escapes the directory
/// (RFC 3875 §9.8): a segment that is empty, starts with `.` (so `.`, `..` and hidden files),
/// or holds an encoded `/` or `\` (`%2F`, `%5C`) gets 404, as does a name that is not a
/// regular file; a file without an execute bit gets 403. A name that is a symbolic link to
/// a file outside the directory gets 403 unless [`follow_symlinks`](Self::follow_symlinks)
/// allows it (Apache's `FollowSymLinks`); links that stay inside are followed. Directories
/// are never listed. A name starting with `nph-` runs as an NPH program (RFC 3875 §5,
/// Apache's convention), and only such a name.
///
/// Every program runs with the same [`ProgramOptions`], set with
/// [`options`](Self::options); its working directory is `DIR` unless the options set one.
/// A local redirect is served by this service (or the options'
/// [`local_redirect`](ProgramOptions::local_redirect) service), so a program can redirect
/// to its neighbours.
///
/// In axum it works under `route_service("/cgi-bin/{*program}", bin)`, which keeps the full
/// path, and under `nest_service("/cgi-bin", bin)`, which strips the prefix: a path outside
/// the mount point is taken as one whose mount point was stripped (so, nested, a program
/// cannot be named like the mount point's last segment), and the program sees the full
/// path in `SCRIPT_NAME`, `PATH_INFO` and `REQUEST_URI` either way.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::os::unix::fs::PermissionsExt;
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
/// use towergate::host::{CgiBin, ProgramOptions};
///
/// let dir = std::env::temp_dir().join(format!("towergate-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let script = dir.join("hello");
/// std::fs::write(&script, "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi from %s%s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n").unwrap();
/// std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
///
/// let bin = CgiBin::new(&dir).mount("/cgi-bin").options(ProgramOptions::new());
/// let request = http::Request::get("/cgi-bin/hello/a/b").body(String::new()).unwrap();
/// let response = bin.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "hi from /cgi-bin/hello/a/b");
///
/// // Nested with the mount point stripped (axum's `nest_service`), the same program runs.
/// let request = http::Request::get("/hello/a/b").body(String::new()).unwrap();
/// let body = bin.clone().oneshot(request).await.unwrap().into_body().collect().await;
/// assert_eq!(body.unwrap().to_bytes(), "hi from /cgi-bin/hello/a/b");
///
/// for path in ["/cgi-bin/..%2Fhello", "/cgi-bin/.hidden", "/cgi-bin/missing", "/"] {
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
    options: Arc<ProgramOptions>,
    follow_symlinks: bool,
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
            options: Arc::new(ProgramOptions::new()),
            follow_symlinks: false,
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

    /// The options every program runs with (timeout, limits, environment, process slots,
    /// …). Defaults to [`ProgramOptions::new`].
    pub fn options(mut self, options: ProgramOptions) -> Self {
        self.options = Arc::new(options);
        self
    }

    /// Whether a name that is a symbolic link to a file outside the directory runs
    /// (Apache's `FollowSymLinks`). Links that stay inside the directory always do.
    /// Defaults to false: such a link gets 403 and a warning.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// A handle that ends every running program of this service and its clones when a
    /// server shuts down: see [`ShutdownHandle`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.options.shutdown_handle()
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path below the mount point (starting with `/`), and whether the request's
    /// path had the mount point stripped already (a nested service).
    fn below_mount<'a>(&self, path: &'a [u8]) -> Option<(&'a [u8], bool)> {
        match path.strip_prefix(self.mount.as_ref()) {
            Some(rest) if rest.starts_with(b"/") => Some((rest, false)),
            _ if !self.mount.is_empty() && path.starts_with(b"/") => Some((path, true)),
            _ => None,
        }
    }

    /// The program a request path names, or the status that refuses it.
    fn resolve(&self, rest: &[u8]) -> Result<(PathBuf, Bytes, bool), StatusCode> {
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
        let link = std::fs::symlink_metadata(&file).map_err(|_| StatusCode::NOT_FOUND)?;
        if link.file_type().is_symlink() && !self.follow_symlinks && !self.stays_inside(&file) {
            log(format_args!(
                "CGI program {}: a symbolic link out of the cgi-bin directory, refused",
                file.display()
            ));
            return Err(StatusCode::FORBIDDEN);
        }
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

    /// Whether the link `file` resolves to a file inside the directory.
    fn stays_inside(&self, file: &Path) -> bool {
        match (
            std::fs::canonicalize(file),
            std::fs::canonicalize(&self.dir),
        ) {
            (Ok(file), Ok(dir)) => file.starts_with(dir),
            _ => false,
        }
    }
}

/// `uri` with `mount` put back in front of its path.
fn unstripped(mount: &[u8], uri: &Uri) -> Option<Uri> {
    let mut path = BytesMut::with_capacity(mount.len() + uri.path().len() + 64);
    path.put_slice(mount);
    path.put_slice(uri.path_and_query()?.as_str().as_bytes());
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::from_maybe_shared(path.freeze()).ok()?);
    Uri::from_parts(parts).ok()
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

    fn call(&mut self, mut request: Request<B>) -> ResponseFuture {
        let path = request.uri().path().as_bytes();
        let resolved = match self.below_mount(path) {
            Some((rest, stripped)) => self.resolve(rest).map(|found| (found, stripped)),
            None => Err(StatusCode::NOT_FOUND),
        };
        let ((file, script_name, nph), stripped) = match resolved {
            Ok(found) => found,
            Err(status) => return ResponseFuture::new(async move { error_response(status) }),
        };
        if stripped {
            match unstripped(&self.mount, request.uri()) {
                Some(uri) => *request.uri_mut() = uri,
                None => {
                    return ResponseFuture::new(async { error_response(StatusCode::NOT_FOUND) });
                }
            }
        }
        let options = self.options.clone();
        let mut target = Target::new(file, script_name, nph, &options);
        if options.dir.is_none() {
            target.exec_dir = Some(self.dir.to_path_buf());
        }
        let home = self.clone();
        ResponseFuture::new(run(Arc::new(target), options, request, move || {
            Redirect::new(home)
        }))
    }
}
