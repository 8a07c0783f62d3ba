//! `http::Request` → environ: the side that runs a program or an app (RFC 3875 §4.1).

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, AUTHORIZATION, CACHE_CONTROL, CONNECTION,
    CONTENT_LENGTH, CONTENT_TYPE, COOKIE, DNT, HOST, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    ORIGIN, PROXY_AUTHORIZATION, REFERER, TE, UPGRADE_INSECURE_REQUESTS, USER_AGENT,
};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Method, Request, Uri, Version};

use super::Environ;
use super::to_request::parse_content_length;
use crate::ext::{AuthType, ConnectInfo, RemoteUser};
use crate::percent;

/// Builds the [`Environ`] of an `http::Request` (RFC 3875 §4.1), for a server that runs a CGI
/// program or a gateway app.
///
/// Every meta-variable of RFC 3875 is handled:
///
/// | variable | value |
/// |---|---|
/// | `AUTH_TYPE`, `REMOTE_USER` | the [`AuthType`] and [`RemoteUser`] request extensions, set by an authentication layer (§4.1.1, §4.1.11) |
/// | `CONTENT_LENGTH` | [`content_length`](Self::content_length), else the valid `Content-Length` header; unset when there is none (§4.1.2) |
/// | `CONTENT_TYPE` | the `Content-Type` header; unset when there is none (§4.1.3) |
/// | `GATEWAY_INTERFACE` | `CGI/1.1` (§4.1.4) |
/// | `PATH_INFO` | the percent-decoded path below [`script_name`](Self::script_name) (§4.1.5) |
/// | `PATH_TRANSLATED` | [`document_root`](Self::document_root) + `PATH_INFO`, only when both are set and `PATH_INFO` is not empty (§4.1.6) |
/// | `QUERY_STRING` | the raw query, always set, empty when there is none (§4.1.7) |
/// | `REMOTE_ADDR`, `REMOTE_HOST`, `REMOTE_PORT` | the client's address (IPv4-mapped IPv6 shown as IPv4, no brackets); `REMOTE_HOST` is the address (no DNS lookups, as §4.1.9 allows); unset when unknown (§4.1.8) |
/// | `REMOTE_IDENT` | never set (§4.1.10: ident lookups are not done) |
/// | `REQUEST_METHOD` | the method (§4.1.12) |
/// | `SCRIPT_NAME` | [`script_name`](Self::script_name), `""` at the root, never `/` (§4.1.13) |
/// | `SERVER_NAME`, `SERVER_PORT` | the host and port of `Host` (or of the URI's authority under HTTP/2), IPv6 brackets kept; else the local address; the port defaults to 80 or 443 (§4.1.14, §4.1.15) |
/// | `SERVER_PROTOCOL` | the request's real version: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0`, … (§4.1.16) |
/// | `SERVER_SOFTWARE` | [`server_software`](Self::server_software) (§4.1.17) |
/// | `HTTP_*` | one per header name, upper-cased with `-` → `_` (§4.1.18); repeated headers joined with `, `, `Cookie` with `; ` |
/// | `REQUEST_URI`, `HTTPS`, `SCRIPT_FILENAME`, `DOCUMENT_ROOT` | the raw target; `on` over TLS; the configured values |
///
/// The values copied from the request share one buffer (one allocation per environ, each
/// value a refcounted slice of it): a value kept after the environ is dropped keeps that
/// buffer, about the size of the request's head, alive.
///
/// Headers that are never passed as `HTTP_*`: `Content-Type` and `Content-Length` (they are
/// `CONTENT_TYPE` / `CONTENT_LENGTH`), `Proxy` (it would become `HTTP_PROXY`, the httpoxy
/// hole), `Proxy-Authorization`, `Authorization` unless
/// [`pass_authorization`](Self::pass_authorization) (§9.2), and any header whose name holds
/// `_` (it would be indistinguishable from its `-` twin, a spoofing hole closed the same way
/// by Apache and nginx).
///
/// ```
/// use towergate::environ::EnvironBuilder;
///
/// let request = http::Request::post("http://example.com:8080/app/a%20b?x=1")
///     .header("content-type", "text/plain")
///     .header("content-length", "5")
///     .header("cookie", "a=1")
///     .header("cookie", "b=2")
///     .header("proxy", "http://evil.example")
///     .body(())
///     .unwrap();
/// let environ = EnvironBuilder::new()
///     .script_name("/app")
///     .remote_addr("192.0.2.9:5000".parse().unwrap())
///     .build(&request);
///
/// assert_eq!(environ.get("SCRIPT_NAME"), Some(&b"/app"[..]));
/// assert_eq!(environ.get("PATH_INFO"), Some(&b"/a b"[..]));
/// assert_eq!(environ.get("QUERY_STRING"), Some(&b"x=1"[..]));
/// assert_eq!(environ.get("SERVER_NAME"), Some(&b"example.com"[..]));
/// assert_eq!(environ.get("SERVER_PORT"), Some(&b"8080"[..]));
/// assert_eq!(environ.get("CONTENT_LENGTH"), Some(&b"5"[..]));
/// assert_eq!(environ.get("HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
/// assert_eq!(environ.get("REMOTE_ADDR"), Some(&b"192.0.2.9"[..]));
/// assert!(!environ.contains_key("HTTP_PROXY"));
/// assert!(!environ.contains_key("HTTP_CONTENT_TYPE"));
/// ```
#[derive(Clone, Debug)]
pub struct EnvironBuilder {
    script_name: Bytes,
    server_software: Bytes,
    remote_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
    https: Option<bool>,
    pass_authorization: bool,
    content_length: Option<u64>,
    document_root: Option<Bytes>,
    script_filename: Option<Bytes>,
}

