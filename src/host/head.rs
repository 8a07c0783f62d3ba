//! Parsing a program's response head: the CGI header block (RFC 3875 §6) or, for an NPH
//! program, an HTTP status line and header block (RFC 3875 §5).

use std::fmt;

use bytes::Bytes;
use http::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION, TRANSFER_ENCODING,
};
use http::{HeaderMap, StatusCode};

pub(crate) use super::options::Limits;
use crate::headers::is_hop_by_hop;

/// Why a program's output is not a valid response head. Each becomes a 502 and a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadError {
    NoOutput,
    Unterminated,
    LineTooLong(usize),
    HeadTooLarge(usize),
    TooManyFields(usize),
    NoFields,
    Bogus(String),
    Continuation,
    BadName(String),
    BadValue(String),
    BadStatus(String),
    Repeated(&'static str),
    NoContentType,
    BadStatusLine(String),
    TransferEncoding,
    BadContentLength(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::NoOutput => f.write_str("the program produced no output"),
            HeadError::Unterminated => {
                f.write_str("the output ended before the blank line that ends the header block")
            }
            HeadError::LineTooLong(max) => {
                write!(f, "a header line is longer than the limit of {max} bytes")
            }
            HeadError::HeadTooLarge(max) => {
                write!(
                    f,
                    "the header block is larger than the limit of {max} bytes"
                )
            }
            HeadError::TooManyFields(max) => {
                write!(
                    f,
                    "the header block has more than the limit of {max} fields"
                )
            }
            HeadError::NoFields => f.write_str("the header block is empty (RFC 3875 §6.3)"),
            HeadError::Bogus(line) => write!(f, "a header line has no colon: {line:?}"),
            HeadError::Continuation => {
                f.write_str("a header line is a continuation line (RFC 3875 §6.3)")
            }
            HeadError::BadName(name) => write!(f, "invalid header name {name:?}"),
            HeadError::BadValue(name) => write!(f, "invalid value for header {name:?}"),
            HeadError::BadStatus(value) => {
                write!(
                    f,
                    "bad Status {value:?} (want `NNN reason`, RFC 3875 §6.3.3)"
                )
            }
            HeadError::Repeated(name) => {
                write!(f, "the {name} field appears twice (RFC 3875 §6.3)")
            }
            HeadError::NoContentType => {
                f.write_str("no Content-Type, Status or Location field (RFC 3875 §6.2.1, §6.3.1)")
            }
            HeadError::BadStatusLine(line) => {
                write!(
                    f,
                    "an NPH program's status line is not `HTTP/x.y NNN reason`: {line:?}"
                )
            }
            HeadError::TransferEncoding => f.write_str(
                "the response has a Transfer-Encoding field: the host does not decode a \
                 program's framing, and will not pass it off as body bytes",
            ),
            HeadError::BadContentLength(value) => {
                write!(
                    f,
                    "invalid or conflicting Content-Length {value:?} (RFC 9110 §8.6)"
                )
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Where the end of the head is in `buf`: the index just past the blank line, or `None` when
/// more output is needed. Checks the limits on what has been read so far.
pub(crate) fn find_end(buf: &[u8], limits: &Limits) -> Result<Option<usize>, HeadError> {
    let mut start = 0;
    while let Some(nl) = memchr(b'\n', &buf[start..]) {
        let end = start + nl;
        let line = strip_cr(&buf[start..end]);
        if line.len() > limits.line {
            return Err(HeadError::LineTooLong(limits.line));
        }
        if end + 1 > limits.head {
            return Err(HeadError::HeadTooLarge(limits.head));
        }
        if line.is_empty() {
            return Ok(Some(end + 1));
        }
        start = end + 1;
    }
    if buf.len() - start > limits.line {
        return Err(HeadError::LineTooLong(limits.line));
    }
    if buf.len() > limits.head {
        return Err(HeadError::HeadTooLarge(limits.head));
    }
    Ok(None)
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// What a program's head asks for.
#[derive(Debug)]
pub(crate) enum Head {
    /// A response to send (a document, a client redirect, or an NPH response).
    Response {
        status: StatusCode,
        /// The reason phrase, when the program gave one that differs from the canonical one.
        reason: Option<Bytes>,
        headers: HeaderMap,
        /// The body's length, from a valid `Content-Length` field.
        content_length: Option<u64>,
    },
    /// A local redirect (RFC 3875 §6.2.2): serve this path (and query) instead.
    LocalRedirect(Bytes),
}

/// Splits `head` (everything up to and including the blank line) into lines, without line
/// ends and without the blank line.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(strip_cr)
        .take_while(|line| !line.is_empty())
}

/// Parses the header fields of `lines` (slices of `head`) into `headers`, dropping
/// hop-by-hop fields (RFC 3875 §6.3.4). Values share `head`'s buffer instead of being
/// copied. Calls `cgi_field` first for each field; it returns true when it consumed the
/// field. A `Transfer-Encoding` field is refused (the host does not decode a program's
/// framing); `Content-Length` must be one decimal length: it is returned.
fn fields<'a>(
    head: &Bytes,
    lines: impl Iterator<Item = &'a [u8]>,
    limits: &Limits,
    headers: &mut HeaderMap,
    mut cgi_field: impl FnMut(&HeaderName, &'a [u8]) -> Result<bool, HeadError>,
) -> Result<Option<u64>, HeadError> {
    let mut count = 0;
    let mut content_length: Option<(u64, HeaderValue)> = None;
    for line in lines {
        count += 1;
        if count > limits.fields {
            return Err(HeadError::TooManyFields(limits.fields));
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err(HeadError::Continuation);
        }
        let Some(colon) = memchr(b':', line) else {
            return Err(HeadError::Bogus(String::from_utf8_lossy(line).into_owned()));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        // No whitespace before the colon (RFC 3875 §6.3): from_bytes refuses it.
        let name = HeaderName::from_bytes(name)
            .map_err(|_| HeadError::BadName(String::from_utf8_lossy(name).into_owned()))?;
        if cgi_field(&name, value)? {
            continue;
        }
        if name == TRANSFER_ENCODING {
            return Err(HeadError::TransferEncoding);
        }
        if name == CONTENT_LENGTH {
            // One decimal length; repeats (or a list) of the same value count as one
            // (RFC 9110 §8.6).
            let bad = || HeadError::BadContentLength(String::from_utf8_lossy(value).into_owned());
            for item in value.split(|&b| b == b',').map(trim) {
                let length = std::str::from_utf8(item)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(bad)?;
                match &content_length {
                    Some((known, _)) if *known != length => return Err(bad()),
                    Some(_) => {}
                    None => content_length = Some((length, HeaderValue::from(length))),
                }
            }
            continue;
        }
        if is_hop_by_hop(name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(value))
            .map_err(|_| HeadError::BadValue(name.as_str().to_owned()))?;
        headers.append(name, value);
    }
    if count == 0 {
        return Err(HeadError::NoFields);
    }
    Ok(content_length.map(|(length, value)| {
        headers.insert(CONTENT_LENGTH, value);
        length
    }))
}

/// Parses `NNN reason` (RFC 3875 §6.3.3). A final status only: 1xx is refused.
/// `value` is a slice of `head`, which the reason phrase shares.
fn status(head: &Bytes, value: &[u8]) -> Result<(StatusCode, Option<Bytes>), HeadError> {
    let bad = || HeadError::BadStatus(String::from_utf8_lossy(value).into_owned());
    let (code, rest) = value.split_at(value.len().min(3));
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let status = StatusCode::from_bytes(code).map_err(|_| bad())?;
    if status.is_informational() {
        return Err(bad());
    }
    let reason = match rest.split_first() {
        None => None,
        Some((b' ' | b'\t', reason)) => Some(trim(reason)),
        Some(_) => return Err(bad()),
    };
    // The reason phrase: visible text, spaces and tabs only (RFC 9112 §4).
    if reason.is_some_and(|r| r.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f))) {
        return Err(bad());
    }
    let reason = reason
        .filter(|r| !r.is_empty())
        .filter(|r| status.canonical_reason().map(str::as_bytes) != Some(*r))
        .map(|r| head.slice_ref(r));
    Ok((status, reason))
}

/// Parses a CGI header block (RFC 3875 §6): `head` is everything up to and including the
/// blank line.
pub(crate) fn parse_cgi(head: &Bytes, limits: &Limits) -> Result<Head, HeadError> {
    let mut headers = HeaderMap::new();
    let mut status_field: Option<(StatusCode, Option<Bytes>)> = None;
    let mut location: Option<&[u8]> = None;
    let mut content_type = false;
    let content_length = fields(head, lines(head), limits, &mut headers, |name, value| {
        // Field names are case-insensitive (§6.3); HeaderName is lower case.
        if name.as_str() == "status" {
            if value.is_empty() {
                return Ok(true); // an empty value is an absent field (§6.3)
            }
            if status_field.is_some() {
                return Err(HeadError::Repeated("Status"));
            }
            status_field = Some(status(head, value)?);
            return Ok(true);
        }
        if *name == LOCATION && !value.is_empty() {
            if location.is_some() {
                return Err(HeadError::Repeated("Location"));
            }
            location = Some(value);
        } else if *name == CONTENT_TYPE && !value.is_empty() {
            if content_type {
                return Err(HeadError::Repeated("Content-Type"));
            }
            content_type = true;
        } else if value.is_empty() && (*name == LOCATION || *name == CONTENT_TYPE) {
            return Ok(true);
        }
        Ok(false)
    })?;

    if let Some(location) = location {
        // A local redirect: `Location: /path[?query]` and no Status (§6.2.2, §6.3.2).
        if status_field.is_none() && location.starts_with(b"/") && !location.starts_with(b"//") {
            return Ok(Head::LocalRedirect(head.slice_ref(location)));
        }
    }
    let (status, reason) = match status_field {
        Some(status) => status,
        // A client redirect (§6.2.3).
        None if location.is_some() => (StatusCode::FOUND, None),
        None if content_type => (StatusCode::OK, None),
        None => return Err(HeadError::NoContentType),
    };
    Ok(Head::Response {
        status,
        reason,
        headers,
        content_length,
    })
}

/// Parses an NPH program's head (RFC 3875 §5): `HTTP/x.y NNN reason` and header fields.
pub(crate) fn parse_nph(head: &Bytes, limits: &Limits) -> Result<Head, HeadError> {
    let mut lines = lines(head);
    let first = lines.next().unwrap_or_default();
    let bad = || HeadError::BadStatusLine(String::from_utf8_lossy(first).into_owned());
    let rest = first
        .strip_prefix(b"HTTP/")
        .filter(|r| r.len() > 4 && r[0].is_ascii_digit() && r[1] == b'.' && r[2].is_ascii_digit())
        .and_then(|r| r.strip_prefix(&r[..3]))
        .and_then(|r| r.strip_prefix(b" "))
        .ok_or_else(bad)?;
    let (status, reason) = status(head, rest).map_err(|_| bad())?;
    let mut headers = HeaderMap::new();
    let mut lines = lines.peekable();
    let content_length = if lines.peek().is_none() {
        None
    } else {
        fields(head, lines, limits, &mut headers, |_, _| Ok(false))?
    };
    Ok(Head::Response {
        status,
        reason,
        headers,
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        line: 64,
        head: 256,
        fields: 4,
    };

    fn cgi(head: &str) -> Result<Head, HeadError> {
        parse_cgi(&Bytes::copy_from_slice(head.as_bytes()), &LIMITS)
    }

    fn response(head: Head) -> (StatusCode, Option<Bytes>, HeaderMap) {
        match head {
            Head::Response {
                status,
                reason,
                headers,
                ..
            } => (status, reason, headers),
            Head::LocalRedirect(path) => panic!("unexpected local redirect to {path:?}"),
        }
    }

    #[test]
    fn end_is_found_after_lf_or_crlf_blank_lines() {
        assert_eq!(find_end(b"A: b\n\nbody", &LIMITS), Ok(Some(6)));
        assert_eq!(find_end(b"A: b\r\n\r\nbody", &LIMITS), Ok(Some(8)));
        assert_eq!(find_end(b"A: b\r\n", &LIMITS), Ok(None));
        assert_eq!(find_end(b"A: b", &LIMITS), Ok(None));
    }

    #[test]
    fn long_lines_and_heads_are_refused_before_the_end_is_seen() {
        let long = vec![b'x'; 65];
        assert_eq!(find_end(&long, &LIMITS), Err(HeadError::LineTooLong(64)));
        let many = "A: b\n".repeat(60);
        assert_eq!(
            find_end(many.as_bytes(), &LIMITS),
            Err(HeadError::HeadTooLarge(256))
        );
    }

    #[test]
    fn document_response_defaults_to_200() {
        let (status, reason, headers) = response(cgi("Content-Type: text/plain\n\n").unwrap());
        assert_eq!(status, 200);
        assert_eq!(reason, None);
        assert_eq!(headers["content-type"], "text/plain");
    }

    #[test]
    fn status_name_is_case_insensitive_and_reason_is_kept() {
        let (status, reason, headers) =
            response(cgi("sTaTuS: 404 Nope\r\ncontent-type: text/html\r\n\r\n").unwrap());
        assert_eq!(status, 404);
        assert_eq!(reason.as_deref(), Some(&b"Nope"[..]));
        assert!(!headers.contains_key("status"));
        let (status, reason, _) = response(cgi("Status: 404 Not Found\n\n").unwrap());
        assert_eq!((status.as_u16(), reason), (404, None));
        let (status, _, _) = response(cgi("Status: 204\n\n").unwrap());
        assert_eq!(status, 204);
    }

    #[test]
    fn bad_statuses_are_refused() {
        for bad in ["20 OK", "abc", "2000 OK", "099 x", "100 Continue", "200OK"] {
            let head = format!("Status: {bad}\nContent-Type: text/plain\n\n");
            assert!(
                matches!(cgi(&head), Err(HeadError::BadStatus(_))),
                "{bad}: {:?}",
                cgi(&head)
            );
        }
    }

    #[test]
    fn missing_content_type_is_refused_unless_status_or_location() {
        assert_eq!(cgi("X-A: b\n\n").unwrap_err(), HeadError::NoContentType);
        assert_eq!(cgi("\n").unwrap_err(), HeadError::NoFields);
        let (status, _, headers) = response(cgi("Location: http://x.example/\n\n").unwrap());
        assert_eq!(status, 302);
        assert_eq!(headers["location"], "http://x.example/");
    }

    #[test]
    fn path_location_without_status_is_a_local_redirect() {
        match cgi("Location: /other?a=1\n\n").unwrap() {
            Head::LocalRedirect(path) => assert_eq!(path, "/other?a=1"),
            other => panic!("{other:?}"),
        }
        // With a Status it is a client redirect with document (§6.2.4).
        let (status, _, _) = response(cgi("Location: /x\nStatus: 301 Moved\n\n").unwrap());
        assert_eq!(status, 301);
        // `//host/path` is not an absolute path.
        let (status, _, _) = response(cgi("Location: //evil.example/\n\n").unwrap());
        assert_eq!(status, 302);
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(matches!(cgi("garbage\n\n"), Err(HeadError::Bogus(_))));
        assert!(matches!(
            cgi("Content-Type : text/plain\n\n"),
            Err(HeadError::BadName(_))
        ));
        assert_eq!(
            cgi("Content-Type: text/plain\n folded\n\n").unwrap_err(),
            HeadError::Continuation
        );
        assert_eq!(
            cgi("Status: 200\nStatus: 201\n\n").unwrap_err(),
            HeadError::Repeated("Status")
        );
        assert_eq!(
            cgi("A: 1\nB: 2\nC: 3\nD: 4\nE: 5\n\n").unwrap_err(),
            HeadError::TooManyFields(4)
        );
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_repeated_fields_kept() {
        let (_, _, headers) = response(
            cgi("Content-Type: a/b\nConnection: close\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n")
                .unwrap(),
        );
        assert!(!headers.contains_key("connection"));
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn nph_heads_carry_a_status_line() {
        let head = &Bytes::from_static(b"HTTP/1.1 201 Made\r\nContent-Type: text/plain\r\n\r\n");
        let (status, reason, headers) = response(parse_nph(head, &LIMITS).unwrap());
        assert_eq!(status, 201);
        assert_eq!(reason.as_deref(), Some(&b"Made"[..]));
        assert_eq!(headers["content-type"], "text/plain");
        assert!(matches!(
            parse_nph(&Bytes::from_static(b"Status: 200\n\n"), &LIMITS),
            Err(HeadError::BadStatusLine(_))
        ));
        assert_eq!(
            parse_nph(
                &Bytes::from_static(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"),
                &LIMITS
            )
            .unwrap_err(),
            HeadError::TransferEncoding
        );
    }

    #[test]
    fn a_programs_transfer_encoding_is_refused_never_forwarded() {
        assert_eq!(
            cgi("Content-Type: text/plain\nTransfer-Encoding: chunked\n\n").unwrap_err(),
            HeadError::TransferEncoding
        );
    }

    #[test]
    fn content_length_must_be_one_decimal_length() {
        for bad in ["abc", "1, 2", "-1", "", "1 2", "+5"] {
            let head = format!("Content-Type: a/b\nContent-Length: {bad}\n\n");
            assert!(
                matches!(cgi(&head), Err(HeadError::BadContentLength(_))),
                "{bad}: {:?}",
                cgi(&head)
            );
        }
        let two = "Content-Type: a/b\nContent-Length: 5\nContent-Length: 6\n\n";
        assert!(matches!(cgi(two), Err(HeadError::BadContentLength(_))));
        let same = "Content-Type: a/b\nContent-Length: 5\ncontent-length: 5, 5\n\n";
        match cgi(same).unwrap() {
            Head::Response {
                headers,
                content_length,
                ..
            } => {
                assert_eq!(content_length, Some(5));
                assert_eq!(headers.get_all("content-length").iter().count(), 1);
                assert_eq!(headers["content-length"], "5");
            }
            other => panic!("{other:?}"),
        }
    }
}
