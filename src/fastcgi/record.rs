//! The FastCGI 1.0 record layer: headers, record types and bodies, name-value pairs, a
//! streaming decoder and the encoders (FastCGI specification §3 and §5).
//!
//! Shared by the application side ([`super::serve`]) and the client side. Nothing here does
//! I/O: the decoder takes bytes as they arrive in a `BytesMut` and hands out whole records;
//! the encoders append records to a `BytesMut`. A record is at most 8 + 65535 + 255 bytes, so
//! the decoder never buffers more than one record; the streams whose records are reassembled
//! (PARAMS, GET_VALUES) are bounded by [`ParamsBuffer`].

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// `FCGI_VERSION_1`, the only version (§8).
pub(crate) const VERSION_1: u8 = 1;
/// `FCGI_HEADER_LEN` (§8).
pub(crate) const HEADER_LEN: usize = 8;
/// The largest content of one record: `contentLength` is 16 bits (§3.3).
pub(crate) const MAX_CONTENT_LEN: usize = 65535;
/// `FCGI_NULL_REQUEST_ID`: management records (§3.3).
pub(crate) const NULL_REQUEST_ID: u16 = 0;
/// `FCGI_KEEP_CONN`, the one flag of BEGIN_REQUEST (§5.1).
pub(crate) const KEEP_CONN: u8 = 1;

/// The names a GET_VALUES record may ask for (§4.1).
pub(crate) const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
pub(crate) const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
pub(crate) const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// A record's `type` (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    /// A type this version does not define: a management record of this type is answered
    /// with UNKNOWN_TYPE (§4.2).
    Other(u8),
}

impl RecordType {
    pub(crate) fn from_u8(byte: u8) -> Self {
        match byte {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Other(other),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Other(other) => other,
        }
    }
}

/// A record's header, `FCGI_Header` (§3.3), with the version checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: RecordType,
    pub(crate) request_id: u16,
    pub(crate) content_length: u16,
    pub(crate) padding_length: u8,
}

