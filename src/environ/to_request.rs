//! Environ → `http::Request`: the CGI program side (RFC 3875 §4.1, read back).

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use super::{Environ, is_truthy};
use crate::ext::{
    AuthType, FullUri, Https, PathInfo, RemoteAddr, RemotePort, RemoteUser, RequestUri, ScriptName,
    ServerName, ServerPort,
};
use crate::percent::{self, Set};

/// Why an [`Environ`] does not describe a request.
///
/// [`status`](InvalidEnviron::status) says how a CGI program should answer it:
/// [`is_missing_method`](InvalidEnviron::is_missing_method) means the program was not run by
/// a web server at all (someone ran it by hand) and there is nobody to answer.
#[derive(Debug)]
pub struct InvalidEnviron {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    MissingMethod,
    Method(Bytes),
    ContentLength(Bytes),
    TooManyHeaders(usize),
    HeadersTooLarge(usize),
    UriTooLong(usize),
}

/// The most request headers (`HTTP_*` variables) [`Environ::into_request`] accepts: 1024.
/// More is `431 Request Header Fields Too Large`.
pub const MAX_HEADERS: usize = 1024;

/// The most bytes of request headers (names and values of the `HTTP_*` variables) that
/// [`Environ::into_request`] accepts: 1 MiB. More is `431 Request Header Fields Too Large`.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// How many headers, and how many bytes of them, a request may have.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderLimits {
    pub(crate) count: usize,
    pub(crate) bytes: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits {
            count: MAX_HEADERS,
            bytes: MAX_HEADER_BYTES,
        }
    }
}

impl InvalidEnviron {
    /// Returns true when `REQUEST_METHOD` is missing or empty.
    pub fn is_missing_method(&self) -> bool {
        matches!(self.kind, Kind::MissingMethod)
    }

    /// Returns true when `CONTENT_LENGTH` is set but is not a decimal number of octets.
    pub fn is_content_length(&self) -> bool {
        matches!(self.kind, Kind::ContentLength(_))
    }

    /// Returns true when the request headers are over [`MAX_HEADERS`] or
    /// [`MAX_HEADER_BYTES`] (or the limits a caller set).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self.kind,
            Kind::TooManyHeaders(_) | Kind::HeadersTooLarge(_) | Kind::UriTooLong(_)
        )
    }

    /// The status a CGI program answers with: `400 Bad Request` for a malformed method or
    /// `CONTENT_LENGTH` (RFC 3875 §6.3.3), `431 Request Header Fields Too Large` for too many
    /// or too large headers, `414 URI Too Long` for a path and query that no URI can hold
    /// (RFC 9110 §15.5.15), `500 Internal Server Error` otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self.kind {
            Kind::MissingMethod => http::StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Method(_) | Kind::ContentLength(_) => http::StatusCode::BAD_REQUEST,
            Kind::TooManyHeaders(_) | Kind::HeadersTooLarge(_) => {
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Kind::UriTooLong(_) => http::StatusCode::URI_TOO_LONG,
        }
    }
}

impl fmt::Display for InvalidEnviron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingMethod => f.write_str("no REQUEST_METHOD in the environment"),
            Kind::Method(m) => write!(f, "invalid REQUEST_METHOD {:?}", String::from_utf8_lossy(m)),
            Kind::ContentLength(v) => {
                write!(f, "invalid CONTENT_LENGTH {:?}", String::from_utf8_lossy(v))
            }
            Kind::TooManyHeaders(n) => write!(f, "{n} request headers is more than allowed"),
            Kind::HeadersTooLarge(n) => {
                write!(f, "{n} bytes of request headers is more than allowed")
            }
            Kind::UriTooLong(n) => write!(
                f,
                "the request URI would be {n} bytes long, more than a URI can hold"
            ),
        }
    }
}

impl std::error::Error for InvalidEnviron {}

fn invalid(kind: Kind) -> InvalidEnviron {
    InvalidEnviron { kind }
}