impl Default for EnvironBuilder {
    fn default() -> Self {
        EnvironBuilder::new()
    }
}

impl EnvironBuilder {
    /// A builder with the defaults below.
    pub fn new() -> Self {
        EnvironBuilder {
            script_name: Bytes::new(),
            server_software: Bytes::from_static(crate::SERVER_SOFTWARE.as_bytes()),
            remote_addr: None,
            local_addr: None,
            https: None,
            pass_authorization: false,
            content_length: None,
            document_root: None,
            script_filename: None,
        }
    }

    /// The mount point, not URL-encoded: `SCRIPT_NAME`, and the prefix removed from the path
    /// to give `PATH_INFO`. Trailing slashes are trimmed, so `/` is the root (`""`).
    /// Defaults to `""`.
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        let mut name: Bytes = script_name.into();
        let trimmed = name.len() - name.iter().rev().take_while(|&&b| b == b'/').count();
        name.truncate(trimmed);
        self.script_name = name;
        self
    }

    /// `SERVER_SOFTWARE`. Defaults to `towergate/VERSION`.
    pub fn server_software(mut self, software: impl Into<Bytes>) -> Self {
        self.server_software = software.into();
        self
    }

    /// The client's address. Defaults to the [`ConnectInfo`] request extension, else (with the
    /// `axum` feature) the address in axum's `ConnectInfo<SocketAddr>` extension, which a
    /// server built with `into_make_service_with_connect_info::<SocketAddr>()` inserts.
    pub fn remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// The server's local address, the fallback for `SERVER_NAME` and `SERVER_PORT`.
    /// Defaults to the [`ConnectInfo`] request extension (or, with the `axum` feature, axum's
    /// `ConnectInfo<towergate::ext::ConnectInfo>`), if any.
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Whether the connection is TLS (`HTTPS=on`, `url_scheme` `https`). Defaults to whether
    /// the request URI's scheme is `https`.
    pub fn https(mut self, https: bool) -> Self {
        self.https = Some(https);
        self
    }

    /// Whether the `Authorization` header is passed as `HTTP_AUTHORIZATION` (RFC 3875 §9.2,
    /// Apache's `CGIPassAuth`). Defaults to false.
    pub fn pass_authorization(mut self, pass: bool) -> Self {
        self.pass_authorization = pass;
        self
    }

    /// The exact body length, for a body whose length the headers do not give (a spooled
    /// chunked body). Defaults to the `Content-Length` header.
    pub fn content_length(mut self, length: u64) -> Self {
        self.content_length = Some(length);
        self
    }

    /// The document root: `DOCUMENT_ROOT`, and the base of `PATH_TRANSLATED`. Defaults to
    /// none (both unset).
    pub fn document_root(mut self, root: impl Into<Bytes>) -> Self {
        self.document_root = Some(root.into());
        self
    }

    /// `SCRIPT_FILENAME`, the program's file. Defaults to none (unset).
    pub fn script_filename(mut self, filename: impl Into<Bytes>) -> Self {
        self.script_filename = Some(filename.into());
        self
    }

    /// The environ of `request` (its body is not read).
    pub fn build<B>(&self, request: &Request<B>) -> Environ {
        self.build_from(
            request.method(),
            request.uri(),
            request.version(),
            request.headers(),
            request.extensions(),
        )
    }

    /// The environ of a request taken apart.
    pub fn build_from_parts(&self, parts: &http::request::Parts) -> Environ {
        self.build_from(
            &parts.method,
            &parts.uri,
            parts.version,
            &parts.headers,
            &parts.extensions,
        )
    }

    fn build_from(
        &self,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Environ {
        let connect = connect_info(extensions);
        let remote = self.remote_addr.or(connect.map(|c| c.remote));
        let local = self.local_addr.or(connect.and_then(|c| c.local));
        let https = self
            .https
            .unwrap_or_else(|| uri.scheme() == Some(&Scheme::HTTPS));

        // Every key below is inserted once: the fixed names are distinct, and the `HTTP_*`
        // names come from distinct header names without `_` (so no two map to one
        // variable, and `HTTP_HOST` comes either from the URI or from the header), hence
        // `push_unchecked`. The copied values (and the `HTTP_*` names) share one arena:
        // one allocation, each value a refcounted slice of it.
        let auth_type = extensions.get::<AuthType>();
        let remote_user = extensions.get::<RemoteUser>();
        let content_type = headers.get(CONTENT_TYPE);
        let content_length = self.content_length.or_else(|| {
            headers
                .get(CONTENT_LENGTH)
                .and_then(|v| parse_content_length(v.as_bytes()))
        });
        // Room for exactly the variables below (`keys_len` counts the headers that are
        // not passed too): a small request's environ stays a small allocation.
        let capacity = 11
            + 3 * usize::from(remote.is_some())
            + usize::from(auth_type.is_some())
            + usize::from(remote_user.is_some())
            + usize::from(content_type.is_some())
            + usize::from(content_length.is_some())
            + 2 * usize::from(self.document_root.is_some())
            + usize::from(self.script_filename.is_some())
            + usize::from(https)
            + headers.keys_len();
        let mut env = Environ::with_capacity(capacity);
        env.set_url_scheme(if https { Scheme::HTTPS } else { Scheme::HTTP });
        let mut arena = Arena::with_capacity(arena_estimate(uri, headers));

        env.push_unchecked(
            Bytes::from_static(b"SERVER_SOFTWARE"),
            self.server_software.clone(),
        );
        // SERVER_NAME / SERVER_PORT from Host (or :authority), else the local address.
        // (name, port): the common `name[:port]` form read directly, anything else parsed as
        // an `Authority` (from a copy in the arena: no allocation of its own).
        let host: Option<(Bytes, Option<u16>)> = match headers.get(HOST) {
            Some(value) => match simple_host(value.as_bytes()) {
                Some((name, port)) => Some((arena.copy(name), port)),
                None => Authority::from_maybe_shared(arena.copy(value.as_bytes()))
                    .ok()
                    .map(|a| (arena.copy(a.host().as_bytes()), a.port_u16())),
            },
            None => None,
        };
        let host = host.or_else(|| {
            uri.authority()
                .map(|a| (arena.copy(a.host().as_bytes()), a.port_u16()))
        });
        let server_port = host
            .as_ref()
            .and_then(|(_, port)| *port)
            .or(local.map(|l| l.port()))
            .unwrap_or(if https { 443 } else { 80 });
        let server_name: Bytes = match (host, local) {
            (Some((name, _)), _) => name,
            (None, Some(local)) => match local.ip().to_canonical() {
                IpAddr::V6(ip) => arena.display(format_args!("[{ip}]")),
                IpAddr::V4(ip) => arena.ipv4(ip),
            },
            (None, None) => Bytes::from_static(b"localhost"),
        };
        env.push_unchecked(Bytes::from_static(b"SERVER_NAME"), server_name);
        env.push_unchecked(
            Bytes::from_static(b"GATEWAY_INTERFACE"),
            Bytes::from_static(b"CGI/1.1"),
        );
        env.push_unchecked(
            Bytes::from_static(b"SERVER_PROTOCOL"),
            Bytes::from_static(protocol(version)),
        );
        env.push_unchecked(
            Bytes::from_static(b"SERVER_PORT"),
            arena.number(server_port.into()),
        );
        env.push_unchecked(
            Bytes::from_static(b"REQUEST_METHOD"),
            method_bytes(method, &mut arena),
        );

        // SCRIPT_NAME / PATH_INFO from the decoded path.
        let raw_path = uri.path().as_bytes();
        let decoded: Bytes = if percent::has_escape(raw_path) {
            arena.copy(&percent::decode(raw_path))
        } else {
            arena.copy(raw_path)
        };
        let script = &self.script_name;
        let path_info = if script.is_empty() {
            decoded
        } else {
            match decoded.strip_prefix(script.as_ref()) {
                Some(rest) if rest.is_empty() || rest.starts_with(b"/") => {
                    decoded.slice(script.len()..)
                }
                _ => decoded,
            }
        };
        if let Some(root) = self
            .document_root
            .as_ref()
            .filter(|_| !path_info.is_empty())
        {
            let root = root.strip_suffix(b"/").unwrap_or(root);
            let translated = arena.concat(&[root, &path_info]);
            env.push_unchecked(Bytes::from_static(b"PATH_TRANSLATED"), translated);
        }
        env.push_unchecked(Bytes::from_static(b"PATH_INFO"), path_info);
        env.push_unchecked(Bytes::from_static(b"SCRIPT_NAME"), script.clone());
        env.push_unchecked(
            Bytes::from_static(b"QUERY_STRING"),
            arena.copy(uri.query().unwrap_or("").as_bytes()),
        );

        if let Some(remote) = remote {
            let ip = match remote.ip().to_canonical() {
                IpAddr::V4(ip) => arena.ipv4(ip),
                ip => arena.display(ip),
            };
            env.push_unchecked(Bytes::from_static(b"REMOTE_HOST"), ip.clone());
            env.push_unchecked(Bytes::from_static(b"REMOTE_ADDR"), ip);
            env.push_unchecked(
                Bytes::from_static(b"REMOTE_PORT"),
                arena.number(remote.port().into()),
            );
        }
        if let Some(auth_type) = auth_type {
            env.push_unchecked(
                Bytes::from_static(b"AUTH_TYPE"),
                auth_type.clone().into_bytes(),
            );
        }
        if let Some(user) = remote_user {
            env.push_unchecked(
                Bytes::from_static(b"REMOTE_USER"),
                user.clone().into_bytes(),
            );
        }
        if let Some(content_type) = content_type {
            env.push_unchecked(
                Bytes::from_static(b"CONTENT_TYPE"),
                arena.copy(content_type.as_bytes()),
            );
        }
        if let Some(length) = content_length {
            env.push_unchecked(Bytes::from_static(b"CONTENT_LENGTH"), arena.number(length));
        }
        let target = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes();
        env.push_unchecked(Bytes::from_static(b"REQUEST_URI"), arena.copy(target));
        if let Some(filename) = &self.script_filename {
            env.push_unchecked(Bytes::from_static(b"SCRIPT_FILENAME"), filename.clone());
        }
        if let Some(root) = &self.document_root {
            env.push_unchecked(Bytes::from_static(b"DOCUMENT_ROOT"), root.clone());
        }
        if https {
            env.push_unchecked(Bytes::from_static(b"HTTPS"), Bytes::from_static(b"on"));
        }

        if !headers.contains_key(HOST) {
            if let Some(authority) = uri.authority() {
                env.push_unchecked(
                    Bytes::from_static(b"HTTP_HOST"),
                    arena.copy(authority.as_str().as_bytes()),
                );
            }
        }
        // `HeaderMap::iter` yields each name's values one after the other: one pass, no
        // lookups.
        let mut current: Option<&HeaderName> = None;
        for (name, value) in headers {
            if current == Some(name) {
                let separator: &[u8] = if name == COOKIE { b"; " } else { b", " };
                arena.put(separator);
                arena.put(value.as_bytes());
                continue;
            }
            if let Some(previous) = current.take() {
                let value = arena.take();
                env.push_unchecked(http_var_name(previous, &mut arena), value);
            }
            if self.passes(name) {
                current = Some(name);
                arena.put(value.as_bytes());
            }
        }
        if let Some(previous) = current {
            let value = arena.take();
            env.push_unchecked(http_var_name(previous, &mut arena), value);
        }
        env
    }

    /// Whether a header becomes an `HTTP_*` variable.
    fn passes(&self, name: &http::HeaderName) -> bool {
        if name == CONTENT_TYPE || name == CONTENT_LENGTH || name == PROXY_AUTHORIZATION {
            return false;
        }
        if name == AUTHORIZATION {
            return self.pass_authorization;
        }
        name != "proxy" && !name.as_str().contains('_')
    }
}

