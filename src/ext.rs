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
/// `PATH_INFO` + `QUERY_STRING` when the server does not set it), in origin form.
///
/// A CGI program's service sees the app-relative path in [`http::Request::uri`] by default;
/// this is the path including the mount point.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FullUri(pub http::Uri);

/// The addresses of the connection a request came in on, for servers that build an
/// [`Environ`] from a request (`REMOTE_ADDR`, `REMOTE_PORT`, `SERVER_NAME` and `SERVER_PORT`
/// fall back to these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The server's local address, when known.
    pub local: Option<SocketAddr>,
}

/// Reads the typed meta-variable extensions of a request.
///
/// Each accessor returns the empty or absent value when the extension is missing, so it can
/// be called on any request.
pub trait RequestExt {
    /// `SCRIPT_NAME`, empty when unset.
    fn script_name(&self) -> &str;
    /// `PATH_INFO`, empty when unset.
    fn path_info(&self) -> &str;
    /// `REMOTE_ADDR`.
    fn remote_addr(&self) -> Option<&RemoteAddr>;
    /// `REMOTE_PORT`, parsed.
    fn remote_port(&self) -> Option<u16>;
    /// `REMOTE_USER`.
    fn remote_user(&self) -> Option<&RemoteUser>;
    /// `AUTH_TYPE`.
    fn auth_type(&self) -> Option<&AuthType>;
    /// `SERVER_NAME`.
    fn server_name(&self) -> Option<&ServerName>;
    /// `SERVER_PORT`, parsed.
    fn server_port(&self) -> Option<u16>;
    /// Whether `HTTPS` is truthy.
    fn is_https(&self) -> bool;
    /// The whole environ the request was built from.
    fn environ(&self) -> Option<&Environ>;
}

impl<B> RequestExt for http::Request<B> {
    fn script_name(&self) -> &str {
        self.extensions()
            .get::<ScriptName>()
            .and_then(ScriptName::to_str)
            .unwrap_or("")
    }

    fn path_info(&self) -> &str {
        self.extensions()
            .get::<PathInfo>()
            .and_then(PathInfo::to_str)
            .unwrap_or("")
    }

    fn remote_addr(&self) -> Option<&RemoteAddr> {
        self.extensions().get()
    }

    fn remote_port(&self) -> Option<u16> {
        self.extensions().get::<RemotePort>().map(|p| p.0)
    }

    fn remote_user(&self) -> Option<&RemoteUser> {
        self.extensions().get()
    }

    fn auth_type(&self) -> Option<&AuthType> {
        self.extensions().get()
    }

    fn server_name(&self) -> Option<&ServerName> {
        self.extensions().get()
    }

    fn server_port(&self) -> Option<u16> {
        self.extensions().get::<ServerPort>().map(|p| p.0)
    }

    fn is_https(&self) -> bool {
        self.extensions().get::<Https>().is_some_and(|h| h.0)
    }

    fn environ(&self) -> Option<&Environ> {
        self.extensions().get()
    }
}