impl Header {
    /// Parses the 8 header bytes.
    pub(crate) fn parse(bytes: [u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        let [
            version,
            kind,
            id1,
            id0,
            len1,
            len0,
            padding_length,
            _reserved,
        ] = bytes;
        if version != VERSION_1 {
            return Err(DecodeError::Version(version));
        }
        Ok(Self {
            kind: RecordType::from_u8(kind),
            request_id: u16::from_be_bytes([id1, id0]),
            content_length: u16::from_be_bytes([len1, len0]),
            padding_length,
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [id1, id0] = self.request_id.to_be_bytes();
        let [len1, len0] = self.content_length.to_be_bytes();
        [
            VERSION_1,
            self.kind.as_u8(),
            id1,
            id0,
            len1,
            len0,
            self.padding_length,
            0,
        ]
    }
}

/// One whole record: its type, request id and content (the padding dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) kind: RecordType,
    pub(crate) request_id: u16,
    pub(crate) content: Bytes,
}

impl Record {
    /// A management record (request id 0, §3.3).
    pub(crate) fn is_management(&self) -> bool {
        self.request_id == NULL_REQUEST_ID
    }
}

/// A record stream that cannot be decoded. The connection cannot go on after one: the next
/// record's boundary is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The header's version is not `FCGI_VERSION_1`.
    Version(u8),
    /// The stream ended inside a record (`have` of its bytes arrived).
    Truncated { have: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "unsupported FastCGI version {v}"),
            Self::Truncated { have } => {
                write!(f, "the stream ended inside a record ({have} bytes of it)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Cuts records out of a byte stream as it arrives. Holds no buffer of its own: the caller
/// reads into a `BytesMut` (at most [`Decoder::MAX_RECORD_LEN`] bytes are ever needed) and
/// calls [`Decoder::decode`] until it answers `None`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decoder {
    header: Option<Header>,
}

impl Decoder {
    /// The largest record on the wire: header, 65535 bytes of content, 255 of padding.
    pub(crate) const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + 255;

    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The next whole record in `buf` (consumed from it), or `None` when more bytes are
    /// needed.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, DecodeError> {
        let header = match self.header {
            Some(header) => header,
            None => {
                let Some(bytes) = buf.get(..HEADER_LEN) else {
                    return Ok(None);
                };
                let mut array = [0; HEADER_LEN];
                array.copy_from_slice(bytes);
                let header = Header::parse(array)?;
                buf.advance(HEADER_LEN);
                self.header = Some(header);
                header
            }
        };
        let content = usize::from(header.content_length);
        let padding = usize::from(header.padding_length);
        if buf.len() < content + padding {
            buf.reserve(content + padding - buf.len());
            return Ok(None);
        }
        self.header = None;
        let content = buf.split_to(content).freeze();
        buf.advance(padding);
        Ok(Some(Record {
            kind: header.kind,
            request_id: header.request_id,
            content,
        }))
    }

    /// At the end of the stream: an error when a record was cut short.
    pub(crate) fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, DecodeError> {
        match self.decode(buf)? {
            Some(record) => Ok(Some(record)),
            None if buf.is_empty() && self.header.is_none() => Ok(None),
            None => Err(DecodeError::Truncated {
                have: buf.len() + self.header.map_or(0, |_| HEADER_LEN),
            }),
        }
    }
}

/// The padding that aligns a record of `content_len` bytes to 8 bytes (§3.3 recommends it).
pub(crate) fn padding_for(content_len: usize) -> u8 {
    // `content_len % 8` is below 8, so the cast is exact.
    ((8 - content_len % 8) % 8) as u8
}

/// The header of a record of `content_len` (at most [`MAX_CONTENT_LEN`]) bytes, padded to 8.
pub(crate) fn header_for(kind: RecordType, request_id: u16, content_len: usize) -> Header {
    Header {
        kind,
        request_id,
        content_length: u16::try_from(content_len).unwrap_or(u16::MAX),
        padding_length: padding_for(content_len),
    }
}

/// Appends `data` as records of type `kind`, each of at most [`MAX_CONTENT_LEN`] bytes and
/// padded to 8. Empty `data` appends nothing: the empty record that ends a stream is
/// [`encode_end_of_stream`].
pub(crate) fn encode_stream(dst: &mut BytesMut, kind: RecordType, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        encode_record(dst, kind, request_id, chunk);
    }
}

/// Appends the empty record that ends the stream `kind` (§3.3).
pub(crate) fn encode_end_of_stream(dst: &mut BytesMut, kind: RecordType, request_id: u16) {
    encode_record(dst, kind, request_id, &[]);
}

/// Appends one record; `content` must be at most [`MAX_CONTENT_LEN`] bytes (longer content
/// is cut there: use [`encode_stream`]).
pub(crate) fn encode_record(dst: &mut BytesMut, kind: RecordType, request_id: u16, content: &[u8]) {
    let content = content.get(..MAX_CONTENT_LEN).unwrap_or(content);
    let header = header_for(kind, request_id, content.len());
    dst.reserve(HEADER_LEN + content.len() + usize::from(header.padding_length));
    dst.put_slice(&header.to_bytes());
    dst.put_slice(content);
    dst.put_bytes(0, usize::from(header.padding_length));
}

/// The role of a request (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Responder,
    Authorizer,
    Filter,
    Other(u16),
}

impl Role {
    pub(crate) fn from_u16(role: u16) -> Self {
        match role {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Other(other),
        }
    }

    pub(crate) fn as_u16(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Other(other) => other,
        }
    }
}

/// The body of a record that does not have the length its type requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyLengthError {
    pub(crate) kind: RecordType,
    pub(crate) len: usize,
}

impl fmt::Display for BodyLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {:?} record of {} bytes, not 8", self.kind, self.len)
    }
}

impl std::error::Error for BodyLengthError {}

fn body8(kind: RecordType, content: &[u8]) -> Result<[u8; 8], BodyLengthError> {
    content.try_into().map_err(|_| BodyLengthError {
        kind,
        len: content.len(),
    })
}

/// `FCGI_BeginRequestBody` (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BeginRequest {
    pub(crate) role: Role,
    pub(crate) keep_conn: bool,
}

impl BeginRequest {
    pub(crate) fn parse(content: &[u8]) -> Result<Self, BodyLengthError> {
        let [r1, r0, flags, ..] = body8(RecordType::BeginRequest, content)?;
        Ok(Self {
            role: Role::from_u16(u16::from_be_bytes([r1, r0])),
            keep_conn: flags & KEEP_CONN != 0,
        })
    }