/// The connection's addresses: the [`ConnectInfo`] extension, else (with the `axum` feature)
/// axum's `ConnectInfo<ConnectInfo>` or `ConnectInfo<SocketAddr>`, which
/// `into_make_service_with_connect_info` inserts.
fn connect_info(extensions: &http::Extensions) -> Option<ConnectInfo> {
    if let Some(connect) = extensions.get::<ConnectInfo>() {
        return Some(*connect);
    }
    #[cfg(feature = "axum")]
    {
        use axum::extract::ConnectInfo as Axum;
        if let Some(Axum(connect)) = extensions.get::<Axum<ConnectInfo>>() {
            return Some(*connect);
        }
        if let Some(Axum(remote)) = extensions.get::<Axum<SocketAddr>>() {
            return Some(ConnectInfo {
                remote: *remote,
                local: None,
            });
        }
    }
    None
}

/// `user-agent` → `HTTP_USER_AGENT` (RFC 3875 §4.1.18).
fn http_var_name(name: &HeaderName, arena: &mut Arena) -> Bytes {
    // The names most requests carry are static: no copy, no refcount. (Comparing with the
    // standard names is an integer comparison.)
    for (known, var) in KNOWN_VARS {
        if name == known {
            return Bytes::from_static(var);
        }
    }
    let name = name.as_str();
    arena.put(b"HTTP_");
    arena.buf.extend(name.bytes().map(|b| {
        if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        }
    }));
    arena.take()
}

