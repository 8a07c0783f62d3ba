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

    /// The status a CGI program answers with: `400 Bad Request` for a malformed method or
    /// `CONTENT_LENGTH` (RFC 3875 §6.3.3), `500 Internal Server Error` otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self.kind {
            Kind::MissingMethod => http::StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Method(_) | Kind::ContentLength(_) => http::StatusCode::BAD_REQUEST,
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
    Some(&raw_path[split?..])
}

/// The path part of a `REQUEST_URI`, which may be in absolute form.
fn request_uri_path(uri: &[u8]) -> &[u8] {
    let uri = match uri.iter().position(|&b| b == b'?') {
        Some(q) => &uri[..q],
        None => uri,
    };
    if let Some(rest) = uri
        .strip_prefix(b"http://")
        .or_else(|| uri.strip_prefix(b"https://"))
    {
        return match rest.iter().position(|&b| b == b'/') {
            Some(slash) => &rest[slash..],
            None => b"/",
        };
    }
    uri
}

/// Builds an origin-form URI from a path (raw, or decoded to be encoded) and a raw query.
fn origin_uri(path: PathPart<'_>, query: &[u8]) -> Uri {
    let mut target = Vec::with_capacity(16 + query.len());
    match path {
        PathPart::Raw(raw) => percent::encode_into(raw, Set::Raw, &mut target),
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
        percent::encode_into(query, Set::Raw, &mut target);
    }
    // Everything outside the URI alphabet was escaped above, so this parses; fall back to
    // `/` rather than fail on a case we did not foresee.
    Uri::from_maybe_shared(Bytes::from(target)).unwrap_or_else(|_| Uri::from_static("/"))
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
    /// - URI: the app-relative path, `PATH_INFO` (§4.1.5) plus `?QUERY_STRING` (§4.1.7).
    ///   `PATH_INFO` is decoded; its raw form is recovered from `REQUEST_URI` when that decodes
    ///   to `SCRIPT_NAME` + `PATH_INFO`, so `%2F` stays `%2F`; otherwise it is
    ///   percent-encoded. An empty `PATH_INFO` is `/`. The full path, with the mount point, is
    ///   the [`FullUri`] extension;
    /// - headers: each `HTTP_*` variable (§4.1.18), `HTTP_FOO_BAR` → `foo-bar`, values kept
    ///   byte for byte; `CONTENT_TYPE` and `CONTENT_LENGTH` (§4.1.2, §4.1.3) → the
    ///   `content-type` and `content-length` headers, never from `HTTP_CONTENT_*`.
    ///   `HTTP_PROXY` is never read as a `Proxy` header. A variable whose name or value
    ///   cannot be a header is skipped (and logged at debug level). A `CONTENT_LENGTH` that is
    ///   not a decimal number is an error ([`InvalidEnviron::status`] is 400);
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
        let method = match self.get("REQUEST_METHOD") {
            None | Some(b"") => return Err(invalid(Kind::MissingMethod)),
            Some(m) => Method::from_bytes(m)
                .map_err(|_| invalid(Kind::Method(Bytes::copy_from_slice(m))))?,
        };
        let version = version(self.get("SERVER_PROTOCOL"));

        let mut headers = HeaderMap::with_capacity(self.len());
        for (key, value) in self.iter() {
            let Some(name) = header_name(key) else {
                continue;
            };
            match HeaderValue::from_bytes(value) {
                Ok(value) => {
                    headers.append(name, value);
                }
                Err(_) => tracing::debug!(
                    variable = %String::from_utf8_lossy(key),
                    "skipping a meta-variable whose value cannot be a header value"
                ),
            }
        }
        if let Some(value) = self.get("CONTENT_TYPE").filter(|v| !v.is_empty()) {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(CONTENT_TYPE, value);
            }
        }
        if let Some(value) = self
            .get("CONTENT_LENGTH")
            .filter(|v| !v.trim_ascii().is_empty())
        {
            let length = parse_content_length(value)
                .ok_or_else(|| invalid(Kind::ContentLength(Bytes::copy_from_slice(value))))?;
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }

        let script = self.get("SCRIPT_NAME").unwrap_or_default();
        let info = self.get("PATH_INFO").unwrap_or_default();
        let query = self.get("QUERY_STRING").unwrap_or_default();
        let request_uri = self.get("REQUEST_URI").filter(|u| !u.is_empty());
        let raw_info = request_uri.and_then(|u| raw_path_info(request_uri_path(u), script, info));
        let uri = match raw_info {
            Some(raw) => origin_uri(PathPart::Raw(raw), query),
            None => origin_uri(PathPart::Decoded(&[info]), query),
        };
        let full_uri = match request_uri.map(|u| Uri::from_maybe_shared(Bytes::copy_from_slice(u)))
        {
            Some(Ok(full)) if full.scheme().is_none() => full,
            Some(Ok(full)) => full
                .path_and_query()
                .map(|pq| Uri::from(pq.clone()))
                .unwrap_or_else(|| Uri::from_static("/")),
            _ => origin_uri(PathPart::Decoded(&[script, info]), query),
        };

        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let extensions = request.extensions_mut();
        extensions.insert(ScriptName::new(
            self.get_bytes("SCRIPT_NAME").unwrap_or_default(),
        ));
        extensions.insert(PathInfo::new(
            self.get_bytes("PATH_INFO").unwrap_or_default(),
        ));
        if let Some(v) = self.get_bytes("REMOTE_ADDR") {
            extensions.insert(RemoteAddr::new(v));
        }
        if let Some(port) = self
            .get_str("REMOTE_PORT")
            .and_then(|p| p.trim().parse().ok())
        {
            extensions.insert(RemotePort(port));
        }
        if let Some(v) = self.get_bytes("REMOTE_USER") {
            extensions.insert(RemoteUser::new(v));
        }
        if let Some(v) = self.get_bytes("AUTH_TYPE") {
            extensions.insert(AuthType::new(v));
        }
        if let Some(v) = self.get_bytes("SERVER_NAME") {
            extensions.insert(ServerName::new(v));
        }
        if let Some(port) = self
            .get_str("SERVER_PORT")
            .and_then(|p| p.trim().parse().ok())
        {
            extensions.insert(ServerPort(port));
        }
        if let Some(v) = self.get_bytes("REQUEST_URI") {
            extensions.insert(RequestUri::new(v));
        }
        extensions.insert(Https(self.get("HTTPS").is_some_and(is_truthy)));
        extensions.insert(FullUri(full_uri));
        extensions.insert(self);
        Ok(request)
    }
}
