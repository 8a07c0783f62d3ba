//! Percent-encoding and decoding of URI components, byte-exact (RFC 3986 §2.1).

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as is.
pub(crate) fn decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match escape_at(input, i) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

/// Returns true when `input` holds a `%` escape.
pub(crate) fn has_escape(input: &[u8]) -> bool {
    input.contains(&b'%')
}

/// The byte encoded by the `%XX` escape at `i`, if there is one.
pub(crate) fn escape_at(input: &[u8], i: usize) -> Option<u8> {
    if input.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex(*input.get(i + 1)?)?;
    let lo = hex(*input.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Which bytes pass through unencoded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Set {
    /// A decoded path: RFC 3986 `pchar` and `/`. `%`, `?`, `#` and everything else is
    /// escaped.
    Path,
    /// An already encoded component (a host, a port): only bytes that may never appear in
    /// a URI (controls, space, non-ASCII, `"<>\^`{|}#`) are escaped; `%` is kept.
    Raw,
    /// An already encoded path, from a `REQUEST_URI`: every ASCII byte that `http` accepts
    /// in a path is kept (`%` too, and the `"{}|[]\^` that clients send unescaped), so the
    /// path stays byte for byte what the client sent; `?`, `#`, controls, space, `<>`` ` ``
    /// and non-ASCII are escaped.
    RawPath,
    /// An already encoded query string: every ASCII byte that `http` accepts in a query is
    /// kept (`%` too); `#`, `"`, `<`, `>`, controls, space and non-ASCII are escaped.
    RawQuery,
}

fn keep(set: Set, byte: u8) -> bool {
    let pchar = byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        );
    match set {
        Set::Path => pchar,
        Set::Raw => pchar || matches!(byte, b'%' | b'?' | b'[' | b']'),
        // `http`'s own tables (`uri/path.rs`), ASCII part.
        Set::RawPath => matches!(
            byte,
            0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}'
        ),
        Set::RawQuery => matches!(byte, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E),
    }
}

/// Appends `input` to `out`, escaping every byte outside `set`.
pub(crate) fn encode_into(input: &[u8], set: Set, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in input {
        if keep(set, byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
}

/// `input` escaped outside `set`, as a `String` (the result is always ASCII).
#[cfg(test)]
pub(crate) fn encode(input: &[u8], set: Set) -> String {
    let mut out = Vec::with_capacity(input.len());
    encode_into(input, set, &mut out);
    // Every byte pushed is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_keeps_stray_percent_signs() {
        assert_eq!(decode(b"/a%20b%2Fc%zz%4"), b"/a b/c%zz%4");
        assert_eq!(decode(b"%C3%A9%ff"), b"\xc3\xa9\xff");
    }

    #[test]
    fn path_encoding_escapes_percent_query_and_non_ascii() {
        assert_eq!(
            encode(b"/a b%?#\xff/x;y=z", Set::Path),
            "/a%20b%25%3F%23%FF/x;y=z"
        );
    }

    #[test]
    fn raw_path_and_query_keep_everything_http_accepts() {
        let every_ascii: Vec<u8> = (0u8..128).collect();
        for set in [Set::RawPath, Set::RawQuery] {
            let mut target = b"/".to_vec();
            if let Set::RawQuery = set {
                target.push(b'?');
            }
            encode_into(&every_ascii, set, &mut target);
            let uri = http::Uri::try_from(target.clone()).unwrap();
            let kept = if let Set::RawQuery = set {
                uri.query().unwrap().to_owned()
            } else {
                uri.path().to_owned()
            };
            // Whatever was kept parses back unchanged...
            assert!(target.ends_with(kept.as_bytes()), "{set:?}");
            // ...and each byte kept is one that `http` accepts alone.
            for byte in every_ascii.iter().copied().filter(|&b| keep(set, b)) {
                let mut one = target[..1 + usize::from(matches!(set, Set::RawQuery))].to_vec();
                one.push(byte);
                assert!(http::Uri::try_from(one).is_ok(), "{set:?} {byte:#x}");
            }
        }
        assert_eq!(
            encode(b"/a{b}|\"c[d]^e`f g", Set::RawPath),
            "/a{b}|\"c[d]^e%60f%20g"
        );
        assert_eq!(
            encode(b"a={}|^`&b=[]\"<>#", Set::RawQuery),
            "a={}|^`&b=[]%22%3C%3E%23"
        );
    }

    #[test]
    fn raw_encoding_keeps_escapes() {
        assert_eq!(encode(b"a=%20&b=c d\"", Set::Raw), "a=%20&b=c%20d%22");
    }
}
