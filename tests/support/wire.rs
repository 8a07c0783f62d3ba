//! A tiny HTTP/1.1 client that shows the response as it came off the wire, shared by the
//! real-web-server tests (lighttpd, nginx with fcgiwrap, Apache).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// How long one request may take.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Sends `request` (a complete HTTP/1.1 request; it should say `Connection: close`) to
/// `server` on `127.0.0.1:port` and reads the response until the server closes the
/// connection. When reading fails, the test fails with what came and `error_log()`.
pub fn send(
    server: &str,
    port: u16,
    request: &[u8],
    error_log: impl FnOnce() -> String,
) -> WireResponse {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("connect to {server}: {e:?}"));
    stream.set_read_timeout(Some(REQUEST_LIMIT)).unwrap();
    stream.set_write_timeout(Some(REQUEST_LIMIT)).unwrap();
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        panic!(
            "reading the response failed ({e}); got {:?}\nerror log:\n{}",
            String::from_utf8_lossy(&raw),
            error_log()
        );
    }
    WireResponse::parse(&raw, request.starts_with(b"HEAD "))
}

/// A `GET target` request over HTTP/1.1 to `127.0.0.1:port`, with `extra` header lines
/// (each ending in CRLF).
pub fn get_request(port: u16, target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n")
}

/// A `POST target` request over HTTP/1.1 to `127.0.0.1:port` with `body` and its
/// `Content-Type` and `Content-Length`.
pub fn post_request(port: u16, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// An HTTP/1.1 response as it came off the wire.
#[derive(Debug)]
pub struct WireResponse {
    /// The status line, without CRLF.
    pub status_line: String,
    /// The header fields, in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body with the framing removed.
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`, and how many chunks.
    pub chunks: Option<usize>,
}

impl WireResponse {
    /// Parses a whole response; `head_only` when it answers a HEAD request (no body, and
    /// `Content-Length` need not match).
    pub fn parse(raw: &[u8], head_only: bool) -> WireResponse {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let (body, chunks) = if chunked && !head_only {
            let (body, chunks) = dechunk(rest);
            (body, Some(chunks))
        } else {
            (rest.to_vec(), None)
        };
        let response = WireResponse {
            status_line,
            headers,
            body,
            chunks,
        };
        if let Some(length) = response.header("content-length").filter(|_| !head_only) {
            assert_eq!(
                length.parse::<usize>().ok(),
                Some(response.body.len()),
                "Content-Length does not match the body"
            );
        }
        response
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", self.status_line))
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lower case), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Removes chunked framing (RFC 9112 §7.1); returns the body and the number of data
/// chunks.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    let mut chunks = 0;
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = std::str::from_utf8(&raw[..line_end]).expect("chunk size is ASCII");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        raw = &raw[line_end + 2..];
        if size == 0 {
            return (body, chunks);
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        raw = &raw[size + 2..];
        chunks += 1;
    }
}