/// Parses a `CONTENT_LENGTH` value: decimal digits only, surrounding blanks allowed.
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The HTTP version named by `SERVER_PROTOCOL` (RFC 3875 §4.1.16).
fn version(protocol: Option<&[u8]>) -> Version {
    let Some(protocol) = protocol else {
        return Version::HTTP_10;
    };
    match protocol.to_ascii_uppercase().as_slice() {
        b"HTTP/0.9" => Version::HTTP_09,
        b"HTTP/1.0" | b"INCLUDED" => Version::HTTP_10,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        b"HTTP/3" | b"HTTP/3.0" => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

/// `HTTP_FOO_BAR` → `foo-bar`, for the variables that are request headers.
fn header_name(key: &[u8]) -> Option<HeaderName> {
    let name = key.strip_prefix(b"HTTP_")?;
    // Available as CONTENT_TYPE / CONTENT_LENGTH only; HTTP_PROXY is the server's own
    // proxy setting, never a request header (httpoxy).
    if matches!(name, b"CONTENT_TYPE" | b"CONTENT_LENGTH" | b"PROXY") || name.is_empty() {
        return None;
    }
    let mut lower = [0u8; 64];
    let mut owned;
    let buf: &mut [u8] = if name.len() <= lower.len() {
        &mut lower[..name.len()]
    } else {
        owned = vec![0u8; name.len()];
        &mut owned
    };
    for (out, &b) in buf.iter_mut().zip(name) {
        *out = if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        };
    }
    HeaderName::from_bytes(buf).ok()
}

/// The raw (still encoded) form of `PATH_INFO`, taken from `REQUEST_URI`'s path when that
/// path decodes to `SCRIPT_NAME` + `PATH_INFO`.
fn raw_path_info<'a>(raw_path: &'a [u8], script: &[u8], info: &[u8]) -> Option<&'a [u8]> {
    if !percent::has_escape(raw_path) {
        return (raw_path.len() == script.len() + info.len()
            && raw_path.starts_with(script)
            && raw_path.ends_with(info))
        .then(|| &raw_path[script.len()..]);
    }
    // Walk the raw path one decoded byte at a time.
    let expected = script.iter().chain(info);
    let mut i = 0;
    let mut split = (script.is_empty()).then_some(0);
    for (n, &want) in expected.enumerate() {
        let (byte, width) = match percent::escape_at(raw_path, i) {
            Some(byte) => (byte, 3),
            None => (*raw_path.get(i)?, 1),
        };
        if byte != want {
            return None;
        }
        i += width;
        if n + 1 == script.len() {
            split = Some(i);
        }
    }
    if i != raw_path.len() {
        return None;
    }
    // The split must fall on a literal `/` (or the end): with `/app%2Fx` for `/app` +
    // `/x`, the raw form of `PATH_INFO` would lose its leading slash.
    let raw_info = &raw_path[split?..];
    (raw_info.is_empty() || raw_info.starts_with(b"/")).then_some(raw_info)
}

/// The raw path and query of a `REQUEST_URI`, which may be in absolute form
/// (`http://host/path?query`, scheme in any case).
fn split_request_uri(uri: &[u8]) -> (&[u8], &[u8]) {
    let (path, query) = match uri.iter().position(|&b| b == b'?') {
        Some(q) => (&uri[..q], &uri[q + 1..]),
        None => (uri, &b""[..]),
    };
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| path.len() >= s.len() && path[..s.len()].eq_ignore_ascii_case(s));
    if let Some(scheme) = scheme {
        let rest = &path[scheme.len()..];
        let path = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => &rest[slash..],
            None => b"/",
        };
        return (path, query);
    }
    (path, query)
}

/// Builds an origin-form URI from a path (raw, or decoded to be encoded) and a raw query.
/// Fails, with the length it would have, when `http` cannot hold it (64 KiB and more).
fn origin_uri(path: PathPart<'_>, query: &[u8]) -> Result<Uri, InvalidEnviron> {
    let mut target = Vec::with_capacity(16 + query.len());
    match path {
        PathPart::Raw(raw) => percent::encode_into(raw, Set::RawPath, &mut target),
        PathPart::Decoded(parts) => {
            for part in parts {
                percent::encode_into(part, Set::Path, &mut target);
            }
        }
    }
    if !target.starts_with(b"/") {
        target.insert(0, b'/');
    }
    if !query.is_empty() {
        target.push(b'?');
        percent::encode_into(query, Set::RawQuery, &mut target);
    }
    // Everything outside the URI alphabet was escaped above, so only the length can fail:
    // never answer for another path than the one asked for.
    let len = target.len();
    Uri::from_maybe_shared(Bytes::from(target)).map_err(|_| invalid(Kind::UriTooLong(len)))
}

enum PathPart<'a> {
    Raw(&'a [u8]),
    Decoded(&'a [&'a [u8]]),
}