    pub(crate) fn encode(self, dst: &mut BytesMut, request_id: u16) {
        let [r1, r0] = self.role.as_u16().to_be_bytes();
        let flags = if self.keep_conn { KEEP_CONN } else { 0 };
        encode_record(
            dst,
            RecordType::BeginRequest,
            request_id,
            &[r1, r0, flags, 0, 0, 0, 0, 0],
        );
    }
}

/// `protocolStatus` of END_REQUEST (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProtocolStatus {
    RequestComplete,
    CantMpxConn,
    Overloaded,
    UnknownRole,
    Other(u8),
}

impl ProtocolStatus {
    pub(crate) fn from_u8(byte: u8) -> Self {
        match byte {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(other) => other,
        }
    }
}

/// `FCGI_EndRequestBody` (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndRequest {
    pub(crate) app_status: u32,
    pub(crate) protocol_status: ProtocolStatus,
}

impl EndRequest {
    pub(crate) fn parse(content: &[u8]) -> Result<Self, BodyLengthError> {
        let [a3, a2, a1, a0, status, ..] = body8(RecordType::EndRequest, content)?;
        Ok(Self {
            app_status: u32::from_be_bytes([a3, a2, a1, a0]),
            protocol_status: ProtocolStatus::from_u8(status),
        })
    }

    pub(crate) fn encode(self, dst: &mut BytesMut, request_id: u16) {
        let [a3, a2, a1, a0] = self.app_status.to_be_bytes();
        let status = self.protocol_status.as_u8();
        encode_record(
            dst,
            RecordType::EndRequest,
            request_id,
            &[a3, a2, a1, a0, status, 0, 0, 0],
        );
    }
}

/// Appends the UNKNOWN_TYPE answer to a management record of type `kind` (§4.2).
pub(crate) fn encode_unknown_type(dst: &mut BytesMut, kind: u8) {
    encode_record(
        dst,
        RecordType::UnknownType,
        NULL_REQUEST_ID,
        &[kind, 0, 0, 0, 0, 0, 0, 0],
    );
}

/// The type named in an UNKNOWN_TYPE body (§4.2).
pub(crate) fn parse_unknown_type(content: &[u8]) -> Result<u8, BodyLengthError> {
    let [kind, ..] = body8(RecordType::UnknownType, content)?;
    Ok(kind)
}

/// Appends one name-value pair in the encoding of §3.4: each length in one byte below 128,
/// else in four bytes with the high bit set. Lengths are at most 2^31 - 1; a longer name or
/// value (never seen in practice) is cut there.
pub(crate) fn encode_pair(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    const MAX: usize = 0x7fff_ffff;
    let name = name.get(..MAX).unwrap_or(name);
    let value = value.get(..MAX).unwrap_or(value);
    for len in [name.len(), value.len()] {
        match u8::try_from(len) {
            Ok(short) if short < 0x80 => dst.put_u8(short),
            // Cut to MAX above, so the length fits in 31 bits.
            _ => dst.put_u32(u32::try_from(len).unwrap_or(0x7fff_ffff) | 0x8000_0000),
        }
    }
    dst.put_slice(name);
    dst.put_slice(value);
}

/// The encoded length of a pair, as [`encode_pair`] writes it.
pub(crate) fn pair_len(name: &[u8], value: &[u8]) -> usize {
    let len_len = |len: usize| if len < 0x80 { 1 } else { 4 };
    len_len(name.len()) + len_len(value.len()) + name.len() + value.len()
}

/// A name-value pair stream that does not decode: a length runs past the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairsError;

impl fmt::Display for PairsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name-value pair runs past the end of its stream")
    }
}

impl std::error::Error for PairsError {}

/// The name-value pairs of a whole stream (§3.4), as slices of `bytes` (zero-copy).
pub(crate) fn decode_pairs(bytes: &Bytes) -> Pairs {
    Pairs {
        rest: bytes.clone(),
    }
}

/// The iterator of [`decode_pairs`]. After an error it ends.
#[derive(Clone, Debug)]
pub(crate) struct Pairs {
    rest: Bytes,
}

