//! Content-type sniffing: the WHATWG MIME Sniffing rules (mimesniff.spec.whatwg.org, §7.1
//! "Identifying a resource with an unknown MIME type"), as Go's `http.DetectContentType`
//! applies them.
//!
//! RFC 3875 §6.3.1: "If an entity body is returned, the script MUST supply a Content-Type
//! field". A tower service need not set one (hyper does not require it), so a transport whose
//! protocol requires it (CGI, FastCGI) names the body's type from its first bytes, as Go's
//! `net/http` does for a handler that wrote a body without one.

/// How many bytes of the body the decision uses.
const SNIFF_LEN: usize = 512;

enum Sig {
    /// An HTML tag, case-insensitive, after leading whitespace, followed by a space or `>`.
    Html(&'static [u8]),
    /// A prefix, byte for byte.
    Exact(&'static [u8], &'static str),
    /// `data[i] & mask[i] == pattern[i]`, optionally after leading whitespace.
    Masked {
        mask: &'static [u8],
        pattern: &'static [u8],
        skip_ws: bool,
        ct: &'static str,
    },
    /// The ISO base media `ftyp` box naming an `mp4` brand.
    Mp4,
}

const HTML: &str = "text/html; charset=utf-8";

const SIGNATURES: &[Sig] = &[
    Sig::Html(b"<!DOCTYPE HTML"),
    Sig::Html(b"<HTML"),
    Sig::Html(b"<HEAD"),
    Sig::Html(b"<SCRIPT"),
    Sig::Html(b"<IFRAME"),
    Sig::Html(b"<H1"),
    Sig::Html(b"<DIV"),
    Sig::Html(b"<FONT"),
    Sig::Html(b"<TABLE"),
    Sig::Html(b"<A"),
    Sig::Html(b"<STYLE"),
    Sig::Html(b"<TITLE"),
    Sig::Html(b"<B"),
    Sig::Html(b"<BODY"),
    Sig::Html(b"<BR"),
    Sig::Html(b"<P"),
    Sig::Html(b"<!--"),
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\xFF\xFF",
        pattern: b"<?xml",
        skip_ws: true,
        ct: "text/xml; charset=utf-8",
    },
    Sig::Exact(b"%PDF-", "application/pdf"),
    Sig::Exact(b"%!PS-Adobe-", "application/postscript"),
    // Byte order marks.
    Sig::Masked {
        mask: b"\xFF\xFF\x00\x00",
        pattern: b"\xFE\xFF\x00\x00",
        skip_ws: false,
        ct: "text/plain; charset=utf-16be",
    },
    Sig::Masked {
        mask: b"\xFF\xFF\x00\x00",
        pattern: b"\xFF\xFE\x00\x00",
        skip_ws: false,
        ct: "text/plain; charset=utf-16le",
    },
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\x00",
        pattern: b"\xEF\xBB\xBF\x00",
        skip_ws: false,
        ct: "text/plain; charset=utf-8",
    },
    // Images.
    Sig::Exact(b"\x00\x00\x01\x00", "image/x-icon"),
    Sig::Exact(b"\x00\x00\x02\x00", "image/x-icon"),
    Sig::Exact(b"BM", "image/bmp"),
    Sig::Exact(b"GIF87a", "image/gif"),
    Sig::Exact(b"GIF89a", "image/gif"),
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF",
        pattern: b"RIFF\x00\x00\x00\x00WEBPVP",
        skip_ws: false,
        ct: "image/webp",
    },
    Sig::Exact(b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
    Sig::Exact(b"\xFF\xD8\xFF", "image/jpeg"),
    // Audio and video.
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        pattern: b"FORM\x00\x00\x00\x00AIFF",
        skip_ws: false,
        ct: "audio/aiff",
    },
    Sig::Exact(b"ID3", "audio/mpeg"),
    Sig::Exact(b"OggS\x00", "application/ogg"),
    Sig::Exact(b"MThd\x00\x00\x00\x06", "audio/midi"),
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        pattern: b"RIFF\x00\x00\x00\x00AVI ",
        skip_ws: false,
        ct: "video/avi",
    },
    Sig::Masked {
        mask: b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        pattern: b"RIFF\x00\x00\x00\x00WAVE",
        skip_ws: false,
        ct: "audio/wave",
    },
    Sig::Mp4,
    Sig::Exact(b"\x1A\x45\xDF\xA3", "video/webm"),
    // Fonts.
    Sig::Exact(b"\x00\x01\x00\x00", "font/ttf"),
    Sig::Exact(b"OTTO", "font/otf"),
    Sig::Exact(b"ttcf", "font/collection"),
    Sig::Exact(b"wOFF", "font/woff"),
    Sig::Exact(b"wOF2", "font/woff2"),
    // Archives.
    Sig::Exact(b"\x1F\x8B\x08", "application/x-gzip"),
    Sig::Exact(b"PK\x03\x04", "application/zip"),
    Sig::Exact(b"Rar!\x1A\x07\x00", "application/x-rar-compressed"),
    Sig::Exact(b"Rar!\x1A\x07\x01\x00", "application/x-rar-compressed"),
    Sig::Exact(b"\x00asm", "application/wasm"),
];

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

