//! The request the benchmarks share: a browser-like request with 20 headers.

use http::Request;
use towergate::ext::ConnectInfo;

/// A browser-like `GET` of `target` with 20 headers and the connection's addresses.
pub(crate) fn browser_request(target: &str) -> Request<()> {
    let mut builder = Request::get(target)
        .header("host", "example.com:8080")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-US,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
        .header("connection", "keep-alive")
        .header("cookie", "session=abcdef0123456789")
        .header("cookie", "theme=dark")
        .header("upgrade-insecure-requests", "1")
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-user", "?1")
        .header("cache-control", "max-age=0")
        .header("referer", "http://example.com:8080/app/users/42")
        .header("dnt", "1")
        .header("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e")
        .header("x-forwarded-for", "192.0.2.1")
        .header(
            "if-none-match",
            "\"33a64df551425fcc55e4d42a148795d9f25f89d4\"",
        );
    builder = builder.header("te", "trailers");
    let mut request = builder.body(()).expect("valid request");
    request.extensions_mut().insert(ConnectInfo {
        remote: "192.0.2.7:50123".parse().expect("addr"),
        local: Some("127.0.0.1:8080".parse().expect("addr")),
    });
    request
}