/// Headers whose `HTTP_*` names are static.
const KNOWN_VARS: [(HeaderName, &[u8]); 15] = [
    (HOST, b"HTTP_HOST"),
    (USER_AGENT, b"HTTP_USER_AGENT"),
    (ACCEPT, b"HTTP_ACCEPT"),
    (ACCEPT_ENCODING, b"HTTP_ACCEPT_ENCODING"),
    (ACCEPT_LANGUAGE, b"HTTP_ACCEPT_LANGUAGE"),
    (CONNECTION, b"HTTP_CONNECTION"),
    (COOKIE, b"HTTP_COOKIE"),
    (REFERER, b"HTTP_REFERER"),
    (CACHE_CONTROL, b"HTTP_CACHE_CONTROL"),
    (ORIGIN, b"HTTP_ORIGIN"),
    (IF_NONE_MATCH, b"HTTP_IF_NONE_MATCH"),
    (IF_MODIFIED_SINCE, b"HTTP_IF_MODIFIED_SINCE"),
    (UPGRADE_INSECURE_REQUESTS, b"HTTP_UPGRADE_INSECURE_REQUESTS"),
    (DNT, b"HTTP_DNT"),
    (TE, b"HTTP_TE"),
];

/// `REQUEST_METHOD`: static for the standard methods, else a copy.
fn method_bytes(method: &Method, arena: &mut Arena) -> Bytes {
    let name: &'static [u8] = if *method == Method::GET {
        b"GET"
    } else if *method == Method::POST {
        b"POST"
    } else if *method == Method::HEAD {
        b"HEAD"
    } else {
        return arena.copy(method.as_str().as_bytes());
    };
    Bytes::from_static(name)
}

