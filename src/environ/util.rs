//! The `wsgiref.util` helpers, over bytes.

use bytes::Bytes;

use super::Environ;
use crate::percent::{self, Set};

/// Whether an `HTTPS` value means TLS: `on`, `1` or `yes`, in any case.
pub fn is_truthy(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"on") || value == b"1" || value.eq_ignore_ascii_case(b"yes")
}

/// `https` when `HTTPS` is truthy (`on`, `1`, `yes`, any case), else `http`
/// (`wsgiref.util.guess_scheme`).
///
/// ```
/// use towergate::environ::guess_scheme;
/// use towergate::Environ;
///
/// assert_eq!(guess_scheme(&Environ::from_vars([("HTTPS", "Yes")])), "https");
/// assert_eq!(guess_scheme(&Environ::from_vars([("HTTPS", "off")])), "http");
/// assert_eq!(guess_scheme(&Environ::new()), "http");
/// ```
pub fn guess_scheme(environ: &Environ) -> &'static str {
    if environ.get("HTTPS").is_some_and(is_truthy) {
        "https"
    } else {
        "http"
    }
}

/// The URI of the application's root: scheme, `HTTP_HOST` (or `SERVER_NAME` and a
/// non-default `SERVER_PORT`), and the percent-encoded `SCRIPT_NAME`, `/` when it is empty
/// (`wsgiref.util.application_uri`, PEP 3333 "URL Reconstruction").
///
/// ```
/// use towergate::environ::application_uri;
/// use towergate::Environ;
///
/// let environ = Environ::from_vars([
///     ("SERVER_NAME", "example.com"),
///     ("SERVER_PORT", "8080"),
///     ("SCRIPT_NAME", "/my app"),
/// ]);
/// assert_eq!(application_uri(&environ), "http://example.com:8080/my%20app");
/// ```
pub fn application_uri(environ: &Environ) -> String {
    let scheme = guess_scheme(environ);
    let mut uri = Vec::with_capacity(64);
    uri.extend_from_slice(scheme.as_bytes());
    uri.extend_from_slice(b"://");
    match environ.get("HTTP_HOST").filter(|h| !h.is_empty()) {
        Some(host) => percent::encode_into(host, Set::Raw, &mut uri),
        None => {
            percent::encode_into(
                environ.get("SERVER_NAME").unwrap_or_default(),
                Set::Raw,
                &mut uri,
            );
            let port = environ.get("SERVER_PORT").unwrap_or_default();
            let default: &[u8] = if scheme == "https" { b"443" } else { b"80" };
            if !port.is_empty() && port != default {
                uri.push(b':');
                percent::encode_into(port, Set::Raw, &mut uri);
            }
        }
    }
    match environ.get("SCRIPT_NAME").filter(|s| !s.is_empty()) {
        Some(script) => percent::encode_into(script, Set::Path, &mut uri),
        None => uri.push(b'/'),
    }
    // Only ASCII was pushed.
    String::from_utf8(uri).unwrap_or_default()
}

/// The full request URI: [`application_uri`], the percent-encoded `PATH_INFO`, and
/// `?QUERY_STRING` when `include_query` and the query is not empty
/// (`wsgiref.util.request_uri`).
///
/// ```
/// use towergate::environ::request_uri;
/// use towergate::Environ;
///
/// let environ = Environ::from_vars([
///     ("HTTP_HOST", "example.com"),
///     ("SCRIPT_NAME", ""),
///     ("PATH_INFO", "/a b;c"),
///     ("QUERY_STRING", "x=1"),
/// ]);
/// assert_eq!(request_uri(&environ, true), "http://example.com/a%20b;c?x=1");
/// assert_eq!(request_uri(&environ, false), "http://example.com/a%20b;c");
/// ```
pub fn request_uri(environ: &Environ, include_query: bool) -> String {
    let mut uri = application_uri(environ).into_bytes();
    let info = environ.get("PATH_INFO").unwrap_or_default();
    let info = if environ.get("SCRIPT_NAME").is_none_or(<[u8]>::is_empty) {
        info.strip_prefix(b"/").unwrap_or(info)
    } else {
        info
    };
    percent::encode_into(info, Set::Path, &mut uri);
    if include_query {
        if let Some(query) = environ.get("QUERY_STRING").filter(|q| !q.is_empty()) {
            uri.push(b'?');
            percent::encode_into(query, Set::RawQuery, &mut uri);
        }
    }
    String::from_utf8(uri).unwrap_or_default()
}