impl Sig {
    fn matches(&self, data: &[u8], text: &[u8]) -> Option<&'static str> {
        match *self {
            Sig::Html(tag) => {
                let next = *text.get(tag.len())?;
                let same = tag.iter().zip(text).all(|(&t, &d)| {
                    if t.is_ascii_uppercase() {
                        d & 0xDF == t
                    } else {
                        d == t
                    }
                });
                (same && (next == b' ' || next == b'>')).then_some(HTML)
            }
            Sig::Exact(prefix, ct) => data.starts_with(prefix).then_some(ct),
            Sig::Masked {
                mask,
                pattern,
                skip_ws,
                ct,
            } => {
                let data = if skip_ws { text } else { data };
                let head = data.get(..mask.len())?;
                head.iter()
                    .zip(mask)
                    .zip(pattern)
                    .all(|((&d, &m), &p)| d & m == p)
                    .then_some(ct)
            }
            Sig::Mp4 => {
                let size = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
                if data.len() < 12 || size % 4 != 0 || data.len() < size || &data[4..8] != b"ftyp" {
                    return None;
                }
                (8..size)
                    .step_by(4)
                    .filter(|&at| at != 12)
                    .any(|at| data.get(at..at + 3) == Some(b"mp4"))
                    .then_some("video/mp4")
            }
        }
    }
}

/// The MIME type of a body that begins with `data` (at most its first 512 bytes are read):
/// a type from the signature table, else `text/plain; charset=utf-8` when no binary byte
/// is present, else `application/octet-stream`.
pub(crate) fn sniff(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(SNIFF_LEN)];
    let first_non_ws = data.iter().position(|&b| !is_ws(b)).unwrap_or(data.len());
    let text = &data[first_non_ws..];
    if let Some(ct) = SIGNATURES.iter().find_map(|sig| sig.matches(data, text)) {
        return ct;
    }
    let binary = text
        .iter()
        .any(|&b| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn common_bodies_get_gos_types() {
        // The cases of Go's net/http sniff_test.go that this table covers.
        let cases: &[(&[u8], &str)] = &[
            (b"", "text/plain; charset=utf-8"),
            (b"Hello, world!", "text/plain; charset=utf-8"),
            (b"\x01\x02\x03", "application/octet-stream"),
            (b"  <!DOCTYPE HTML>...", "text/html; charset=utf-8"),
            (b"\n<html><head>", "text/html; charset=utf-8"),
            (b"<HtMl ", "text/html; charset=utf-8"),
            (b"<html", "text/plain; charset=utf-8"),
            (b"<p>a", "text/html; charset=utf-8"),
            (b"\n <?xml!", "text/xml; charset=utf-8"),
            (b"%PDF-1.4", "application/pdf"),
            (b"\xEF\xBB\xBFabc", "text/plain; charset=utf-8"),
            (b"GIF89a...", "image/gif"),
            (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
            (b"\xFF\xD8\xFF\xE0", "image/jpeg"),
            (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
            (b"\x1F\x8B\x08\x00", "application/x-gzip"),
            (b"PK\x03\x04", "application/zip"),
            (b"\x00asm\x01\x00", "application/wasm"),
            (
                b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom<\x06t\xbfmdat",
                "video/mp4",
            ),
            (b"{\"json\": true}", "text/plain; charset=utf-8"),
        ];
        for (data, want) in cases {
            assert_eq!(sniff(data), *want, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn only_the_first_512_bytes_count() {
        let mut data = vec![b'a'; 512];
        data.push(0x01);
        assert_eq!(sniff(&data), "text/plain; charset=utf-8");
    }
}
