//! A hand-written FastCGI peer (the web server's side) for protocol tests: it builds records
//! byte by byte, so it can also send truncated records, lying lengths and bogus ids.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const RESPONDER: u16 = 1;
pub const AUTHORIZER: u16 = 2;
pub const FILTER: u16 = 3;

/// One record, padded to 8 bytes.
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    assert!(content.len() <= 65535);
    let len = content.len() as u16;
    let padding = (8 - content.len() % 8) % 8;
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(padding as u8);
    out.push(0);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0, padding));
    out
}

pub fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let [r1, r0] = role.to_be_bytes();
    record(
        BEGIN_REQUEST,
        id,
        &[r1, r0, u8::from(keep_conn), 0, 0, 0, 0, 0],
    )
}

/// Name-value pairs, encoded (FastCGI §3.4).
pub fn pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        for len in [name.len(), value.len()] {
            if len < 128 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A whole stream of `kind`: records of at most 65535 bytes, then the empty record.
pub fn stream(kind: u8, id: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(65535) {
        out.extend(record(kind, id, chunk));
    }
    out.extend(record(kind, id, b""));
    out
}

/// BEGIN_REQUEST, PARAMS and STDIN of a whole request.
pub fn request(id: u16, keep_conn: bool, params: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = begin(id, RESPONDER, keep_conn);
    out.extend(stream(PARAMS, id, &pairs(params)));
    out.extend(stream(STDIN, id, body));
    out
}

/// The PARAMS of a `GET path`.
pub fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REQUEST_METHOD", "GET".into()),
        ("SCRIPT_NAME", "".into()),
        ("PATH_INFO", path.into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "localhost".into()),
        ("SERVER_PORT", "80".into()),
    ]
}

pub fn borrowed<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// What the application answered to one request.
#[derive(Debug)]
pub struct Answer {
    pub stdout: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A connection to a FastCGI application, with a read deadline on every read.
pub struct Peer {
    pub stream: TcpStream,
    queued: VecDeque<Record>,
}

impl Peer {
    pub fn connect(addr: std::net::SocketAddr) -> Peer {
        Peer::from_stream(TcpStream::connect(addr).expect("connect to the FastCGI application"))
    }

    /// A peer on `stream`, with the read deadline: a connection to an application, or the
    /// application's side of an accepted one (for a hand-written application).
    pub fn from_stream(stream: TcpStream) -> Peer {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Peer {
            stream,
            queued: VecDeque::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("write to the application");
    }

    /// The next record, `None` at end of stream (or a truncated one).
    pub fn read_record(&mut self) -> Option<Record> {
        if let Some(record) = self.queued.pop_front() {
            return Some(record);
        }
        self.read_wire()
    }

    fn read_wire(&mut self) -> Option<Record> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header).ok()?;
        assert_eq!(header[0], 1, "version");
        let len = u16::from_be_bytes([header[4], header[5]]) as usize;
        let mut content = vec![0; len + header[6] as usize];
        self.stream.read_exact(&mut content).ok()?;
        content.truncate(len);
        Some(Record {
            kind: header[1],
            id: u16::from_be_bytes([header[2], header[3]]),
            content,
        })
    }

    /// Reads until the END_REQUEST of `id`, queueing other requests' records; panics at
    /// end of stream.
    pub fn answer(&mut self, id: u16) -> Answer {
        let mut stdout = Vec::new();
        let mut stdout_ended = false;
        let mut i = 0;
        loop {
            let record = if i < self.queued.len() {
                if self.queued[i].id != id {
                    i += 1;
                    continue;
                }
                self.queued.remove(i).unwrap()
            } else {
                match self.read_wire() {
                    Some(r) if r.id != id => {
                        self.queued.push_back(r);
                        i = self.queued.len();
                        continue;
                    }
                    Some(r) => r,
                    None => panic!(
                        "the connection ended before END_REQUEST {id}; stdout so far: {:?}",
                        String::from_utf8_lossy(&stdout)
                    ),
                }
            };
            match record.kind {
                STDOUT if record.content.is_empty() => stdout_ended = true,
                STDOUT => {
                    assert!(!stdout_ended, "STDOUT after its end");
                    stdout.extend_from_slice(&record.content)
                }
                END_REQUEST => {
                    let c = &record.content;
                    assert_eq!(c.len(), 8);
                    return Answer {
                        stdout,
                        app_status: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        protocol_status: c[4],
                    };
                }
                other => panic!("unexpected record type {other} for request {id}"),
            }
        }
    }

    /// True when the application closed the connection (reads end-of-stream).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Decodes name-value pairs (of a GET_VALUES_RESULT).
pub fn decode_pairs(mut bytes: &[u8]) -> Vec<(String, String)> {
    fn len(bytes: &mut &[u8]) -> usize {
        if bytes[0] < 0x80 {
            let l = bytes[0] as usize;
            *bytes = &bytes[1..];
            l
        } else {
            let l = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]) as usize;
            *bytes = &bytes[4..];
            l
        }
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = len(&mut bytes);
        let v = len(&mut bytes);
        let name = String::from_utf8_lossy(&bytes[..n]).into_owned();
        let value = String::from_utf8_lossy(&bytes[n..n + v]).into_owned();
        bytes = &bytes[n + v..];
        out.push((name, value));
    }
    out
}
