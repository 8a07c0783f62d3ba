//! Typed request extensions for the meta-variables that `http::Request` has no place for.
//!
//! Inside a CGI program, [`Environ::into_request`](crate::Environ::into_request) puts each of
//! these in the request's [`Extensions`](http::Extensions) when its meta-variable is set, and
//! the whole [`Environ`] too. They are never request headers, which a client
//! could spoof. Read them with [`RequestExt`] or, in axum, with the `Extension` extractor:
//!
//! ```
//! use towergate::ext::{PathInfo, RequestExt, ScriptName};
//! use towergate::Environ;
//!
//! let request = Environ::from_vars([
//!     ("REQUEST_METHOD", "GET"),
//!     ("SCRIPT_NAME", "/cgi-bin/app"),
//!     ("PATH_INFO", "/a"),
//!     ("REMOTE_ADDR", "192.0.2.7"),
//!     ("REMOTE_PORT", "50123"),
//!     ("HTTPS", "on"),
//! ])
//! .into_request()
//! .unwrap();
//!
//! assert_eq!(request.script_name(), "/cgi-bin/app");
//! assert_eq!(request.path_info(), "/a");
//! assert_eq!(request.remote_addr().and_then(|a| a.to_str()), Some("192.0.2.7"));
//! assert_eq!(request.remote_port(), Some(50123));
//! assert!(request.is_https());
//! assert_eq!(
//!     request.extensions().get::<ScriptName>().map(|s| s.as_bytes()),
//!     Some(&b"/cgi-bin/app"[..]),
//! );
//! # let _ = PathInfo::from("/a");
//! ```
//!
//! On the other side (a server that runs programs or apps), [`RemoteUser`] and [`AuthType`]
//! put in the request by an authentication layer become `REMOTE_USER` and `AUTH_TYPE`
//! (RFC 3875 §4.1.1, §4.1.11), and [`ConnectInfo`] gives the connection's addresses.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::Environ;

macro_rules! meta_value {
    ($(#[$doc:meta])* $name:ident, $var:literal) => {
        $(#[$doc])*
        ///
        /// The value is kept as bytes: CGI values need not be UTF-8.
        #[derive(Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(Bytes);

        impl $name {
            /// The meta-variable this value comes from or goes to.
            pub const VAR: &'static str = $var;

            /// Wraps a value.
            pub fn new(value: impl Into<Bytes>) -> Self {
                $name(value.into())
            }

            /// The value's bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The value as text, if it is valid UTF-8.
            pub fn to_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }

            /// The value as shared bytes.
            pub fn into_bytes(self) -> Bytes {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name))
                    .field(&String::from_utf8_lossy(&self.0))
                    .finish()
            }
        }

        impl fmt::Display for $name {
            /// Lossy: bytes that are not UTF-8 show as U+FFFD.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&String::from_utf8_lossy(&self.0))
            }
        }

        impl From<&'static str> for $name {
            fn from(value: &'static str) -> Self {
                $name(Bytes::from_static(value.as_bytes()))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(Bytes::from(value))
            }
        }

        impl From<Bytes> for $name {
            fn from(value: Bytes) -> Self {
                $name(value)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }
    };
}

meta_value!(
    /// `SCRIPT_NAME` (RFC 3875 §4.1.13): the path at which the program or app is mounted, not
    /// URL-encoded; empty at the root.
    ScriptName,
    "SCRIPT_NAME"
);
meta_value!(
    /// `PATH_INFO` (RFC 3875 §4.1.5): the path below [`ScriptName`], decoded (not
    /// URL-encoded).
    PathInfo,
    "PATH_INFO"
);
meta_value!(
    /// `REMOTE_ADDR` (RFC 3875 §4.1.8): the client's network address, without brackets.
    RemoteAddr,
    "REMOTE_ADDR"
);
meta_value!(
    /// `REMOTE_USER` (RFC 3875 §4.1.11): the user the web server authenticated.
    RemoteUser,
    "REMOTE_USER"
);
meta_value!(
    /// `AUTH_TYPE` (RFC 3875 §4.1.1): the authentication scheme the web server used
    /// (`Basic`, `Digest`, …).
    AuthType,
    "AUTH_TYPE"
);
meta_value!(
    /// `SERVER_NAME` (RFC 3875 §4.1.14): the server's host name or address; an IPv6 address
    /// keeps its brackets.
    ServerName,
    "SERVER_NAME"
);
meta_value!(
    /// `REQUEST_URI` (not in RFC 3875, set by most servers): the request target as the client
    /// sent it, URL-encoded, with the query.
    RequestUri,
    "REQUEST_URI"
);

impl RemoteAddr {
    /// The address parsed as an IP address, if it is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.to_str()?.parse().ok()
    }
}

/// `REMOTE_PORT` (not in RFC 3875, set by most servers): the client's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemotePort(pub u16);

/// `SERVER_PORT` (RFC 3875 §4.1.15): the port the request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServerPort(pub u16);