impl Pairs {
    fn length(&mut self) -> Result<usize, PairsError> {
        let first = *self.rest.first().ok_or(PairsError)?;
        if first < 0x80 {
            self.rest.advance(1);
            return Ok(usize::from(first));
        }
        let four: [u8; 4] = self
            .rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(PairsError)?;
        self.rest.advance(4);
        usize::try_from(u32::from_be_bytes(four) & 0x7fff_ffff).map_err(|_| PairsError)
    }

    fn next_pair(&mut self) -> Result<(Bytes, Bytes), PairsError> {
        let name_len = self.length()?;
        let value_len = self.length()?;
        if name_len.saturating_add(value_len) > self.rest.len() {
            return Err(PairsError);
        }
        let name = self.rest.split_to(name_len);
        let value = self.rest.split_to(value_len);
        Ok((name, value))
    }
}

impl Iterator for Pairs {
    type Item = Result<(Bytes, Bytes), PairsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let pair = self.next_pair();
        if pair.is_err() {
            self.rest = Bytes::new();
        }
        Some(pair)
    }
}

/// The content of a reassembled stream (PARAMS, GET_VALUES) is over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) limit: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the parameters are over the limit of {} bytes",
            self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

/// Collects the content of a PARAMS stream up to its empty record, with a limit, for
/// [`decode_pairs`].
#[derive(Debug)]
pub(crate) struct ParamsBuffer {
    buf: BytesMut,
    limit: usize,
}

impl ParamsBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Adds one record's content; an error once the total would pass the limit.
    pub(crate) fn push(&mut self, content: &[u8]) -> Result<(), TooLarge> {
        if self.buf.len().saturating_add(content.len()) > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(content);
        Ok(())
    }

    /// The stream's bytes so far.
    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Hashes request ids with one multiplication, where the default hasher, made to resist
/// chosen keys, costs a few hundred instructions a request. Ids are 16-bit and a map holds
/// a bounded number of them (the client's own ids; at most [`Builder::max_requests`] a
/// connection on the server side), so chosen ids cannot make it slow.
///
/// [`Builder::max_requests`]: super::Builder::max_requests
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BuildIdHasher;

