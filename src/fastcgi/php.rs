//! [`PhpFiles`]: the `*.php` files of a directory served through a FastCGI [`Client`], the
//! way Caddy's `php_fastcgi` routes them.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::LOCATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::client::{Client, Script};
use crate::BoxError;
use crate::host::redirect::Redirect;
use crate::host::{ResponseBody, ResponseFuture};
use crate::panic::log;

/// The PHP scripts under a directory, served by a FastCGI server (php-fpm) through a
/// [`Client`]; every other request goes to a fallback service (static files, say).
///
/// The rules are those of Caddy's `php_fastcgi`:
///
/// | request path | what runs | `SCRIPT_NAME` | `PATH_INFO` |
/// |---|---|---|---|
/// | `/a/b.php` | `DIR/a/b.php` | `/a/b.php` | `""` |
/// | `/a/b.php/x/y` | `DIR/a/b.php` | `/a/b.php` | `/x/y` (decoded) |
/// | `/d/` with `DIR/d/index.php` | `DIR/d/index.php` | `/d/index.php` | `""` |
/// | `/d` with `DIR/d/index.php` | a 308 redirect to `/d/` (query kept) | | |
/// | anything else | the fallback | | |
///
/// The first path segment ending in `.php` (any case) names the script. `SCRIPT_FILENAME`
/// is the script's real path (symlinks resolved) and `DOCUMENT_ROOT` is `DIR`'s.
/// Nothing outside `DIR` ever runs (RFC 3875 §9.8): a `..` segment, a segment with an
/// encoded `/` or `\` or a NUL byte, or a script that resolves outside `DIR` gets 404; so
/// does a script path with a segment starting with `.` (dotfiles and dot-directories), and a
/// script that is not a regular file.
///
/// A script's local redirect (`Location: /path` with no `Status`, RFC 3875 §6.2.2; PHP
/// writes one for a `Location` with response code 200) is routed again by these rules, as
/// [`CgiBin`](crate::host::CgiBin) does for its programs: a path that names no script gets
/// 404, not the fallback. [`ProgramOptions::local_redirect`](crate::host::ProgramOptions::local_redirect)
/// on the client names another service.
///
/// Requests that never reach the FastCGI server:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::ServiceExt;
/// use towergate::fastcgi::{Client, PhpFiles};
///
/// let dir = std::env::temp_dir().join(format!("towergate-php-doc-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("d")).unwrap();
/// std::fs::write(dir.join("d/index.php"), "<?php echo 'hi';").unwrap();
/// std::fs::write(dir.join(".env.php"), "<?php echo 'secret';").unwrap();
///
/// // Nothing listens there: any request that went to it would get 502.
/// let site = PhpFiles::new(&dir, Client::new("127.0.0.1:1".parse().unwrap()));
/// let status = |path: &'static str| {
///     let site = site.clone();
///     async move {
///         let request = http::Request::get(path).body(String::new()).unwrap();
///         let response = site.oneshot(request).await.unwrap();
///         (response.status().as_u16(), response.headers().get("location").cloned())
///     }
/// };
/// assert_eq!(status("/d?x=1").await, (308, Some(http::HeaderValue::from_static("/d/?x=1"))));
/// assert_eq!(status("/.env.php").await.0, 404);
/// assert_eq!(status("/%2e%2e/etc/passwd.php").await.0, 404);
/// assert_eq!(status("/missing.php").await.0, 404);
/// assert_eq!(status("/style.css").await.0, 404); // the default fallback
/// assert_eq!(status("/d/").await.0, 502); // d/index.php: sent to the (absent) server
/// std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
///
/// With php-fpm and static files for the rest:
///
/// ```no_run
/// use towergate::fastcgi::{Client, PhpFiles};
///
/// let php = Client::new("unix:/run/php/php8.2-fpm.sock".parse().unwrap());
/// let site = PhpFiles::new("/srv/www", php)
///     .fallback(tower_http::services::ServeDir::new("/srv/www"));
/// let app = axum::Router::new().fallback_service(site);
/// # let _: axum::Router = app;
/// ```
#[derive(Clone)]
pub struct PhpFiles<F = NotFound> {
    root: Arc<Root>,
    client: Client,
    fallback: F,
}