/// Whether the request came over TLS: the `HTTPS` meta-variable is truthy (`on`, `1` or
/// `yes`, in any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Https(pub bool);

/// The full request URI as the web server received it (`REQUEST_URI`, or `SCRIPT_NAME` +
/// `PATH_INFO` + `QUERY_STRING` when the server does not set it), in origin form; bytes that
/// `http` does not accept raw (non-ASCII, spaces, …) are percent-encoded, as in the
/// app-relative URI.
///
/// A CGI program's service sees the app-relative path in [`http::Request::uri`] by default;
/// this is the path including the mount point.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FullUri(pub http::Uri);

/// The addresses of the connection a request came in on, for servers that build an
/// [`Environ`] from a request (`REMOTE_ADDR`, `REMOTE_PORT`, `SERVER_NAME` and `SERVER_PORT`
/// fall back to these).
///
/// How it gets into the request:
///
/// - a hyper accept loop: [`ConnectInfoLayer`](crate::layer::ConnectInfoLayer), one per
///   connection;
/// - axum, with the `axum` feature: nothing more than
///   `into_make_service_with_connect_info::<SocketAddr>()`, whose extension is read as the
///   client's address; or `into_make_service_with_connect_info::<towergate::ext::ConnectInfo>()`,
///   which gives the local address too.
///
/// ```
/// use towergate::environ::EnvironBuilder;
/// use towergate::ext::ConnectInfo;
///
/// let mut request = http::Request::get("/").body(()).unwrap();
/// request.extensions_mut().insert(ConnectInfo {
///     remote: "192.0.2.3:1234".parse().unwrap(),
///     local: Some("198.51.100.1:8001".parse().unwrap()),
/// });
/// let environ = EnvironBuilder::new().build(&request);
/// assert_eq!(environ.get("REMOTE_ADDR"), Some(&b"192.0.2.3"[..]));
/// assert_eq!(environ.get("REMOTE_PORT"), Some(&b"1234"[..]));
/// assert_eq!(environ.get("SERVER_PORT"), Some(&b"8001"[..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The server's local address, when known.
    pub local: Option<SocketAddr>,
}

/// `axum::serve(listener, router.into_make_service_with_connect_info::<ConnectInfo>())`: both
/// addresses of each TCP connection.
#[cfg(feature = "axum")]
impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ConnectInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ConnectInfo {
            remote: *stream.remote_addr(),
            local: stream.io().local_addr().ok(),
        }
    }
}

mod sealed {
    pub trait Sealed {
        fn extensions_ref(&self) -> &http::Extensions;
        fn extensions_mut_ref(&mut self) -> &mut http::Extensions;
    }

    impl<B> Sealed for http::Request<B> {
        fn extensions_ref(&self) -> &http::Extensions {
            self.extensions()
        }
        fn extensions_mut_ref(&mut self) -> &mut http::Extensions {
            self.extensions_mut()
        }
    }

    impl Sealed for http::request::Parts {
        fn extensions_ref(&self) -> &http::Extensions {
            &self.extensions
        }
        fn extensions_mut_ref(&mut self) -> &mut http::Extensions {
            &mut self.extensions
        }
    }

    impl Sealed for http::Extensions {
        fn extensions_ref(&self) -> &http::Extensions {
            self
        }
        fn extensions_mut_ref(&mut self) -> &mut http::Extensions {
            self
        }
    }
}

/// Reads (and, for tests, writes) the typed meta-variable extensions of a request.
///
/// Implemented for [`http::Request`], for [`http::request::Parts`] (so an axum
/// `FromRequestParts` extractor can use it) and for [`http::Extensions`] itself. The trait is
/// sealed: it cannot be implemented outside this crate.
///
/// Each getter returns the empty or absent value when the extension is missing, so it can be
/// called on any request. The setters put the typed values in place the way
/// [`Environ::into_request`] and the [`Mount`](crate::layer::Mount) layer do, which is how a
/// test builds a request for a handler that reads them; they do not change the
/// [`Environ`] extension (set it with [`set_environ`](Self::set_environ)).
///
/// ```
/// use towergate::ext::RequestExt;
///
/// // A test for a handler that reads the meta-variables.
/// let mut request = http::Request::get("/users/7").body(()).unwrap();
/// request.set_script_name("/cgi-bin/app");
/// request.set_path_info("/users/7");
/// request.set_remote_addr("192.0.2.7");
/// request.set_remote_port(50123);
/// request.set_https(true);
/// assert_eq!(request.script_name(), "/cgi-bin/app");
/// assert_eq!(request.path_info(), "/users/7");
/// assert_eq!(request.remote_addr().map(|a| a.to_string()), Some("192.0.2.7".to_owned()));
/// assert_eq!(request.remote_port(), Some(50123));
/// assert!(request.is_https());
///
/// // The same values from the request's parts, as an axum extractor sees them.
/// let (parts, ()) = request.into_parts();
/// assert_eq!(parts.path_info(), "/users/7");
/// assert_eq!(parts.extensions.script_name(), "/cgi-bin/app");
/// ```
///
/// In axum, an extractor reads them from the parts:
///
/// ```
/// use axum::extract::FromRequestParts;
/// use http::request::Parts;
/// use towergate::ext::RequestExt;
///
/// /// The app-relative path, as `PATH_INFO` gives it.
/// struct PathInfo(String);
///
/// impl<S: Send + Sync> FromRequestParts<S> for PathInfo {
///     type Rejection = std::convert::Infallible;
///
///     async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
///         Ok(PathInfo(parts.path_info().to_owned()))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (mut parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
/// parts.set_path_info("/a");
/// let PathInfo(path) = PathInfo::from_request_parts(&mut parts, &()).await.unwrap();
/// assert_eq!(path, "/a");
/// # }
/// ```
pub trait RequestExt: sealed::Sealed {
    /// `SCRIPT_NAME`, empty when unset or not UTF-8 (the [`ScriptName`] extension has the
    /// bytes).
    fn script_name(&self) -> &str {
        self.extensions_ref()
            .get::<ScriptName>()
            .and_then(ScriptName::to_str)
            .unwrap_or("")
    }