impl std::hash::BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Debug)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing: spreads consecutive ids over the high bits, which hashbrown
        // uses.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(bytes);
        let mut records = Vec::new();
        while let Some(record) = decoder.decode_eof(&mut buf)? {
            records.push(record);
        }
        Ok(records)
    }

    #[test]
    fn a_begin_request_record_round_trips() {
        let mut buf = BytesMut::new();
        BeginRequest {
            role: Role::Responder,
            keep_conn: true,
        }
        .encode(&mut buf, 1);
        assert_eq!(&buf[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        let records = decode_all(&buf).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, RecordType::BeginRequest);
        assert_eq!(records[0].request_id, 1);
        assert_eq!(
            BeginRequest::parse(&records[0].content).unwrap(),
            BeginRequest {
                role: Role::Responder,
                keep_conn: true
            }
        );
    }

    #[test]
    fn an_end_request_record_round_trips() {
        let mut buf = BytesMut::new();
        let end = EndRequest {
            app_status: 0x0102_0304,
            protocol_status: ProtocolStatus::UnknownRole,
        };
        end.encode(&mut buf, 0x1234);
        assert_eq!(&buf[..8], &[1, 3, 0x12, 0x34, 0, 8, 0, 0]);
        let records = decode_all(&buf).unwrap();
        assert_eq!(EndRequest::parse(&records[0].content).unwrap(), end);
    }

    #[test]
    fn a_body_of_the_wrong_length_is_rejected() {
        assert_eq!(
            BeginRequest::parse(&[0, 1, 0]),
            Err(BodyLengthError {
                kind: RecordType::BeginRequest,
                len: 3
            })
        );
        assert!(EndRequest::parse(&[0; 9]).is_err());
        assert!(parse_unknown_type(&[]).is_err());
    }

    #[test]
    fn records_are_padded_to_eight_and_the_padding_is_skipped() {
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::Stdout, 3, b"hello");
        assert_eq!(&buf[..8], &[1, 6, 0, 3, 0, 5, 3, 0]);
        assert_eq!(buf.len(), 16);
        encode_end_of_stream(&mut buf, RecordType::Stdout, 3);
        assert_eq!(&buf[16..], &[1, 6, 0, 3, 0, 0, 0, 0]);
        let records = decode_all(&buf).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(&records[0].content[..], b"hello");
        assert!(records[1].content.is_empty());
    }

    #[test]
    fn a_long_stream_is_split_into_records_of_at_most_65535_bytes() {
        let data = vec![7u8; MAX_CONTENT_LEN * 2 + 10];
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::Stdout, 1, &data);
        let records = decode_all(&buf).unwrap();
        let lens: Vec<usize> = records.iter().map(|r| r.content.len()).collect();
        assert_eq!(lens, [MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10]);
        // 65535 + 1 byte of padding is 65536, a multiple of 8.
        assert_eq!(buf[6], 1);
    }

    #[test]
    fn the_decoder_waits_for_whole_records_fed_byte_by_byte() {
        let mut wire = BytesMut::new();
        encode_stream(&mut wire, RecordType::Stdin, 2, b"abcdefghij");
        encode_end_of_stream(&mut wire, RecordType::Stdin, 2);
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut records = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(record) = decoder.decode(&mut buf).unwrap() {
                records.push(record);
            }
        }
        assert_eq!(records.len(), 2);
        assert_eq!(&records[0].content[..], b"abcdefghij");
        assert!(buf.is_empty());
    }

    #[test]
    fn a_truncated_record_and_a_bad_version_are_errors() {
        let mut wire = BytesMut::new();
        encode_stream(&mut wire, RecordType::Stdin, 2, b"abc");
        assert_eq!(
            decode_all(&wire[..5]),
            Err(DecodeError::Truncated { have: 5 })
        );
        assert_eq!(
            decode_all(&wire[..10]),
            Err(DecodeError::Truncated { have: 10 })
        );
        assert_eq!(
            decode_all(&[2, 1, 0, 1, 0, 0, 0, 0]),
            Err(DecodeError::Version(2))
        );
    }

    #[test]
    fn unknown_types_decode_as_other() {
        let records = decode_all(&[1, 42, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(records[0].kind, RecordType::Other(42));
        assert!(records[0].is_management());
        let mut buf = BytesMut::new();
        encode_unknown_type(&mut buf, 42);
        let records = decode_all(&buf).unwrap();
        assert_eq!(records[0].kind, RecordType::UnknownType);
        assert_eq!(parse_unknown_type(&records[0].content), Ok(42));
    }

    #[test]
    fn pairs_use_one_byte_lengths_below_128_and_four_above() {
        let mut buf = BytesMut::new();
        let long = vec![b'v'; 200];
        encode_pair(&mut buf, b"NAME", b"value");
        encode_pair(&mut buf, b"LONG", &long);
        encode_pair(&mut buf, b"EMPTY", b"");
        assert_eq!(&buf[..2], &[4, 5]);
        assert_eq!(&buf[11..16], &[4, 0x80, 0, 0, 200]);
        assert_eq!(
            buf.len(),
            pair_len(b"NAME", b"value") + pair_len(b"LONG", &long) + pair_len(b"EMPTY", b"")
        );
        let pairs: Vec<(Bytes, Bytes)> = decode_pairs(&buf.freeze())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            pairs,
            [
                (Bytes::from("NAME"), Bytes::from("value")),
                (Bytes::from("LONG"), Bytes::from(long)),
                (Bytes::from("EMPTY"), Bytes::new()),
            ]
        );
    }

    #[test]
    fn pairs_whose_lengths_lie_are_an_error_and_end_the_stream() {
        let lying = Bytes::from_static(&[4, 5, b'N', b'A']);
        let mut pairs = decode_pairs(&lying);
        assert_eq!(pairs.next(), Some(Err(PairsError)));
        assert_eq!(pairs.next(), None);
        let huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_pairs(&huge).next(), Some(Err(PairsError)));
        let cut = Bytes::from_static(&[0x80, 0]);
        assert_eq!(decode_pairs(&cut).next(), Some(Err(PairsError)));
    }

    #[test]
    fn the_params_buffer_stops_at_its_limit() {
        let mut params = ParamsBuffer::new(10);
        params.push(b"12345").unwrap();
        params.push(b"67890").unwrap();
        assert_eq!(params.push(b"x"), Err(TooLarge { limit: 10 }));
        assert_eq!(&params.finish()[..], b"1234567890");
    }
}