struct Root {
    /// As given, then resolved at the first request.
    given: PathBuf,
    resolved: std::sync::OnceLock<Option<PathBuf>>,
}

impl Root {
    fn resolved(&self) -> Option<&Path> {
        self.resolved
            .get_or_init(|| std::fs::canonicalize(&self.given).ok())
            .as_deref()
    }
}

impl<F: fmt::Debug> fmt::Debug for PhpFiles<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhpFiles")
            .field("root", &self.root.given)
            .field("client", &self.client)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl PhpFiles<NotFound> {
    /// The scripts under `root`, through `client` (whose `SCRIPT_NAME`, `SCRIPT_FILENAME`
    /// and `DOCUMENT_ROOT` are set per request). Every other request gets 404 until a
    /// [`fallback`](Self::fallback) is set.
    pub fn new(root: impl Into<PathBuf>, client: Client) -> Self {
        let given = root.into();
        let root = std::fs::canonicalize(&given).unwrap_or_else(|_| given.clone());
        PhpFiles {
            client: client.document_root(&root),
            root: Arc::new(Root {
                given,
                resolved: std::sync::OnceLock::new(),
            }),
            fallback: NotFound,
        }
    }
}

impl<F> PhpFiles<F> {
    /// The service for requests that name no PHP script. Defaults to [`NotFound`].
    pub fn fallback<G>(self, fallback: G) -> PhpFiles<G> {
        PhpFiles {
            root: self.root,
            client: self.client,
            fallback,
        }
    }
}

/// The default fallback of [`PhpFiles`]: 404 for every request.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        std::future::ready(Ok(crate::host::error_response(StatusCode::NOT_FOUND)))
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Script(Script),
    /// 308 to the path with a trailing slash: a directory with an `index.php`.
    Slash,
    Fallback,
    NotFound,
}

impl PartialEq for Script {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.path_info, &self.filename)
            == (&other.name, &other.path_info, &other.filename)
    }
}

impl Eq for Script {}