impl Environ {
    /// Converts the meta-variables of a CGI request into an `http::Request` without a body
    /// (the body is the program's standard input, which the caller attaches).
    ///
    /// - method: `REQUEST_METHOD` (RFC 3875 §4.1.12); missing → an error for which
    ///   [`InvalidEnviron::is_missing_method`] is true;
    /// - version: `SERVER_PROTOCOL` (§4.1.16): `HTTP/1.0` and `INCLUDED` → 1.0, `HTTP/1.1` →
    ///   1.1, `HTTP/2`, `HTTP/2.0` → 2, `HTTP/3` → 3, `HTTP/0.9` → 0.9, missing → 1.0, any
    ///   other value → 1.1;
    /// - URI: the app-relative path, `PATH_INFO` (§4.1.5) plus `?QUERY_STRING` (§4.1.7;
    ///   when `QUERY_STRING` is not set at all, the query of `REQUEST_URI`, which some servers
    ///   set alone).
    ///   `PATH_INFO` is decoded; its raw form is recovered from `REQUEST_URI` (origin or
    ///   absolute form) when that path decodes to `SCRIPT_NAME` + `PATH_INFO` and the mount
    ///   point ends at a literal `/`, so `%2F` stays `%2F`; otherwise the decoded value is
    ///   percent-encoded. Raw bytes that `http` accepts are kept as the client sent them;
    ///   non-ASCII bytes, spaces and the like are percent-encoded. An empty `PATH_INFO` is
    ///   `/`. The full path, with the mount point, is the [`FullUri`] extension;
    /// - headers: each `HTTP_*` variable (§4.1.18), `HTTP_FOO_BAR` → `foo-bar`, values kept
    ///   byte for byte; `CONTENT_TYPE` and `CONTENT_LENGTH` (§4.1.2, §4.1.3) → the
    ///   `content-type` and `content-length` headers, never from `HTTP_CONTENT_*`.
    ///   `HTTP_PROXY` is never read as a `Proxy` header. A variable whose name or value
    ///   cannot be a header is skipped (and logged at debug level). A `CONTENT_LENGTH` that is
    ///   not a decimal number is an error ([`InvalidEnviron::status`] is 400); more than
    ///   [`MAX_HEADERS`] headers or [`MAX_HEADER_BYTES`] bytes of them is an error (431),
    ///   checked before anything is allocated, so no environment is too large to answer;
    ///   a path and query that no `http::Uri` can hold (64 KiB and more once encoded) is an
    ///   error (414), never another path;
    /// - extensions: [`ScriptName`], [`PathInfo`], [`RemoteAddr`], [`RemotePort`],
    ///   [`RemoteUser`], [`AuthType`], [`ServerName`], [`ServerPort`], [`RequestUri`] when
    ///   their variable is set, [`Https`] (`HTTPS` truthy: `on`, `1`, `yes`, any case),
    ///   [`FullUri`], and the environ itself.
    ///
    /// ```
    /// use towergate::Environ;
    /// use towergate::ext::FullUri;
    ///
    /// let request = Environ::from_vars([
    ///     ("REQUEST_METHOD", "GET"),
    ///     ("SCRIPT_NAME", "/app"),
    ///     ("PATH_INFO", "/a/b c"),
    ///     ("REQUEST_URI", "/app/a%2Fb%20c?x=1"),
    ///     ("QUERY_STRING", "x=1"),
    /// ])
    /// .into_request()
    /// .unwrap();
    /// assert_eq!(request.uri(), "/a%2Fb%20c?x=1");
    /// assert_eq!(request.extensions().get::<FullUri>().unwrap().0, "/app/a%2Fb%20c?x=1");
    ///
    /// let err = Environ::from_vars([("PATH_INFO", "/")]).into_request().unwrap_err();
    /// assert!(err.is_missing_method());
    /// ```
    pub fn into_request(self) -> Result<Request<()>, InvalidEnviron> {
        self.into_request_limited(HeaderLimits::default())
    }

