//! Seeded property test: request → environ ([`EnvironBuilder`]) → request
//! ([`Environ::into_request`]) keeps the method, the app-relative URI, the version and the
//! headers, modulo the documented joins and drops.
//!
//! Deterministic: a small xorshift generator with a fixed seed drives every case, so a
//! failure names its case number and reproduces exactly.

use std::collections::BTreeMap;

use http::{HeaderValue, Method, Request, Version};
use towergate::environ::EnvironBuilder;
use towergate::ext::{FullUri, PathInfo, ScriptName};

const SEED: u64 = 0x05ee_d202_6c61_0001;
const CASES: usize = 600;

/// xorshift64* (Vigna), enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes `http` accepts unescaped in a path segment (no `/`, `?`, `#`, `%`).
const PATH_CHARS: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@\"{}|[]\\^";
/// Bytes `http` accepts unescaped in a query (no `#`, `%`).
const QUERY_CHARS: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@/?{}|[]\\^`";

/// One generated piece of a URI component: its raw (wire) form and its decoded bytes.
fn atom(rng: &mut Rng, chars: &[u8], raw: &mut Vec<u8>, decoded: &mut Vec<u8>) {
    match rng.below(10) {
        // A percent-escape of any byte, `%2F` and `%25` often, in either case.
        0..=2 => {
            let byte = match rng.below(4) {
                0 => b'/',
                1 => b'%',
                _ => rng.next() as u8,
            };
            let hex = if rng.chance(50) {
                format!("%{byte:02X}")
            } else {
                format!("%{byte:02x}")
            };
            raw.extend_from_slice(hex.as_bytes());
            decoded.push(byte);
        }
        // Raw UTF-8, which clients send and `http` accepts.
        3 => {
            let c = *rng.pick(&["é", "ü", "漢", "🦀"]);
            raw.extend_from_slice(c.as_bytes());
            decoded.extend_from_slice(c.as_bytes());
        }
        // A stray `%` that is not an escape stays as it is.
        4 if rng.chance(20) => {
            raw.extend_from_slice(b"%zz");
            decoded.extend_from_slice(b"%zz");
        }
        _ => {
            let byte = *rng.pick(chars);
            raw.push(byte);
            decoded.push(byte);
        }
    }
}

/// Escapes the bytes that `into_request` escapes in a raw component (non-ASCII), as
/// upper-case `%XX`: the one normalisation of the round trip.
fn normalise(raw: &[u8]) -> String {
    let mut out = String::new();
    for &b in raw {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Case {
    request: Request<()>,
    builder: EnvironBuilder,
    script: Vec<u8>,
    below_decoded: Vec<u8>,
    /// The app-relative URI expected back.
    uri: String,
    /// The full URI expected back (origin form).
    full_uri: String,
    /// The headers expected back: lower-case name → values.
    headers: BTreeMap<String, Vec<Vec<u8>>>,
}

fn generate(rng: &mut Rng) -> Case {
    let method = rng
        .pick(&[
            "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "PROPFIND", "X-CUSTOM",
        ])
        .to_string();
    let version = *rng.pick(&[
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ]);
    let (script_raw, script): (&str, &[u8]) = *rng.pick(&[
        ("", &b""[..]),
        ("", b""),
        ("/app", b"/app"),
        ("/cgi-bin/app", b"/cgi-bin/app"),
        ("/my%20app", b"/my app"),
        ("/caf%C3%A9", b"/caf\xc3\xa9"),
        ("/a/b/c", b"/a/b/c"),
    ]);

    // The path below the script name: "" (the mount point itself) or `/`-prefixed segments.
    let mut below_raw = Vec::new();
    let mut below_decoded = Vec::new();
    let segments = if script.is_empty() {
        1 + rng.below(4)
    } else {
        rng.below(5)
    };
    for _ in 0..segments {
        below_raw.push(b'/');
        below_decoded.push(b'/');
        for _ in 0..rng.below(6) {
            atom(rng, PATH_CHARS, &mut below_raw, &mut below_decoded);
        }
    }
    let query: Option<(Vec<u8>, Vec<u8>)> = match rng.below(4) {
        0 => None,
        1 => Some((Vec::new(), Vec::new())),
        _ => {
            let (mut raw, mut decoded) = (Vec::new(), Vec::new());
            for _ in 0..1 + rng.below(10) {
                atom(rng, QUERY_CHARS, &mut raw, &mut decoded);
            }
            Some((raw, decoded))
        }
    };

    let mut target = script_raw.as_bytes().to_vec();
    target.extend_from_slice(&below_raw);
    let path_raw = target.clone();
    if let Some((raw, _)) = &query {
        target.push(b'?');
        target.extend_from_slice(raw);
    }
    let absolute = rng.chance(15);
    let target = if absolute {
        [b"http://example.com:8080".as_slice(), &target].concat()
    } else {
        target
    };

    let query_raw = query.as_ref().map(|(raw, _)| raw.as_slice()).unwrap_or(b"");
    let with_query = |path: &[u8]| {
        let mut uri = normalise(path);
        if uri.is_empty() {
            uri.push('/');
        }
        if !query_raw.is_empty() {
            uri.push('?');
            uri.push_str(&normalise(query_raw));
        }
        uri
    };
    let uri = with_query(&below_raw);
    let full_uri = with_query(&path_raw);

    // Headers.
    let pass_authorization = rng.chance(30);
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(target)
        .version(version);
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let names = [
        "accept",
        "Accept-Language",
        "X-Mixed-CASE",
        "user-agent",
        "cookie",
        "x-forwarded-for",
        "content-type",
        "content-length",
        "authorization",
        "proxy",
        "proxy-authorization",
        "x_underscore",
        "host",
        "x-empty",
    ];
    let mut sent: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for _ in 0..rng.below(7) {
        let name = *rng.pick(&names);
        let lower = name.to_ascii_lowercase();
        let value: Vec<u8> = match lower.as_str() {
            // One valid length; a second one would be a different request.
            "content-length" if sent.contains_key("content-length") => continue,
            "content-length" => rng.below(100_000).to_string().into_bytes(),
            "x-empty" => Vec::new(),
            _ => (0..1 + rng.below(12))
                .map(|_| match rng.below(12) {
                    0 => b' ',
                    1 => b'\t',
                    2 => 0x80 + rng.below(0x80) as u8,
                    _ => *rng.pick(b"abcXYZ0189=;,/:.\"*"),
                })
                .collect(),
        };
        builder = builder.header(name, HeaderValue::from_bytes(&value).unwrap());
        sent.entry(lower).or_default().push(value);
    }
    for (name, values) in &sent {
        let kept = match name.as_str() {
            "proxy" | "proxy-authorization" | "x_underscore" => continue,
            "authorization" if !pass_authorization => continue,
            // CONTENT_TYPE / CONTENT_LENGTH hold the first value.
            "content-type" | "content-length" => values[0].clone(),
            _ => {
                let separator: &[u8] = if name == "cookie" { b"; " } else { b", " };
                values.join(separator)
            }
        };
        expected.insert(name.clone(), vec![kept]);
    }
    if absolute && !sent.contains_key("host") {
        expected.insert("host".into(), vec![b"example.com:8080".to_vec()]);
    }

    let mut env_builder = EnvironBuilder::new()
        .script_name(script)
        .pass_authorization(pass_authorization);
    if rng.chance(30) {
        env_builder = env_builder.remote_addr("192.0.2.1:4000".parse().unwrap());
    }
    Case {
        request: builder.body(()).unwrap(),
        builder: env_builder,
        script: script.to_vec(),
        below_decoded,
        uri,
        full_uri,
        headers: expected,
    }
}

#[test]
fn request_to_environ_to_request_keeps_method_uri_version_and_headers() {
    let mut rng = Rng(SEED);
    for n in 0..CASES {
        let case = generate(&mut rng);
        let context = format!("case {n}: {:?}", case.request);
        let environ = case.builder.build(&case.request);
        assert_eq!(
            environ.get("QUERY_STRING").unwrap_or_default(),
            case.request.uri().query().unwrap_or("").as_bytes(),
            "{context}"
        );
        assert_eq!(
            environ.get("SCRIPT_NAME"),
            Some(case.script.as_slice()),
            "{context}"
        );
        assert_eq!(
            environ.get("PATH_INFO"),
            Some(case.below_decoded.as_slice()),
            "{context}"
        );

        let back = environ
            .into_request()
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(back.method(), case.request.method(), "{context}");
        assert_eq!(back.version(), case.request.version(), "{context}");
        assert_eq!(back.uri().to_string(), case.uri, "{context}");
        assert_eq!(
            back.extensions().get::<FullUri>().unwrap().0.to_string(),
            case.full_uri,
            "{context}"
        );
        assert_eq!(
            back.extensions().get::<ScriptName>().unwrap().as_bytes(),
            case.script,
            "{context}"
        );
        assert_eq!(
            back.extensions().get::<PathInfo>().unwrap().as_bytes(),
            case.below_decoded,
            "{context}"
        );
        let mut headers: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (name, value) in back.headers() {
            headers
                .entry(name.as_str().to_owned())
                .or_default()
                .push(value.as_bytes().to_vec());
        }
        assert_eq!(headers, case.headers, "{context}");
    }
}

#[test]
fn the_generator_covers_the_interesting_cases() {
    // Guards the property test against a generator that drifts into trivial inputs.
    let mut rng = Rng(SEED);
    let (mut encoded_slash, mut non_ascii, mut repeated, mut mount_point, mut queries) =
        (0, 0, 0, 0, 0);
    for _ in 0..CASES {
        let case = generate(&mut rng);
        let target = case.request.uri().to_string();
        encoded_slash += usize::from(target.to_ascii_lowercase().contains("%2f"));
        non_ascii += usize::from(case.below_decoded.iter().any(|b| !b.is_ascii()));
        repeated += usize::from(
            case.request
                .headers()
                .keys()
                .any(|k| case.request.headers().get_all(k).iter().count() > 1),
        );
        mount_point += usize::from(case.below_decoded.is_empty());
        queries += usize::from(case.request.uri().query().is_some_and(|q| !q.is_empty()));
    }
    for (what, count) in [
        ("%2F in the path", encoded_slash),
        ("non-ASCII path bytes", non_ascii),
        ("repeated headers", repeated),
        ("requests for the mount point", mount_point),
        ("queries", queries),
    ] {
        assert!(count >= CASES / 20, "only {count} cases with {what}");
    }
}