/// An upper bound of the bytes [`EnvironBuilder::build_from`] copies into its arena for
/// a request with these headers: each header's name and value once, the `Host` value twice
/// more (parsed, and `SERVER_NAME`), the URI's parts, and numbers and addresses in the
/// slack. Were it short, the arena would grow: one more allocation, never an error.
fn arena_estimate(uri: &Uri, headers: &HeaderMap) -> usize {
    const SLACK: usize = 128;
    let uri_part = uri.path().len()
        + uri.query().map_or(0, str::len)
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| 2 * a.as_str().len());
    let header_part: usize = headers
        .iter()
        .map(|(name, value)| 5 + name.as_str().len() + 2 + value.len())
        .sum();
    let host_part = headers.get(HOST).map_or(0, |h| 2 * h.len());
    SLACK + uri_part + (header_part + host_part).min(64 * 1024)
}

/// One buffer the values of an environ are written into: each value is split off as
/// [`Bytes`] sharing the buffer (a refcount, no allocation, while the capacity lasts).
struct Arena {
    buf: BytesMut,
}

impl Arena {
    fn with_capacity(capacity: usize) -> Self {
        Arena {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// Appends `bytes` to the value being written.
    fn put(&mut self, bytes: &[u8]) {
        self.buf.put_slice(bytes);
    }

    /// The value written since the last `take`.
    fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn copy(&mut self, bytes: &[u8]) -> Bytes {
        match bytes {
            b"" => return Bytes::new(),
            b"/" => return Bytes::from_static(b"/"),
            _ => {}
        }
        self.put(bytes);
        self.take()
    }

    fn concat(&mut self, parts: &[&[u8]]) -> Bytes {
        for part in parts {
            self.put(part);
        }
        self.take()
    }

    /// A number in decimal, without going through a `String`.
    fn number(&mut self, mut n: u64) -> Bytes {
        match n {
            0 => return Bytes::from_static(b"0"),
            80 => return Bytes::from_static(b"80"),
            443 => return Bytes::from_static(b"443"),
            _ => {}
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.copy(&digits[at..])
    }

    /// An IPv4 address in dotted decimal (what its `Display` writes, without the formatting
    /// machinery: this runs for every request).
    fn ipv4(&mut self, ip: std::net::Ipv4Addr) -> Bytes {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.put(b".");
            }
            let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|d| b'0' + d);
            let skip = match octet {
                0..=9 => 2,
                10..=99 => 1,
                _ => 0,
            };
            self.put(&digits[skip..]);
        }
        self.take()
    }

    /// A value's `Display` form, without going through a `String`.
    fn display(&mut self, value: impl std::fmt::Display) -> Bytes {
        use std::fmt::Write as _;
        let _ = write!(self.buf, "{value}");
        self.take()
    }
}

/// `Host` in its common form, `name` or `name:port` with a name of ASCII letters, digits,
/// `.` and `-` and a port of up to five digits: the name and the port (`None` above
/// 65535), as an [`Authority`] would give them, without building one. `None` for any other
/// form, which is then parsed as an `Authority`.
fn simple_host(value: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (name, digits) = match value.iter().position(|&b| b == b':') {
        Some(colon) => (value.get(..colon)?, Some(value.get(colon + 1..)?)),
        None => (value, None),
    };
    let name_ok = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !name_ok {
        return None;
    }
    let port = match digits {
        None => None,
        Some(d) if (1..=5).contains(&d.len()) && d.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(d).ok()?.parse::<u16>().ok()
        }
        Some(_) => return None,
    };
    Some((name, port))
}