    /// [`into_request`](Self::into_request) with the given header limits.
    pub(crate) fn into_request_limited(
        self,
        limits: HeaderLimits,
    ) -> Result<Request<()>, InvalidEnviron> {
        let known = Known::of(&self.vars);
        let method = match known.method.map(|m| &m[..]) {
            None | Some(b"") => return Err(invalid(Kind::MissingMethod)),
            Some(m) => Method::from_bytes(m)
                .map_err(|_| invalid(Kind::Method(Bytes::copy_from_slice(m))))?,
        };
        let version = version(known.protocol.map(|p| &p[..]));

        // Counted before anything is allocated: `HeaderMap` cannot hold more than 32768
        // entries, and a hostile environment may have any number of variables.
        let (count, bytes) = (known.headers, known.header_bytes);
        if count > limits.count {
            return Err(invalid(Kind::TooManyHeaders(count)));
        }
        if bytes > limits.bytes {
            return Err(invalid(Kind::HeadersTooLarge(bytes)));
        }
        let mut headers = HeaderMap::with_capacity(count + 2);
        for (key, value) in &self.vars {
            let Some(name) = header_name(key) else {
                continue;
            };
            // Shares the value's bytes (a refcount, or nothing for static bytes): no copy.
            match HeaderValue::from_maybe_shared(value.clone()) {
                Ok(value) => {
                    headers
                        .try_append(name, value)
                        .map_err(|_| invalid(Kind::TooManyHeaders(count)))?;
                }
                Err(_) => tracing::debug!(
                    variable = %String::from_utf8_lossy(key),
                    "skipping a meta-variable whose value cannot be a header value"
                ),
            }
        }
        if let Some(value) = known.content_type.filter(|v| !v.is_empty()) {
            if let Ok(value) = HeaderValue::from_maybe_shared(value.clone()) {
                headers.insert(CONTENT_TYPE, value);
            }
        }
        if let Some(value) = known.content_length.filter(|v| !v.trim_ascii().is_empty()) {
            let length = parse_content_length(value)
                .ok_or_else(|| invalid(Kind::ContentLength(value.clone())))?;
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }

        let script = known.script_name.map_or(&b""[..], |v| &v[..]);
        let info = known.path_info.map_or(&b""[..], |v| &v[..]);
        let request_uri = known.request_uri.filter(|u| !u.is_empty()).map(|u| &u[..]);
        // A server that sets `REQUEST_URI` but no `QUERY_STRING` (RFC 3875 §4.1.7 makes it
        // required; some leave it out when empty) still passed the query in the URI.
        let query = match known.query_string {
            Some(query) => &query[..],
            None => request_uri.map_or(&b""[..], |u| split_request_uri(u).1),
        };
        let raw_info =
            request_uri.and_then(|u| raw_path_info(split_request_uri(u).0, script, info));
        let uri = match raw_info {
            Some(raw) => origin_uri(PathPart::Raw(raw), query)?,
            None => origin_uri(PathPart::Decoded(&[info]), query)?,
        };
        // Escaped the same way as the app-relative URI, so both modes route alike.
        let full_uri = match request_uri.map(split_request_uri) {
            Some((path, query)) => origin_uri(PathPart::Raw(path), query)?,
            None => origin_uri(PathPart::Decoded(&[script, info]), query)?,
        };

        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let extensions = request.extensions_mut();
        extensions.insert(ScriptName::new(
            known.script_name.cloned().unwrap_or_default(),
        ));
        extensions.insert(PathInfo::new(known.path_info.cloned().unwrap_or_default()));
        if let Some(v) = known.remote_addr {
            extensions.insert(RemoteAddr::new(v.clone()));
        }
        if let Some(port) = known.remote_port.and_then(parse_port) {
            extensions.insert(RemotePort(port));
        }
        if let Some(v) = known.remote_user {
            extensions.insert(RemoteUser::new(v.clone()));
        }
        if let Some(v) = known.auth_type {
            extensions.insert(AuthType::new(v.clone()));
        }
        if let Some(v) = known.server_name {
            extensions.insert(ServerName::new(v.clone()));
        }
        if let Some(port) = known.server_port.and_then(parse_port) {
            extensions.insert(ServerPort(port));
        }
        if let Some(v) = known.request_uri {
            extensions.insert(RequestUri::new(v.clone()));
        }
        extensions.insert(Https(known.https.is_some_and(|v| is_truthy(v))));
        extensions.insert(FullUri(full_uri));
        extensions.insert(self);
        Ok(request)
    }
}

/// A port number, blanks around it allowed.
fn parse_port(value: &Bytes) -> Option<u16> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The meta-variables [`Environ::into_request`] reads, found in one pass over the
/// environ (a lookup for each would scan it a dozen times), with the count and size of the
/// `HTTP_*` ones.
#[derive(Default)]
struct Known<'a> {
    method: Option<&'a Bytes>,
    protocol: Option<&'a Bytes>,
    content_type: Option<&'a Bytes>,
    content_length: Option<&'a Bytes>,
    script_name: Option<&'a Bytes>,
    path_info: Option<&'a Bytes>,
    request_uri: Option<&'a Bytes>,
    query_string: Option<&'a Bytes>,
    remote_addr: Option<&'a Bytes>,
    remote_port: Option<&'a Bytes>,
    remote_user: Option<&'a Bytes>,
    auth_type: Option<&'a Bytes>,
    server_name: Option<&'a Bytes>,
    server_port: Option<&'a Bytes>,
    https: Option<&'a Bytes>,
    headers: usize,
    header_bytes: usize,
}

