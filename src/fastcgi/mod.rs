//! Run a tower service as a FastCGI application (FastCGI 1.0 specification).

// Some of the codec serves only the client side.
#[allow(dead_code)]
pub(crate) mod record;

/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing` only).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzz {
    use bytes::BytesMut;

    use super::record::{
        BeginRequest, Decoder, EndRequest, RecordType, decode_pairs, encode_record,
        parse_unknown_type,
    };

    /// Decodes `data` as a record stream fed in pieces of `step` bytes: every record
    /// decodes, re-encodes to the same record, and its body parses or is refused, without
    /// a panic and without the buffer growing past one record.
    pub fn records(data: &[u8], step: usize) {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let step = step.max(1);
        let mut records = Vec::new();
        for piece in data.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) => records.push(record),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            assert!(buf.len() <= Decoder::MAX_RECORD_LEN + step);
        }
        let _ = decoder.decode_eof(&mut buf);
        for record in records {
            let mut again = BytesMut::new();
            encode_record(&mut again, record.kind, record.request_id, &record.content);
            let decoded = Decoder::new().decode_eof(&mut again);
            assert_eq!(decoded, Ok(Some(record.clone())));
            match record.kind {
                RecordType::BeginRequest => drop(BeginRequest::parse(&record.content)),
                RecordType::EndRequest => drop(EndRequest::parse(&record.content)),
                RecordType::UnknownType => drop(parse_unknown_type(&record.content)),
                _ => decode_pairs(&record.content).for_each(drop),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_point_takes_any_bytes() {
        let mut wire = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
        wire.extend_from_slice(&[1, 4, 0, 1, 0, 3, 5, 0, 0x80, 0, 0]);
        wire.extend_from_slice(&[0; 5]);
        wire.extend_from_slice(&[1, 4, 0, 1, 0xff, 0xff, 0xff]);
        for step in [0, 1, 3, 8, 255] {
            super::fuzz::records(&wire, step);
            super::fuzz::records(&[2, 0, 0], step);
        }
    }
}