/// `SERVER_PROTOCOL` for a version (RFC 3875 §4.1.16).
fn protocol(version: Version) -> &'static [u8] {
    match version {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::{AuthType, ConnectInfo, RemoteUser};

    fn build(builder: &EnvironBuilder, request: Request<()>) -> Environ {
        builder.build(&request)
    }

    fn environ_of(request: Request<()>) -> Environ {
        build(&EnvironBuilder::new(), request)
    }

    fn get<'a>(environ: &'a Environ, key: &str) -> Option<&'a str> {
        environ.get(key).map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn simple_host_reads_what_an_authority_would() {
        let inputs = [
            "example.com",
            "example.com:8080",
            "127.0.0.1:18432",
            "EXAMPLE.com:80",
            "a-b.c:0",
            "host:65535",
            "host:65536",
            "host:99999",
            "host:",
            "host:123456",
            ":80",
            "",
            "[::1]:8080",
            "user@host:80",
            "host:80:90",
            "ho_st:80",
        ];
        for input in inputs {
            let authority = Authority::try_from(input).ok();
            match simple_host(input.as_bytes()) {
                Some((name, port)) => {
                    let authority = authority.expect("simple form is a valid authority");
                    assert_eq!(name, authority.host().as_bytes(), "{input}");
                    assert_eq!(port, authority.port_u16(), "{input}");
                }
                None => assert!(
                    !input
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                        || input.is_empty(),
                    "{input} falls back"
                ),
            }
        }
    }

    #[test]
    fn every_meta_variable_of_rfc_3875_is_set_from_the_request() {
        let mut request = Request::post("/cgi-bin/app/a%20b?x=1&y=%41")
            .version(Version::HTTP_11)
            .header("host", "example.com:8080")
            .header("content-type", "text/plain")
            .header("content-length", "11")
            .header("user-agent", "test/1")
            .body(())
            .unwrap();
        request.extensions_mut().insert(AuthType::from("Basic"));
        request.extensions_mut().insert(RemoteUser::from("alice"));
        let environ = build(
            &EnvironBuilder::new()
                .script_name("/cgi-bin/app")
                .server_software("test-server/2")
                .remote_addr("192.0.2.9:50123".parse().unwrap())
                .document_root("/srv/htdocs/")
                .script_filename("/srv/cgi-bin/app"),
            request,
        );
        let expected = [
            ("SERVER_SOFTWARE", "test-server/2"),
            ("SERVER_NAME", "example.com"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_PORT", "8080"),
            ("REQUEST_METHOD", "POST"),
            ("PATH_TRANSLATED", "/srv/htdocs/a b"),
            ("PATH_INFO", "/a b"),
            ("SCRIPT_NAME", "/cgi-bin/app"),
            ("QUERY_STRING", "x=1&y=%41"),
            ("REMOTE_HOST", "192.0.2.9"),
            ("REMOTE_ADDR", "192.0.2.9"),
            ("REMOTE_PORT", "50123"),
            ("AUTH_TYPE", "Basic"),
            ("REMOTE_USER", "alice"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "11"),
            ("REQUEST_URI", "/cgi-bin/app/a%20b?x=1&y=%41"),
            ("SCRIPT_FILENAME", "/srv/cgi-bin/app"),
            ("DOCUMENT_ROOT", "/srv/htdocs/"),
            ("HTTP_HOST", "example.com:8080"),
            ("HTTP_USER_AGENT", "test/1"),
        ];
        let actual: Vec<(&str, &str)> = environ
            .iter()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).unwrap(),
                    std::str::from_utf8(v).unwrap(),
                )
            })
            .collect();
        assert_eq!(actual, expected);
        assert!(!environ.contains_key("REMOTE_IDENT"));
        assert!(!environ.contains_key("HTTPS"));
        assert_eq!(environ.url_scheme(), "http");
    }

    #[test]
    fn without_host_or_addresses_the_server_is_localhost_on_the_default_port() {
        let environ = environ_of(Request::get("/").body(()).unwrap());
        assert_eq!(get(&environ, "SERVER_NAME"), Some("localhost"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("80"));
        assert_eq!(get(&environ, "QUERY_STRING"), Some(""));
        assert_eq!(get(&environ, "REQUEST_URI"), Some("/"));
        assert!(!environ.contains_key("REMOTE_ADDR"));
        assert!(!environ.contains_key("REMOTE_PORT"));
        assert!(!environ.contains_key("CONTENT_LENGTH"));
        assert!(!environ.contains_key("CONTENT_TYPE"));
        assert!(!environ.contains_key("AUTH_TYPE"));
        assert!(!environ.contains_key("REMOTE_USER"));
        assert!(!environ.contains_key("PATH_TRANSLATED"));
    }

    #[test]
    fn https_sets_the_variable_the_scheme_and_port_443() {
        let environ = build(
            &EnvironBuilder::new().https(true),
            Request::get("/")
                .header("host", "example.com")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "HTTPS"), Some("on"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("443"));
        assert_eq!(environ.url_scheme(), "https");

        let environ = environ_of(Request::get("https://example.com/x").body(()).unwrap());
        assert_eq!(get(&environ, "HTTPS"), Some("on"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("443"));

        let environ = build(
            &EnvironBuilder::new().https(false),
            Request::get("https://example.com/x").body(()).unwrap(),
        );
        assert!(!environ.contains_key("HTTPS"));
        assert_eq!(environ.url_scheme(), "http");
    }

    #[test]
    fn repeated_headers_are_joined_with_a_comma_and_cookies_with_a_semicolon() {
        let environ = environ_of(
            Request::get("/")
                .header("accept", "text/plain")
                .header("Accept", "text/html")
                .header("x-multi", "a")
                .header("x-multi", "b")
                .header("x-multi", "c")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "HTTP_ACCEPT"), Some("text/plain, text/html"));
        assert_eq!(get(&environ, "HTTP_X_MULTI"), Some("a, b, c"));
        assert_eq!(get(&environ, "HTTP_COOKIE"), Some("a=1; b=2"));
    }

    #[test]
    fn content_type_and_length_are_only_content_variables() {
        let environ = environ_of(
            Request::post("/")
                .header("content-type", "application/json")
                .header("content-length", "2")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "CONTENT_TYPE"), Some("application/json"));
        assert_eq!(get(&environ, "CONTENT_LENGTH"), Some("2"));
        assert!(!environ.contains_key("HTTP_CONTENT_TYPE"));
        assert!(!environ.contains_key("HTTP_CONTENT_LENGTH"));
    }

    #[test]
    fn an_invalid_content_length_header_is_dropped_and_an_explicit_length_wins() {
        let request = || {
            Request::post("/")
                .header("content-length", "12abc")
                .body(())
                .unwrap()
        };
        assert!(!environ_of(request()).contains_key("CONTENT_LENGTH"));
        let environ = build(&EnvironBuilder::new().content_length(42), request());
        assert_eq!(get(&environ, "CONTENT_LENGTH"), Some("42"));
        let chunked = Request::post("/")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let environ = build(&EnvironBuilder::new().content_length(7), chunked);
        assert_eq!(get(&environ, "CONTENT_LENGTH"), Some("7"));
    }

    #[test]
    fn proxy_never_becomes_http_proxy() {
        let environ = environ_of(
            Request::get("/")
                .header("proxy", "http://evil.example:8080")
                .header("proxy-authorization", "Basic Zm9vOmJhcg==")
                .body(())
                .unwrap(),
        );
        assert!(!environ.contains_key("HTTP_PROXY"));
        assert!(!environ.contains_key("HTTP_PROXY_AUTHORIZATION"));
    }

    #[test]
    fn authorization_is_passed_only_when_configured() {
        let request = || {
            Request::get("/")
                .header("authorization", "Bearer secret")
                .body(())
                .unwrap()
        };
        assert!(!environ_of(request()).contains_key("HTTP_AUTHORIZATION"));
        let environ = build(&EnvironBuilder::new().pass_authorization(true), request());
        assert_eq!(get(&environ, "HTTP_AUTHORIZATION"), Some("Bearer secret"));
    }

    #[test]
    fn header_names_with_underscores_are_dropped() {
        let environ = environ_of(
            Request::get("/")
                .header("x_user", "spoofed")
                .header("x-user", "real")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "HTTP_X_USER"), Some("real"));
    }

    #[test]
    fn server_protocol_is_the_real_version() {
        for (version, protocol) in [
            (Version::HTTP_09, "HTTP/0.9"),
            (Version::HTTP_10, "HTTP/1.0"),
            (Version::HTTP_11, "HTTP/1.1"),
            (Version::HTTP_2, "HTTP/2.0"),
            (Version::HTTP_3, "HTTP/3.0"),
        ] {
            let environ = environ_of(Request::get("/").version(version).body(()).unwrap());
            assert_eq!(get(&environ, "SERVER_PROTOCOL"), Some(protocol));
        }
    }

    #[test]
    fn ipv6_server_name_keeps_its_brackets_and_remote_addr_has_none() {
        let environ = build(
            &EnvironBuilder::new().remote_addr("[2001:db8::7]:4000".parse().unwrap()),
            Request::get("/")
                .header("host", "[2001:db8::1]:8443")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "SERVER_NAME"), Some("[2001:db8::1]"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8443"));
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("2001:db8::7"));
        assert_eq!(get(&environ, "REMOTE_PORT"), Some("4000"));

        // Without Host, from the local address.
        let environ = build(
            &EnvironBuilder::new().local_addr("[::1]:8080".parse().unwrap()),
            Request::get("/").body(()).unwrap(),
        );
        assert_eq!(get(&environ, "SERVER_NAME"), Some("[::1]"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8080"));
    }

    #[test]
    fn ipv4_addresses_are_written_as_display_writes_them() {
        let mut arena = Arena::with_capacity(0);
        for ip in ["0.0.0.0", "9.10.99.100", "255.1.20.200", "127.0.0.1"] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(arena.ipv4(ip), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_shown_as_ipv4() {
        let environ = build(
            &EnvironBuilder::new()
                .remote_addr("[::ffff:192.0.2.1]:5000".parse().unwrap())
                .local_addr("[::ffff:127.0.0.1]:8000".parse().unwrap()),
            Request::get("/").body(()).unwrap(),
        );
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("192.0.2.1"));
        assert_eq!(get(&environ, "SERVER_NAME"), Some("127.0.0.1"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8000"));
    }

    #[test]
    fn connect_info_gives_the_addresses_and_the_builder_overrides_it() {
        let mut request = Request::get("/").body(()).unwrap();
        request.extensions_mut().insert(ConnectInfo {
            remote: "192.0.2.3:1234".parse().unwrap(),
            local: Some("198.51.100.1:8001".parse().unwrap()),
        });
        let environ = environ_of(request.clone());
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("192.0.2.3"));
        assert_eq!(get(&environ, "REMOTE_PORT"), Some("1234"));
        assert_eq!(get(&environ, "SERVER_NAME"), Some("198.51.100.1"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8001"));
        let environ = build(
            &EnvironBuilder::new().remote_addr("192.0.2.4:9".parse().unwrap()),
            request,
        );
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("192.0.2.4"));
    }

    #[cfg(feature = "axum")]
    #[test]
    fn axum_connect_info_gives_the_addresses_and_towergates_own_wins() {
        use axum::extract::ConnectInfo as Axum;
        let remote: SocketAddr = "192.0.2.5:4321".parse().unwrap();
        let mut request = Request::get("/").body(()).unwrap();
        request.extensions_mut().insert(Axum(remote));
        let environ = environ_of(request.clone());
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("192.0.2.5"));
        assert_eq!(get(&environ, "REMOTE_PORT"), Some("4321"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("80"));

        let mut both = request.clone();
        both.extensions_mut().insert(Axum(ConnectInfo {
            remote: "192.0.2.6:1".parse().unwrap(),
            local: Some("198.51.100.2:8002".parse().unwrap()),
        }));
        let environ = environ_of(both);
        assert_eq!(get(&environ, "REMOTE_ADDR"), Some("192.0.2.6"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8002"));

        request.extensions_mut().insert(ConnectInfo {
            remote: "192.0.2.7:2".parse().unwrap(),
            local: None,
        });
        assert_eq!(get(&environ_of(request), "REMOTE_ADDR"), Some("192.0.2.7"));
    }

    #[test]
    fn an_invalid_host_header_falls_back_to_the_uri_authority() {
        let environ = environ_of(
            Request::get("http://example.org:81/")
                .header("host", "bad host")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "SERVER_NAME"), Some("example.org"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("81"));
        assert_eq!(get(&environ, "HTTP_HOST"), Some("bad host"));
    }

    #[test]
    fn root_script_name_is_empty_never_a_slash() {
        for script in ["", "/", "//"] {
            let environ = build(
                &EnvironBuilder::new().script_name(script),
                Request::get("/a").body(()).unwrap(),
            );
            assert_eq!(get(&environ, "SCRIPT_NAME"), Some(""), "{script:?}");
            assert_eq!(get(&environ, "PATH_INFO"), Some("/a"));
        }
        let environ = build(
            &EnvironBuilder::new().script_name("/app/"),
            Request::get("/app/x").body(()).unwrap(),
        );
        assert_eq!(get(&environ, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&environ, "PATH_INFO"), Some("/x"));
    }

    #[test]
    fn path_info_is_decoded_below_the_script_name() {
        let environ = build(
            &EnvironBuilder::new().script_name("/my app"),
            Request::get("/my%20app/a%2Fb/%C3%A9%ff/%zz")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "SCRIPT_NAME"), Some("/my app"));
        assert_eq!(
            environ.get("PATH_INFO"),
            Some(&b"/a/b/\xc3\xa9\xff/%zz"[..])
        );
        assert_eq!(
            get(&environ, "REQUEST_URI"),
            Some("/my%20app/a%2Fb/%C3%A9%ff/%zz")
        );
    }

    #[test]
    fn the_mount_point_itself_has_an_empty_path_info() {
        let environ = build(
            &EnvironBuilder::new().script_name("/app"),
            Request::get("/app?q").body(()).unwrap(),
        );
        assert_eq!(get(&environ, "PATH_INFO"), Some(""));
        assert_eq!(get(&environ, "QUERY_STRING"), Some("q"));
        let environ = build(
            &EnvironBuilder::new()
                .script_name("/app")
                .document_root("/srv"),
            Request::get("/app").body(()).unwrap(),
        );
        assert!(!environ.contains_key("PATH_TRANSLATED"));
    }

    #[test]
    fn a_path_outside_the_script_name_is_all_path_info() {
        let environ = build(
            &EnvironBuilder::new().script_name("/app"),
            Request::get("/application/x").body(()).unwrap(),
        );
        assert_eq!(get(&environ, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&environ, "PATH_INFO"), Some("/application/x"));
    }

    #[test]
    fn an_absolute_form_target_gives_an_origin_form_request_uri_and_a_host() {
        let environ = environ_of(
            Request::get("http://example.com:8080/a/b?c=d")
                .body(())
                .unwrap(),
        );
        assert_eq!(get(&environ, "REQUEST_URI"), Some("/a/b?c=d"));
        assert_eq!(get(&environ, "HTTP_HOST"), Some("example.com:8080"));
        assert_eq!(get(&environ, "SERVER_NAME"), Some("example.com"));
        assert_eq!(get(&environ, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&environ, "PATH_INFO"), Some("/a/b"));
    }

    #[test]
    fn header_values_that_are_not_utf8_are_kept_byte_for_byte() {
        let environ = environ_of(
            Request::get("/")
                .header(
                    "x-latin",
                    http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
                )
                .body(())
                .unwrap(),
        );
        assert_eq!(environ.get("HTTP_X_LATIN"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn auth_type_and_remote_user_come_from_extensions_only() {
        let environ = environ_of(
            Request::get("/")
                .header("authorization", "Basic YWxpY2U6eA==")
                .body(())
                .unwrap(),
        );
        assert!(!environ.contains_key("AUTH_TYPE"));
        assert!(!environ.contains_key("REMOTE_USER"));
        let mut request = Request::get("/").body(()).unwrap();
        request
            .extensions_mut()
            .insert(RemoteUser::new(&b"j\xf6rg"[..]));
        request.extensions_mut().insert(AuthType::from("Digest"));
        let environ = environ_of(request);
        assert_eq!(environ.get("REMOTE_USER"), Some(&b"j\xf6rg"[..]));
        assert_eq!(get(&environ, "AUTH_TYPE"), Some("Digest"));
    }

    #[test]
    fn build_from_parts_is_the_same_as_build() {
        let request = Request::put("/x?y").header("a", "b").body(()).unwrap();
        let builder = EnvironBuilder::new().script_name("/x");
        let whole = builder.build(&request);
        let (parts, ()) = request.into_parts();
        assert_eq!(builder.build_from_parts(&parts), whole);
    }
}