impl<'a> Known<'a> {
    fn of(vars: &'a [(Bytes, Bytes)]) -> Self {
        let mut known = Known::default();
        for (key, value) in vars {
            let slot = match &key[..] {
                b"REQUEST_METHOD" => &mut known.method,
                b"SERVER_PROTOCOL" => &mut known.protocol,
                b"CONTENT_TYPE" => &mut known.content_type,
                b"CONTENT_LENGTH" => &mut known.content_length,
                b"SCRIPT_NAME" => &mut known.script_name,
                b"PATH_INFO" => &mut known.path_info,
                b"REQUEST_URI" => &mut known.request_uri,
                b"QUERY_STRING" => &mut known.query_string,
                b"REMOTE_ADDR" => &mut known.remote_addr,
                b"REMOTE_PORT" => &mut known.remote_port,
                b"REMOTE_USER" => &mut known.remote_user,
                b"AUTH_TYPE" => &mut known.auth_type,
                b"SERVER_NAME" => &mut known.server_name,
                b"SERVER_PORT" => &mut known.server_port,
                b"HTTPS" => &mut known.https,
                name if name.starts_with(b"HTTP_") => {
                    known.headers += 1;
                    known.header_bytes = known
                        .header_bytes
                        .saturating_add(name.len() - 5 + value.len());
                    continue;
                }
                _ => continue,
            };
            // The first of a repeated name, as `Environ::get` finds it.
            slot.get_or_insert(value);
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::RequestExt;

    fn req(vars: &[(&str, &[u8])]) -> Request<()> {
        let mut all: Vec<(&str, &[u8])> = vec![("REQUEST_METHOD", b"GET")];
        all.extend_from_slice(vars);
        Environ::from_vars(
            all.into_iter()
                .map(|(k, v)| (k.to_owned(), Bytes::copy_from_slice(v))),
        )
        .into_request()
        .unwrap()
    }

    #[test]
    fn the_query_comes_from_request_uri_only_when_query_string_is_unset() {
        let request = req(&[("PATH_INFO", b"/a"), ("REQUEST_URI", b"/app/a?x=1&y")]);
        assert_eq!(request.uri(), "/a?x=1&y");
        let request = req(&[
            ("PATH_INFO", b"/a"),
            ("QUERY_STRING", b""),
            ("REQUEST_URI", b"/app/a?x=1"),
        ]);
        assert_eq!(request.uri(), "/a");
    }

    #[test]
    fn too_many_or_too_large_headers_are_431() {
        let many: Vec<(String, Bytes)> = (0..=MAX_HEADERS)
            .map(|i| (format!("HTTP_X_{i}"), Bytes::from_static(b"v")))
            .chain([("REQUEST_METHOD".to_owned(), Bytes::from_static(b"GET"))])
            .collect();
        let err = Environ::from_vars(many).into_request().unwrap_err();
        assert_eq!(
            err.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(err.is_too_large());
        assert_eq!(err.to_string(), "1025 request headers is more than allowed");

        let big = Bytes::from(vec![b'a'; MAX_HEADER_BYTES]);
        let err = error(&[("REQUEST_METHOD", b"GET"), ("HTTP_X_BIG", &big)]);
        assert_eq!(
            err.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} bytes of request headers is more than allowed",
                MAX_HEADER_BYTES + 5
            )
        );
    }

    #[test]
    fn a_uri_over_64_kib_is_414_not_the_root() {
        let long = vec![b'a'; 70_000];
        let path: Vec<u8> = [&b"/"[..], &long].concat();
        let err = error(&[("REQUEST_METHOD", b"GET"), ("PATH_INFO", &path)]);
        assert_eq!(err.status(), http::StatusCode::URI_TOO_LONG);
        assert_eq!(
            err.to_string(),
            "the request URI would be 70001 bytes long, more than a URI can hold"
        );
    }

    fn error(vars: &[(&str, &[u8])]) -> InvalidEnviron {
        Environ::from_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v))),
        )
        .into_request()
        .unwrap_err()
    }

    #[test]
    fn every_meta_variable_is_read_back() {
        let request = req(&[
            ("REQUEST_METHOD", b"PATCH"),
            ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ("SCRIPT_NAME", b"/cgi-bin/app"),
            ("PATH_INFO", b"/items/7"),
            ("QUERY_STRING", b"a=1&b=%20"),
            ("REQUEST_URI", b"/cgi-bin/app/items/7?a=1&b=%20"),
            ("CONTENT_TYPE", b"application/json"),
            ("CONTENT_LENGTH", b"17"),
            ("REMOTE_ADDR", b"192.0.2.1"),
            ("REMOTE_PORT", b"50000"),
            ("REMOTE_USER", b"alice"),
            ("AUTH_TYPE", b"Basic"),
            ("SERVER_NAME", b"example.com"),
            ("SERVER_PORT", b"8443"),
            ("HTTPS", b"on"),
            ("HTTP_HOST", b"example.com:8443"),
            ("HTTP_X_FORWARDED_FOR", b"198.51.100.1"),
            ("GATEWAY_INTERFACE", b"CGI/1.1"),
            ("SERVER_SOFTWARE", b"test"),
        ]);
        assert_eq!(request.method(), "PATCH");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.uri(), "/items/7?a=1&b=%20");
        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(
            headers,
            [
                ("host", &b"example.com:8443"[..]),
                ("x-forwarded-for", b"198.51.100.1"),
                ("content-type", b"application/json"),
                ("content-length", b"17"),
            ]
        );
        assert_eq!(request.script_name(), "/cgi-bin/app");
        assert_eq!(request.path_info(), "/items/7");
        assert_eq!(
            request.remote_addr().and_then(|a| a.ip()),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(request.remote_port(), Some(50000));
        assert_eq!(request.remote_user().unwrap(), "alice");
        assert_eq!(request.auth_type().unwrap(), "Basic");
        assert_eq!(request.server_name().unwrap(), "example.com");
        assert_eq!(request.server_port(), Some(8443));
        assert!(request.is_https());
        assert_eq!(
            request.extensions().get::<RequestUri>().unwrap(),
            "/cgi-bin/app/items/7?a=1&b=%20"
        );
        assert_eq!(
            request.extensions().get::<FullUri>().unwrap().0,
            "/cgi-bin/app/items/7?a=1&b=%20"
        );
        assert_eq!(
            request
                .environ()
                .and_then(|e| e.get_str("GATEWAY_INTERFACE")),
            Some("CGI/1.1")
        );
    }

    #[test]
    fn https_is_truthy_for_on_1_and_yes_in_any_case() {
        for value in ["on", "ON", "On", "1", "yes", "YES", "Yes"] {
            assert!(req(&[("HTTPS", value.as_bytes())]).is_https(), "{value}");
        }
        for value in ["off", "0", "no", "", "true", " on", "2"] {
            assert!(!req(&[("HTTPS", value.as_bytes())]).is_https(), "{value}");
        }
        assert!(!req(&[]).is_https());
    }

    #[test]
    fn server_protocol_gives_the_version_and_included_is_http_10() {
        for (protocol, version) in [
            (&b"HTTP/0.9"[..], Version::HTTP_09),
            (b"HTTP/1.0", Version::HTTP_10),
            (b"http/1.0", Version::HTTP_10),
            (b"INCLUDED", Version::HTTP_10),
            (b"HTTP/1.1", Version::HTTP_11),
            (b"HTTP/2", Version::HTTP_2),
            (b"HTTP/2.0", Version::HTTP_2),
            (b"HTTP/3", Version::HTTP_3),
            (b"HTTP/3.0", Version::HTTP_3),
            (b"EXTENSION/9", Version::HTTP_11),
            (b"\xff", Version::HTTP_11),
        ] {
            let request = req(&[("SERVER_PROTOCOL", protocol)]);
            assert_eq!(request.version(), version, "{protocol:?}");
        }
        assert_eq!(req(&[]).version(), Version::HTTP_10);
    }

    #[test]
    fn http_variables_become_headers_but_content_and_proxy_do_not() {
        let request = req(&[
            ("HTTP_USER_AGENT", b"test/1"),
            ("HTTP_ACCEPT_LANGUAGE", b"en, fr"),
            ("HTTP_CONTENT_TYPE", b"text/evil"),
            ("HTTP_CONTENT_LENGTH", b"999"),
            ("HTTP_PROXY", b"http://evil.example"),
            ("HTTP_", b"nameless"),
            ("CONTENT_TYPE", b"text/plain"),
            ("SERVER_NAME", b"not-a-header"),
        ]);
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("user-agent", "test/1"),
                ("accept-language", "en, fr"),
                ("content-type", "text/plain"),
            ]
        );
    }

    #[test]
    fn an_empty_content_type_is_no_header() {
        let request = req(&[("CONTENT_TYPE", b""), ("CONTENT_LENGTH", b"")]);
        assert!(request.headers().is_empty());
    }

    #[test]
    fn content_length_may_have_blanks_around_it() {
        let request = req(&[("CONTENT_LENGTH", b" 12 ")]);
        assert_eq!(request.headers()["content-length"], "12");
        let request = req(&[("CONTENT_LENGTH", b"   ")]);
        assert!(request.headers().get("content-length").is_none());
    }

    #[test]
    fn a_bad_content_length_is_a_400_error() {
        for value in [&b"abc"[..], b"-1", b"+1", b"1.5", b"1 2", b"0x10", b"\xff"] {
            let err = error(&[("REQUEST_METHOD", b"POST"), ("CONTENT_LENGTH", value)]);
            assert!(err.is_content_length(), "{value:?}");
            assert!(!err.is_missing_method());
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
        let err = error(&[
            ("REQUEST_METHOD", b"POST"),
            ("CONTENT_LENGTH", b"99999999999999999999999"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid CONTENT_LENGTH \"99999999999999999999999\""
        );
    }

    #[test]
    fn a_missing_or_empty_request_method_is_missing_method() {
        let err = error(&[("PATH_INFO", b"/")]);
        assert!(err.is_missing_method());
        assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.to_string(), "no REQUEST_METHOD in the environment");
        assert!(error(&[("REQUEST_METHOD", b"")]).is_missing_method());
    }

    #[test]
    fn an_invalid_request_method_is_a_400_error() {
        for method in [&b"G T"[..], b"\xff", b"GET\n"] {
            let err = error(&[("REQUEST_METHOD", method)]);
            assert!(!err.is_missing_method());
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
        let request = req(&[("REQUEST_METHOD", b"PROPFIND")]);
        assert_eq!(request.method(), "PROPFIND");
    }

    #[test]
    fn invalid_header_values_and_names_are_skipped() {
        let request = req(&[
            ("HTTP_X_GOOD", b"fine"),
            ("HTTP_X_NEWLINE", b"a\nb"),
            ("HTTP_X_NUL", b"a\0b"),
            ("HTTP_X SPACE", b"v"),
            ("HTTP_X_HIGH", b"\xfe\xff"),
            ("CONTENT_TYPE", b"text/\x01"),
        ]);
        let names: Vec<&str> = request.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-good", "x-high"]);
        assert_eq!(request.headers()["x-high"].as_bytes(), b"\xfe\xff");
    }

    #[test]
    fn a_missing_remote_port_gives_no_extension() {
        let request = req(&[("REMOTE_ADDR", b"192.0.2.1")]);
        assert_eq!(request.remote_port(), None);
        assert!(request.remote_addr().is_some());
        let request = req(&[("REMOTE_PORT", b"not-a-port")]);
        assert_eq!(request.remote_port(), None);
        let request = req(&[("REMOTE_PORT", b"70000")]);
        assert_eq!(request.remote_port(), None);
    }

    #[test]
    fn ipv6_addresses_are_kept_as_given() {
        let request = req(&[
            ("REMOTE_ADDR", b"2001:db8::7"),
            ("SERVER_NAME", b"[2001:db8::1]"),
        ]);
        assert_eq!(
            request.remote_addr().and_then(|a| a.ip()),
            Some("2001:db8::7".parse().unwrap())
        );
        assert_eq!(request.server_name().unwrap(), "[2001:db8::1]");
    }

    #[test]
    fn an_empty_path_info_is_the_root() {
        assert_eq!(req(&[]).uri(), "/");
        assert_eq!(req(&[("PATH_INFO", b"")]).uri(), "/");
        assert_eq!(
            req(&[("PATH_INFO", b""), ("QUERY_STRING", b"x")]).uri(),
            "/?x"
        );
        // A PATH_INFO without its leading slash still gives an origin-form URI.
        assert_eq!(req(&[("PATH_INFO", b"a/b")]).uri(), "/a/b");
    }

    #[test]
    fn path_info_is_percent_encoded_without_a_request_uri() {
        let request = req(&[
            ("SCRIPT_NAME", b"/app"),
            ("PATH_INFO", b"/a b/%/?/#/\xc3\xa9;x=1"),
        ]);
        assert_eq!(request.uri(), "/a%20b/%25/%3F/%23/%C3%A9;x=1");
        assert_eq!(
            request.extensions().get::<FullUri>().unwrap().0,
            "/app/a%20b/%25/%3F/%23/%C3%A9;x=1"
        );
    }

    #[test]
    fn the_raw_path_info_is_recovered_from_request_uri_so_an_encoded_slash_survives() {
        let request = req(&[
            ("SCRIPT_NAME", b"/cgi-bin/app"),
            ("PATH_INFO", b"/files/a/b c"),
            ("QUERY_STRING", b"x=%2F"),
            ("REQUEST_URI", b"/cgi-bin/app/files/a%2Fb%20c?x=%2F"),
        ]);
        assert_eq!(request.uri(), "/files/a%2Fb%20c?x=%2F");
        assert_eq!(request.path_info(), "/files/a/b c");
    }

    #[test]
    fn the_raw_path_info_is_recovered_when_the_script_name_is_encoded_too() {
        let request = req(&[
            ("SCRIPT_NAME", b"/my app"),
            ("PATH_INFO", b"/x/y"),
            ("REQUEST_URI", b"/my%20app/x%2fy"),
        ]);
        assert_eq!(request.uri(), "/x%2fy");
        let request = req(&[
            ("SCRIPT_NAME", &b""[..]),
            ("PATH_INFO", b"/x/y"),
            ("REQUEST_URI", b"/x%2Fy"),
        ]);
        assert_eq!(request.uri(), "/x%2Fy");
    }

    #[test]
    fn a_request_uri_that_does_not_match_falls_back_to_path_info() {
        for request_uri in [
            &b"/rewritten/elsewhere?x=1"[..],
            b"/cgi-bin/app/a/b/extra",
            b"/cgi-bin/ap",
            b"/cgi-bin/app%2Fa/b",
            b"\xff\xfe",
            b"",
        ] {
            let request = req(&[
                ("SCRIPT_NAME", b"/cgi-bin/app"),
                ("PATH_INFO", b"/a/b"),
                ("QUERY_STRING", b"x=1"),
                ("REQUEST_URI", request_uri),
            ]);
            assert_eq!(request.uri(), "/a/b?x=1", "{request_uri:?}");
        }
    }

    #[test]
    fn an_absolute_form_request_uri_is_read_for_its_path() {
        let request = req(&[
            ("SCRIPT_NAME", b"/app"),
            ("PATH_INFO", b"/a/b"),
            ("QUERY_STRING", b"q=1"),
            ("REQUEST_URI", b"http://example.com:8080/app/a%2Fb?q=1"),
        ]);
        assert_eq!(request.uri(), "/a%2Fb?q=1");
        assert_eq!(
            request.extensions().get::<FullUri>().unwrap().0,
            "/app/a%2Fb?q=1"
        );
        let request = req(&[
            ("PATH_INFO", &b"/"[..]),
            ("REQUEST_URI", b"https://example.com"),
        ]);
        assert_eq!(request.uri(), "/");
    }

    #[test]
    fn non_utf8_values_never_panic() {
        let request = req(&[
            ("SCRIPT_NAME", b"/\xfe"),
            ("PATH_INFO", b"/\xff/x"),
            ("QUERY_STRING", b"a=\xff&b= c"),
            ("REQUEST_URI", b"/\xfe/\xff/x?a=\xff&b= c"),
            ("SERVER_NAME", b"\xff"),
            ("SERVER_PORT", b"\xff"),
            ("REMOTE_ADDR", b"\xff"),
            ("REMOTE_PORT", b"\xff"),
            ("REMOTE_USER", b"\xff"),
            ("AUTH_TYPE", b"\xff"),
            ("HTTPS", b"\xff"),
            ("HTTP_X", b"\xfe"),
            ("CONTENT_TYPE", b"text/\xff"),
        ]);
        assert_eq!(request.uri(), "/%FF/x?a=%FF&b=%20c");
        assert_eq!(request.script_name(), "");
        assert_eq!(request.path_info(), "");
        assert_eq!(
            request.extensions().get::<PathInfo>().unwrap().as_bytes(),
            b"/\xff/x"
        );
        assert_eq!(request.server_port(), None);
        assert_eq!(request.remote_addr().and_then(|a| a.ip()), None);
        assert!(!request.is_https());
        assert_eq!(request.headers()["x"].as_bytes(), b"\xfe");
        assert_eq!(request.headers()["content-type"].as_bytes(), b"text/\xff");
        assert_eq!(
            request.extensions().get::<FullUri>().unwrap().0,
            "/%FE/%FF/x?a=%FF&b=%20c"
        );
    }

    #[test]
    fn raw_query_characters_that_http_accepts_are_kept() {
        let request = req(&[("PATH_INFO", &b"/"[..]), ("QUERY_STRING", b"a={}|^`&b=[]")]);
        assert_eq!(request.uri().query(), Some("a={}|^`&b=[]"));
    }
}