/// Moves the first segment of `PATH_INFO` to the end of `SCRIPT_NAME` and returns it
/// (`wsgiref.util.shift_path_info`), for dispatching to nested apps.
///
/// Empty and `.` segments inside the path are dropped (a trailing empty one is kept, so
/// `/a/` shifts `a` and leaves `PATH_INFO` `/`); `SCRIPT_NAME` is normalised, so `..` removes
/// its last segment. Returns `None`, changing nothing, when `PATH_INFO` is empty, and `None`
/// after the shift when the segment was `.`.
///
/// ```
/// use towergate::environ::shift_path_info;
/// use towergate::Environ;
///
/// let mut environ = Environ::from_vars([("SCRIPT_NAME", "/app"), ("PATH_INFO", "/users/7")]);
/// assert_eq!(shift_path_info(&mut environ).as_deref(), Some(&b"users"[..]));
/// assert_eq!(environ.get("SCRIPT_NAME"), Some(&b"/app/users"[..]));
/// assert_eq!(environ.get("PATH_INFO"), Some(&b"/7"[..]));
/// ```
pub fn shift_path_info(environ: &mut Environ) -> Option<Bytes> {
    let info = environ.get_bytes("PATH_INFO").filter(|i| !i.is_empty())?;
    let parts: Vec<&[u8]> = info.split(|&b| b == b'/').collect();
    // parts[0] is what precedes the first `/` (empty for a well-formed PATH_INFO); the
    // segments between the first and the last drop empty and `.` ones.
    let (name, rest): (&[u8], Vec<&[u8]>) = match parts.as_slice() {
        [only] => (only, Vec::new()),
        [first, middle @ .., last] => {
            let mut kept: Vec<&[u8]> = middle
                .iter()
                .copied()
                .filter(|p| !p.is_empty() && *p != b".")
                .collect();
            kept.push(last);
            let name = kept.remove(0);
            kept.insert(0, first);
            (name, kept)
        }
        [] => return None,
    };

    // SCRIPT_NAME = normpath(SCRIPT_NAME + "/" + name), trailing `/` trimmed.
    let script = environ.get("SCRIPT_NAME").unwrap_or_default();
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in script.split(|&b| b == b'/').chain([name]) {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut new_script = Vec::with_capacity(script.len() + name.len() + 2);
    for segment in &segments {
        new_script.push(b'/');
        new_script.extend_from_slice(segment);
    }
    if name.is_empty() {
        new_script.push(b'/');
    }
    let new_info = rest.join(&b'/');
    let name = Bytes::copy_from_slice(name);
    environ.insert("SCRIPT_NAME", new_script);
    environ.insert("PATH_INFO", new_info);
    (name != ".").then_some(name)
}

/// Fills in what a test request needs and is missing (`wsgiref.util.setup_testing_defaults`):
/// `SERVER_NAME` `127.0.0.1`, `SERVER_PROTOCOL` `HTTP/1.0`, `HTTP_HOST` (the server name),
/// `REQUEST_METHOD` `GET`, `SCRIPT_NAME` `""` and `PATH_INFO` `/` when neither is set,
/// `SERVER_PORT` `80` or `443`, and `url_scheme` from `HTTPS`.
///
/// ```
/// use towergate::environ::setup_testing_defaults;
/// use towergate::Environ;
///
/// let mut environ = Environ::new();
/// setup_testing_defaults(&mut environ);
/// assert_eq!(environ.get_str("HTTP_HOST"), Some("127.0.0.1"));
/// assert_eq!(environ.get_str("PATH_INFO"), Some("/"));
/// assert_eq!(environ.get_str("SERVER_PORT"), Some("80"));
/// ```
pub fn setup_testing_defaults(environ: &mut Environ) {
    let name = Bytes::copy_from_slice(environ.set_default("SERVER_NAME", "127.0.0.1"));
    environ.set_default("SERVER_PROTOCOL", "HTTP/1.0");
    environ.set_default("HTTP_HOST", name);
    environ.set_default("REQUEST_METHOD", "GET");
    if !environ.contains_key("SCRIPT_NAME") && !environ.contains_key("PATH_INFO") {
        environ.insert("SCRIPT_NAME", "");
        environ.insert("PATH_INFO", "/");
    }
    let https = guess_scheme(environ) == "https";
    environ.set_url_scheme(if https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    environ.set_default("SERVER_PORT", if https { "443" } else { "80" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shifted(script: &str, info: &str) -> (Option<String>, String, String) {
        let mut environ = Environ::from_vars([
            ("SCRIPT_NAME", script.to_owned()),
            ("PATH_INFO", info.to_owned()),
        ]);
        let name = shift_path_info(&mut environ).map(|n| String::from_utf8(n.to_vec()).unwrap());
        (
            name,
            environ.get_str("SCRIPT_NAME").unwrap().to_owned(),
            environ.get_str("PATH_INFO").unwrap().to_owned(),
        )
    }

    #[track_caller]
    fn check_shift(script: &str, info: &str, name: Option<&str>, new_script: &str, rest: &str) {
        assert_eq!(
            shifted(script, info),
            (
                name.map(str::to_owned),
                new_script.to_owned(),
                rest.to_owned()
            ),
            "shift_path_info(SCRIPT_NAME={script:?}, PATH_INFO={info:?})"
        );
    }

    #[test]
    fn shift_path_info_moves_one_segment_as_wsgiref_does() {
        // wsgiref's own test cases (test_wsgiref testSimpleShifts).
        check_shift("", "/", Some(""), "/", "");
        check_shift("", "/x", Some("x"), "/x", "");
        check_shift("/", "", None, "/", "");
        check_shift("/a", "/x/y", Some("x"), "/a/x", "/y");
        check_shift("/a", "/x/", Some("x"), "/a/x", "/");
        check_shift("/a", "/b", Some("b"), "/a/b", "");
    }

    #[test]
    fn shift_path_info_normalises_as_wsgiref_does() {
        // wsgiref's own test cases (test_wsgiref testNormalizedShifts).
        check_shift("/a/b", "/../y", Some(".."), "/a", "/y");
        check_shift("", "/../y", Some(".."), "", "/y");
        check_shift("/a/b", "//y", Some("y"), "/a/b/y", "");
        check_shift("/a/b", "//y/", Some("y"), "/a/b/y", "/");
        check_shift("/a/b", "/./y", Some("y"), "/a/b/y", "");
        check_shift("/a/b", "/./y/", Some("y"), "/a/b/y", "/");
        check_shift("/a/b", "///./..//y/.//", Some(".."), "/a", "/y/");
        check_shift("/a/b", "///", Some(""), "/a/b/", "");
        check_shift("/a/b", "/.//", Some(""), "/a/b/", "");
        check_shift("/a/b", "/x//", Some("x"), "/a/b/x", "/");
        check_shift("/a/b", "/.", None, "/a/b", "");
    }

    #[test]
    fn shift_path_info_on_an_empty_path_changes_nothing() {
        let mut environ = Environ::from_vars([("SCRIPT_NAME", "/app")]);
        assert_eq!(shift_path_info(&mut environ), None);
        assert_eq!(environ.get_str("SCRIPT_NAME"), Some("/app"));
        assert!(!environ.contains_key("PATH_INFO"));
    }

    #[test]
    fn shift_path_info_keeps_bytes_that_are_not_utf8() {
        let mut environ = Environ::from_vars([
            (&b"SCRIPT_NAME"[..], &b"/\xfe"[..]),
            (b"PATH_INFO", b"/\xff/z"),
        ]);
        assert_eq!(shift_path_info(&mut environ).as_deref(), Some(&b"\xff"[..]));
        assert_eq!(environ.get("SCRIPT_NAME"), Some(&b"/\xfe/\xff"[..]));
        assert_eq!(environ.get("PATH_INFO"), Some(&b"/z"[..]));
    }

    /// Meta-variables for [`testing`]: `None` is Python's `None`.
    type Vars<'a> = &'a [(&'a str, Option<&'a [u8]>)];

    /// wsgiref's test helper: `vars` (`None` is Python's `None`: set, but empty), then
    /// `setup_testing_defaults`.
    fn testing(vars: Vars<'_>) -> Environ {
        let mut environ = Environ::from_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v.unwrap_or_default()))),
        );
        setup_testing_defaults(&mut environ);
        environ
    }

    #[test]
    fn application_uri_matches_wsgiref() {
        // wsgiref's own test cases (test_wsgiref testAppURIs).
        let cases: [(&str, Vars<'_>); 8] = [
            ("http://127.0.0.1/", &[]),
            ("http://127.0.0.1/spam", &[("SCRIPT_NAME", Some(b"/spam"))]),
            (
                "http://127.0.0.1/sp%E4m",
                &[("SCRIPT_NAME", Some(b"/sp\xe4m"))],
            ),
            (
                "http://spam.example.com:2071/",
                &[
                    ("HTTP_HOST", Some(b"spam.example.com:2071")),
                    ("SERVER_PORT", Some(b"2071")),
                ],
            ),
            (
                "http://spam.example.com/",
                &[
                    ("SERVER_NAME", Some(b"spam.example.com")),
                    ("HTTP_HOST", None),
                ],
            ),
            (
                "http://127.0.0.1/",
                &[
                    ("HTTP_HOST", Some(b"127.0.0.1")),
                    ("SERVER_NAME", Some(b"spam.example.com")),
                ],
            ),
            ("https://127.0.0.1/", &[("HTTPS", Some(b"on"))]),
            (
                "http://127.0.0.1:8000/",
                &[("SERVER_PORT", Some(b"8000")), ("HTTP_HOST", None)],
            ),
        ];
        for (expected, vars) in cases {
            assert_eq!(application_uri(&testing(vars)), expected, "{vars:?}");
        }
    }

    #[test]
    fn application_uri_leaves_out_only_the_default_port_of_the_scheme() {
        let uri = |vars: &[(&str, &str)]| {
            application_uri(&Environ::from_vars(
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            ))
        };
        let server = [("SERVER_NAME", "example.com")];
        assert_eq!(
            uri(&[server[0], ("SERVER_PORT", "80")]),
            "http://example.com/"
        );
        assert_eq!(
            uri(&[server[0], ("SERVER_PORT", "443")]),
            "http://example.com:443/"
        );
        assert_eq!(
            uri(&[server[0], ("SERVER_PORT", "443"), ("HTTPS", "on")]),
            "https://example.com/"
        );
        assert_eq!(
            uri(&[server[0], ("SERVER_PORT", "80"), ("HTTPS", "1")]),
            "https://example.com:80/"
        );
        assert_eq!(uri(&[server[0]]), "http://example.com/");
        // HTTP_HOST wins over SERVER_NAME and SERVER_PORT, whatever its port.
        assert_eq!(
            uri(&[
                server[0],
                ("SERVER_PORT", "8080"),
                ("HTTP_HOST", "www.example.com:80")
            ]),
            "http://www.example.com:80/"
        );
        // An empty HTTP_HOST does not count.
        assert_eq!(uri(&[server[0], ("HTTP_HOST", "")]), "http://example.com/");
        // IPv6 keeps its brackets.
        assert_eq!(
            uri(&[("SERVER_NAME", "[::1]"), ("SERVER_PORT", "8080")]),
            "http://[::1]:8080/"
        );
    }

    #[test]
    fn request_uri_matches_wsgiref() {
        // wsgiref's own test cases (test_wsgiref testReqURIs).
        let cases: [(&str, bool, Vars<'_>); 10] = [
            ("http://127.0.0.1/", true, &[]),
            (
                "http://127.0.0.1/spam",
                true,
                &[("SCRIPT_NAME", Some(b"/spam"))],
            ),
            (
                "http://127.0.0.1/sp%E4m",
                true,
                &[("SCRIPT_NAME", Some(b"/sp\xe4m"))],
            ),
            (
                "http://127.0.0.1/spammity/spam",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/sp%E4m",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/sp\xe4m")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/spam;ham",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam;ham")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/spam;cookie=1234,5678",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam;cookie=1234,5678")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/spam?say=ni",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam")),
                    ("QUERY_STRING", Some(b"say=ni")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/spam?s%E4y=ni",
                true,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam")),
                    ("QUERY_STRING", Some(b"s%E4y=ni")),
                ],
            ),
            (
                "http://127.0.0.1/spammity/spam",
                false,
                &[
                    ("SCRIPT_NAME", Some(b"/spammity")),
                    ("PATH_INFO", Some(b"/spam")),
                    ("QUERY_STRING", Some(b"say=ni")),
                ],
            ),
        ];
        for (expected, query, vars) in cases {
            assert_eq!(request_uri(&testing(vars), query), expected, "{vars:?}");
        }
    }

    #[test]
    fn request_uri_quotes_what_a_path_cannot_hold() {
        let environ = Environ::from_vars([
            (&b"HTTP_HOST"[..], &b"example.com"[..]),
            (b"SCRIPT_NAME", b"/a b"),
            (b"PATH_INFO", b"/%/?/#/\xff"),
            (b"QUERY_STRING", b"x=\xff y"),
        ]);
        assert_eq!(
            request_uri(&environ, true),
            "http://example.com/a%20b/%25/%3F/%23/%FF?x=%FF%20y"
        );
    }

    #[test]
    fn guess_scheme_accepts_on_1_and_yes_in_any_case() {
        for value in ["on", "ON", "oN", "1", "yes", "Yes", "YES"] {
            assert_eq!(
                guess_scheme(&Environ::from_vars([("HTTPS", value)])),
                "https"
            );
            assert!(is_truthy(value.as_bytes()));
        }
        for value in ["off", "0", "no", "", "foo", "true", "on "] {
            assert_eq!(
                guess_scheme(&Environ::from_vars([("HTTPS", value)])),
                "http"
            );
        }
    }

    #[test]
    fn setup_testing_defaults_fills_what_wsgiref_fills() {
        let mut environ = Environ::new();
        setup_testing_defaults(&mut environ);
        let vars: Vec<(&str, &str)> = environ
            .iter()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).unwrap(),
                    std::str::from_utf8(v).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            vars,
            [
                ("SERVER_NAME", "127.0.0.1"),
                ("SERVER_PROTOCOL", "HTTP/1.0"),
                ("HTTP_HOST", "127.0.0.1"),
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", ""),
                ("PATH_INFO", "/"),
                ("SERVER_PORT", "80"),
            ]
        );
        assert_eq!(environ.url_scheme(), "http");
        assert!(!environ.run_once() && !environ.multithread() && !environ.multiprocess());
    }

    #[test]
    fn setup_testing_defaults_cross_defaults_match_wsgiref() {
        // wsgiref's own test cases (test_wsgiref testCrossDefaults).
        let with = |key: &str, value: &str| {
            let mut environ = Environ::from_vars([(key.to_owned(), value.to_owned())]);
            setup_testing_defaults(&mut environ);
            environ
        };
        assert_eq!(
            with("SERVER_NAME", "foo.bar").get_str("HTTP_HOST"),
            Some("foo.bar")
        );
        assert_eq!(with("HTTPS", "on").url_scheme(), "https");
        assert_eq!(with("HTTPS", "1").url_scheme(), "https");
        assert_eq!(with("HTTPS", "yes").url_scheme(), "https");
        assert_eq!(with("HTTPS", "foo").url_scheme(), "http");
        assert_eq!(with("HTTPS", "foo").get_str("SERVER_PORT"), Some("80"));
        assert_eq!(with("HTTPS", "on").get_str("SERVER_PORT"), Some("443"));
        // PATH_INFO is defaulted only when SCRIPT_NAME is unset too.
        assert!(!with("SCRIPT_NAME", "/app").contains_key("PATH_INFO"));
        // Values that are set are kept.
        assert_eq!(
            with("REQUEST_METHOD", "POST").get_str("REQUEST_METHOD"),
            Some("POST")
        );
    }
}