    /// `PATH_INFO`, empty when unset or not UTF-8 (the [`PathInfo`] extension has the
    /// bytes).
    fn path_info(&self) -> &str {
        self.extensions_ref()
            .get::<PathInfo>()
            .and_then(PathInfo::to_str)
            .unwrap_or("")
    }

    /// `REMOTE_ADDR`.
    fn remote_addr(&self) -> Option<&RemoteAddr> {
        self.extensions_ref().get()
    }

    /// `REMOTE_PORT`, parsed.
    fn remote_port(&self) -> Option<u16> {
        self.extensions_ref().get::<RemotePort>().map(|p| p.0)
    }

    /// `REMOTE_USER`.
    fn remote_user(&self) -> Option<&RemoteUser> {
        self.extensions_ref().get()
    }

    /// `AUTH_TYPE`.
    fn auth_type(&self) -> Option<&AuthType> {
        self.extensions_ref().get()
    }

    /// `SERVER_NAME`.
    fn server_name(&self) -> Option<&ServerName> {
        self.extensions_ref().get()
    }

    /// `SERVER_PORT`, parsed.
    fn server_port(&self) -> Option<u16> {
        self.extensions_ref().get::<ServerPort>().map(|p| p.0)
    }

    /// Whether `HTTPS` is truthy.
    fn is_https(&self) -> bool {
        self.extensions_ref().get::<Https>().is_some_and(|h| h.0)
    }

    /// `REQUEST_URI`, the request target as the client sent it.
    fn request_uri(&self) -> Option<&RequestUri> {
        self.extensions_ref().get()
    }

    /// The full request URI, mount point included ([`FullUri`]).
    fn full_uri(&self) -> Option<&http::Uri> {
        self.extensions_ref().get::<FullUri>().map(|u| &u.0)
    }

    /// The whole environ the request was built from.
    fn environ(&self) -> Option<&Environ> {
        self.extensions_ref().get()
    }

    /// Sets [`ScriptName`].
    fn set_script_name(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(ScriptName::new(value));
    }

    /// Sets [`PathInfo`].
    fn set_path_info(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(PathInfo::new(value));
    }

    /// Sets [`RemoteAddr`].
    fn set_remote_addr(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(RemoteAddr::new(value));
    }

    /// Sets [`RemotePort`].
    fn set_remote_port(&mut self, port: u16) {
        self.extensions_mut_ref().insert(RemotePort(port));
    }

    /// Sets [`RemoteUser`]; on the serving side, this is what an authentication layer does
    /// to pass `REMOTE_USER` to a program or app.
    fn set_remote_user(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(RemoteUser::new(value));
    }

    /// Sets [`AuthType`] (`AUTH_TYPE`), the companion of
    /// [`set_remote_user`](Self::set_remote_user).
    fn set_auth_type(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(AuthType::new(value));
    }

    /// Sets [`ServerName`].
    fn set_server_name(&mut self, value: impl Into<Bytes>) {
        self.extensions_mut_ref().insert(ServerName::new(value));
    }

    /// Sets [`ServerPort`].
    fn set_server_port(&mut self, port: u16) {
        self.extensions_mut_ref().insert(ServerPort(port));
    }

    /// Sets [`Https`].
    fn set_https(&mut self, https: bool) {
        self.extensions_mut_ref().insert(Https(https));
    }

    /// Sets the [`Environ`] extension.
    fn set_environ(&mut self, environ: Environ) {
        self.extensions_mut_ref().insert(environ);
    }
}

impl<B> RequestExt for http::Request<B> {}

impl RequestExt for http::request::Parts {}

impl RequestExt for http::Extensions {}