/// Routes `path` (raw, as in the URI) under `root` (resolved).
fn route(root: &Path, path: &str) -> Route {
    // Decoded only when escaped: most paths are plain, and are borrowed as they are.
    let mut segments: Vec<Cow<'_, [u8]>> = Vec::with_capacity(8);
    for segment in path
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
    {
        let decoded = if crate::percent::has_escape(segment) {
            Cow::Owned(crate::percent::decode(segment))
        } else {
            Cow::Borrowed(segment)
        };
        if *decoded == *b".." || decoded.iter().any(|&b| b == b'/' || b == b'\\' || b == 0) {
            return Route::NotFound;
        }
        segments.push(decoded);
    }
    let php = segments
        .iter()
        .position(|s| s.len() > 4 && s[s.len() - 4..].eq_ignore_ascii_case(b".php"));
    let (script, path_info): (&[Cow<'_, [u8]>], Vec<u8>) = match php {
        Some(i) => {
            let mut info = Vec::new();
            for segment in &segments[i + 1..] {
                info.push(b'/');
                info.extend_from_slice(segment);
            }
            if path.ends_with('/') {
                info.push(b'/');
            }
            (&segments[..=i], info)
        }
        None => {
            let dir = relative(root, &segments);
            let has_index = dir.join("index.php").is_file();
            if !has_index {
                return Route::Fallback;
            }
            if !path.ends_with('/') {
                return Route::Slash;
            }
            segments.push(Cow::Borrowed(b"index.php"));
            (&segments[..], Vec::new())
        }
    };
    if script.iter().any(|s| s.starts_with(b".")) {
        return Route::NotFound;
    }
    let Some(file) = regular_file_below(root, script) else {
        return Route::NotFound;
    };
    let mut name = Vec::with_capacity(script.iter().map(|s| s.len() + 1).sum());
    for segment in script {
        name.push(b'/');
        name.extend_from_slice(segment);
    }
    Route::Script(Script {
        name: Bytes::from(name),
        path_info: Bytes::from(path_info),
        filename: Bytes::from(file.into_os_string().into_vec()),
    })
}

/// The real path of the regular file `root/segments` when it is under `root` (resolved),
/// symlinks followed. The segments are plain names (no `.`, `..` or `/`), so with no
/// symlink among them the real path is `root/segments` itself: one `lstat` per segment
/// finds that out (and the last one whether it is a regular file), where `realpath` would
/// read every component of `root` too. A symlink anywhere sends the path to `realpath`.
fn regular_file_below(root: &Path, segments: &[Cow<'_, [u8]>]) -> Option<PathBuf> {
    let mut path = with_room(root, segments);
    let mut symlink = false;
    let mut regular = false;
    for segment in segments {
        path.push(OsStr::from_bytes(segment));
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            symlink = true;
            break;
        }
        regular = kind.is_file();
    }
    if !symlink {
        return regular.then_some(path);
    }
    let file = std::fs::canonicalize(relative(root, segments)).ok()?;
    (file.starts_with(root) && file.is_file()).then_some(file)
}

fn relative(root: &Path, segments: &[Cow<'_, [u8]>]) -> PathBuf {
    let mut path = with_room(root, segments);
    for segment in segments {
        path.push(OsStr::from_bytes(segment));
    }
    path
}

/// `root`, with room for `segments` (and an `index.php`) behind it: one allocation.
fn with_room(root: &Path, segments: &[Cow<'_, [u8]>]) -> PathBuf {
    let room = segments.iter().map(|s| s.len() + 1).sum::<usize>() + "/index.php".len();
    let mut path = PathBuf::with_capacity(root.as_os_str().len() + room);
    path.push(root);
    path
}

impl<B, F, RB> Service<Request<B>> for PhpFiles<F>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    F::Future: Send + 'static,
    F::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let Some(resolved) = self.root.resolved() else {
            log(format_args!(
                "PHP root {} cannot be resolved",
                self.root.given.display()
            ));
            let response = crate::host::error_response(StatusCode::NOT_FOUND);
            return ResponseFuture::new(std::future::ready(response));
        };
        // A few `lstat` calls on paths the kernel has cached, made here as nginx makes its
        // own on its event loop: handing them to a blocking thread cost more than they do (a
        // thread wake-up each way per request).
        let response = match route(resolved, request.uri().path()) {
            Route::Script(script) => {
                // A script's local redirect (RFC 3875 §6.2.2) is routed again, as a cgi-bin
                // directory does: to the scripts under the same root (not to the fallback,
                // whose request body type may differ).
                let root = self.root.clone();
                return self.client.call_script(request, script, move |client| {
                    Redirect::new(PhpFiles {
                        root,
                        client: client.clone(),
                        fallback: NotFound,
                    })
                });
            }
            Route::Slash => {
                let mut location = format!("{}/", request.uri().path());
                if let Some(query) = request.uri().query() {
                    location.push('?');
                    location.push_str(query);
                }
                let mut response = Response::new(ResponseBody::empty());
                *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
                if let Ok(value) = HeaderValue::try_from(location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                response
            }
            Route::NotFound => crate::host::error_response(StatusCode::NOT_FOUND),
            Route::Fallback => {
                let mut fallback = self.fallback.clone();
                return ResponseFuture::new(async move {
                    let ready = std::future::poll_fn(|cx| fallback.poll_ready(cx))
                        .await
                        .map_err(Into::into);
                    let result: Result<_, BoxError> = match ready {
                        Ok(()) => fallback.call(request).await.map_err(Into::into),
                        Err(error) => Err(error),
                    };
                    match result {
                        Ok(response) => response.map(ResponseBody::boxed),
                        Err(error) => {
                            log(format_args!("PHP fallback service failed: {error}"));
                            crate::host::error_response(StatusCode::INTERNAL_SERVER_ERROR)
                        }
                    }
                });
            }
        };
        ResponseFuture::new(std::future::ready(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("towergate-php-route-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for sub in ["d", "plain", ".hidden"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            for file in [
                "a.php",
                "d/index.php",
                ".hidden/x.php",
                ".env.php",
                "plain/f.txt",
            ] {
                std::fs::write(dir.join(file), "<?php\n").unwrap();
            }
            Dir(std::fs::canonicalize(&dir).unwrap())
        }

        fn script(&self, name: &str, path_info: &str, file: &str) -> Route {
            Route::Script(Script {
                name: Bytes::copy_from_slice(name.as_bytes()),
                path_info: Bytes::copy_from_slice(path_info.as_bytes()),
                filename: Bytes::copy_from_slice(self.0.join(file).as_os_str().as_bytes()),
            })
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn php_paths_split_at_the_script_and_directories_get_their_index() {
        let dir = Dir::new("split");
        let root = &dir.0;
        assert_eq!(route(root, "/a.php"), dir.script("/a.php", "", "a.php"));
        assert_eq!(
            route(root, "/a.php/x/y%20z"),
            dir.script("/a.php", "/x/y z", "a.php")
        );
        assert_eq!(route(root, "/a.php/"), dir.script("/a.php", "/", "a.php"));
        assert_eq!(
            route(root, "/d/"),
            dir.script("/d/index.php", "", "d/index.php")
        );
        assert_eq!(route(root, "/d"), Route::Slash);
        assert_eq!(route(root, "/plain/f.txt"), Route::Fallback);
        assert_eq!(route(root, "/plain/"), Route::Fallback);
        assert_eq!(route(root, "/missing.php"), Route::NotFound);
    }

    #[test]
    fn traversal_and_dotfiles_are_refused() {
        let dir = Dir::new("refuse");
        let root = &dir.0;
        for path in [
            "/../a.php",
            "/d/../a.php",
            "/%2e%2e/a.php",
            "/d%2F..%2Fa.php",
            "/d%5c..%5ca.php",
            "/.hidden/x.php",
            "/.env.php",
            "/%2ehidden/x.php",
            "/a.php%00.txt",
        ] {
            assert_eq!(route(root, path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn symlinks_resolve_to_real_files_and_never_leave_the_root() {
        let dir = Dir::new("links");
        let root = &dir.0;
        let outside = std::env::temp_dir().join(format!(
            "towergate-php-route-outside-{}.php",
            std::process::id()
        ));
        std::fs::write(&outside, "<?php\n").unwrap();
        std::os::unix::fs::symlink(root.join("a.php"), root.join("link.php")).unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("dlink")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out.php")).unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("dir.php")).unwrap();
        // The script runs under its real name; SCRIPT_NAME keeps the requested one.
        assert_eq!(
            route(root, "/link.php/x"),
            dir.script("/link.php", "/x", "a.php")
        );
        assert_eq!(
            route(root, "/dlink/index.php"),
            dir.script("/dlink/index.php", "", "d/index.php")
        );
        assert_eq!(route(root, "/out.php"), Route::NotFound);
        assert_eq!(route(root, "/dir.php"), Route::NotFound);
        // Not a regular file, no symlink on the way.
        assert_eq!(
            route(root, "/d/index.php/x"),
            dir.script("/d/index.php", "/x", "d/index.php")
        );
        assert_eq!(route(root, "/plain/f.txt/x.php"), Route::NotFound);
        std::fs::remove_file(&outside).unwrap();
    }
}
