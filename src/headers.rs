//! Header helpers shared by every transport: hop-by-hop names and the encoding of a response
//! head as a CGI header block (RFC 3875 §6) or a full HTTP status line (NPH, RFC 3875 §5).

use std::fmt;
use std::io::Write as _;

use http::{HeaderMap, StatusCode};

/// Returns true for the hop-by-hop header names, which apps and CGI programs must not send
/// (PEP 3333 "Other HTTP Features", RFC 3875 §6.3.4): `Connection`, `Keep-Alive`,
/// `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailers`, `Transfer-Encoding` and
/// `Upgrade`, in any case (`wsgiref.util.is_hop_by_hop`).
///
/// ```
/// use towergate::headers::is_hop_by_hop;
///
/// assert!(is_hop_by_hop("Connection"));
/// assert!(is_hop_by_hop("transfer-encoding"));
/// assert!(!is_hop_by_hop("Trailer"));
/// assert!(!is_hop_by_hop("Content-Type"));
/// ```
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP_BY_HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ];
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// How a response head is written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HeadStyle<'a> {
    /// A CGI header block: `Status: NNN Reason` first (RFC 3875 §6.3.3).
    Cgi,
    /// No head at all: the body alone (an origin server answering an `HTTP/0.9` client).
    Bare,
    /// A full HTTP response head (origin server / NPH): `HTTP/x.y NNN Reason`, then `Date`
    /// and `Server` unless the headers have them, and `Connection: close` for an `HTTP/1.1`
    /// body whose end only the closed connection can mark (no `Content-Length`).
    Origin {
        /// `1.0` or `1.1`.
        http_version: &'a str,
        /// The `Server` value; none when empty.
        server_software: &'a [u8],
    },
}

/// A header value that would split the head: it holds CR, LF or NUL.
#[derive(Debug)]
pub(crate) struct UnsafeHeader(pub(crate) http::HeaderName);

impl fmt::Display for UnsafeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "header {:?} has a value with CR, LF or NUL in it",
            self.0.as_str()
        )
    }
}

impl std::error::Error for UnsafeHeader {}

/// Appends the response head (status line, headers, blank line) to `out`.
///
/// `reason` overrides the canonical reason phrase. Header values with CR, LF or NUL are
/// refused: `http` does not let safe code build them, but an unchecked constructor can.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    style: HeadStyle<'_>,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
) -> Result<(), UnsafeHeader> {
    for (name, value) in headers {
        if value
            .as_bytes()
            .iter()
            .any(|&b| matches!(b, b'\r' | b'\n' | 0))
        {
            return Err(UnsafeHeader(name.clone()));
        }
    }
    let reason = reason.or_else(|| status.canonical_reason().map(str::as_bytes));
    match style {
        HeadStyle::Bare => return Ok(()),
        HeadStyle::Cgi => out.extend_from_slice(b"Status: "),
        HeadStyle::Origin { http_version, .. } => {
            out.extend_from_slice(b"HTTP/");
            out.extend_from_slice(http_version.as_bytes());
            out.push(b' ');
        }
    }
    out.extend_from_slice(status.as_str().as_bytes());
    if let Some(reason) = reason {
        out.push(b' ');
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    if let HeadStyle::Origin {
        server_software,
        http_version,
    } = style
    {
        if !headers.contains_key(http::header::DATE) {
            out.extend_from_slice(b"Date: ");
            // Written in place: no `String` per response.
            let _ = write!(
                out,
                "{}",
                httpdate::HttpDate::from(std::time::SystemTime::now())
            );
            out.extend_from_slice(b"\r\n");
        }
        if !server_software.is_empty() && !headers.contains_key(http::header::SERVER) {
            out.extend_from_slice(b"Server: ");
            out.extend_from_slice(server_software);
            out.extend_from_slice(b"\r\n");
        }
        if http_version == "1.1"
            && !status_forbids_body(status)
            && !headers.contains_key(http::header::CONTENT_LENGTH)
            && !headers.contains_key(http::header::CONNECTION)
        {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    }
    for (name, value) in headers {
        push_canonical(out, name.as_str());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Returns true when a response with this status has no body (RFC 9110 §6.4.1: 1xx, 204,
/// 304).
pub(crate) fn status_forbids_body(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// `content-type` → `Content-Type`: the conventional spelling on the wire, which some CGI
/// servers compare case-sensitively.
#[cfg(test)]
fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    let mut out = Vec::with_capacity(name.len());
    push_canonical(&mut out, name);
    match String::from_utf8(out) {
        Ok(text) if text == name => std::borrow::Cow::Borrowed(name),
        Ok(text) => std::borrow::Cow::Owned(text),
        Err(_) => std::borrow::Cow::Borrowed(name),
    }
}

/// Appends `name` with each word capitalised (`Content-Type`), without an allocation.
fn push_canonical(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    out.extend(name.bytes().map(|b| {
        let b = if upper { b.to_ascii_uppercase() } else { b };
        upper = b == b'-';
        b
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_head_has_one_reason_and_repeated_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.append("set-cookie", "a=1".parse().unwrap());
        headers.append("set-cookie", "b=2".parse().unwrap());
        let mut out = Vec::new();
        encode_head(
            &mut out,
            HeadStyle::Cgi,
            StatusCode::NOT_FOUND,
            None,
            &headers,
        )
        .unwrap();
        assert_eq!(
            out,
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        );
    }

    #[test]
    fn unknown_status_has_no_reason() {
        let mut out = Vec::new();
        let status = StatusCode::from_u16(599).unwrap();
        encode_head(&mut out, HeadStyle::Cgi, status, None, &HeaderMap::new()).unwrap();
        assert_eq!(out, b"Status: 599\r\n\r\n");
    }

    #[test]
    fn origin_head_adds_date_and_server() {
        let mut out = Vec::new();
        let style = HeadStyle::Origin {
            http_version: "1.1",
            server_software: b"towergate/0",
        };
        encode_head(
            &mut out,
            style,
            StatusCode::OK,
            Some(b"Fine"),
            &HeaderMap::new(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 Fine\r\nDate: "), "{text}");
        assert!(
            text.ends_with(" GMT\r\nServer: towergate/0\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn values_with_line_breaks_cannot_be_built_safely() {
        assert!(http::HeaderValue::from_bytes(b"a\r\nSet-Cookie: x=1").is_err());
        assert!(http::HeaderValue::from_bytes(b"a\nb").is_err());
    }

    #[test]
    fn names_are_written_in_canonical_case() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-a-b"), "X-A-B");
        assert_eq!(canonical("Etag"), "Etag");
    }
}
