//! The examples run by a real web server: lighttpd with `mod_cgi` (the configuration the
//! `towergate::cgi` docs show), over real HTTP/1.1 connections.

mod support;

use support::example_bin;
use support::lighttpd::{Lighttpd, WireResponse};
use support::wire::post_request;

fn server() -> Lighttpd {
    Lighttpd::start(&[("cgi_axum", &example_bin("cgi_axum"))])
}

#[track_caller]
fn assert_ok(response: &WireResponse, server: &Lighttpd) {
    assert_eq!(
        response.status(),
        200,
        "{response:?}\nerror log:\n{}",
        server.error_log()
    );
}

#[test]
fn get_with_path_info_and_query_sees_the_meta_variables() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/info?x=1");
    assert_ok(&response, &server);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        response.text(),
        format!(
            "method=GET\npath=/info\nquery=x=1\nSCRIPT_NAME=/cgi-bin/cgi_axum\nPATH_INFO=/info\n\
             QUERY_STRING=x=1\nREMOTE_ADDR=127.0.0.1\nSERVER_NAME=127.0.0.1\nSERVER_PORT={}\n\
             SERVER_PROTOCOL=HTTP/1.1\nHTTPS=\n",
            server.port()
        )
    );
}

#[test]
fn the_program_root_is_the_apps_root() {
    let server = server();
    for target in ["/cgi-bin/cgi_axum", "/cgi-bin/cgi_axum/"] {
        let response = server.get(target);
        assert_ok(&response, &server);
        assert_eq!(response.text(), "hello from axum over CGI", "{target}");
        assert_eq!(response.header("content-length"), Some("24"));
    }
}

#[test]
fn head_gets_the_head_and_no_body() {
    let server = server();
    let response = server.send(
        format!(
            "HEAD /cgi-bin/cgi_axum/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            server.port()
        )
        .as_bytes(),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("content-length"), Some("24"));
    assert!(response.body.is_empty(), "{response:?}");
}

#[test]
fn post_is_echoed_byte_for_byte() {
    let server = server();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let request = post_request(
        server.port(),
        "/cgi-bin/cgi_axum/echo",
        "application/octet-stream",
        &body,
    );
    let response = server.send(&request);
    assert_ok(&response, &server);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "body differs");
}

#[test]
fn a_chunked_post_reaches_the_program_with_its_length() {
    let server = server();
    let request = format!(
        "POST /cgi-bin/cgi_axum/echo HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        server.port()
    );
    let response = server.send(request.as_bytes());
    assert_ok(&response, &server);
    assert_eq!(response.text(), "hello world");
}

#[test]
fn two_set_cookie_headers_reach_the_client() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/cookies");
    assert_ok(&response, &server);
    assert_eq!(response.header_all("set-cookie"), ["a=1", "b=2"]);
    assert!(response.body.is_empty());
}

#[test]
fn a_custom_status_reaches_the_client() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/status/418");
    assert_eq!(response.status(), 418, "{response:?}");
    assert!(response.body.is_empty());
}

#[test]
fn a_redirect_reaches_the_client() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/redirect");
    assert_eq!(response.status(), 302, "{response:?}");
    assert_eq!(response.header("location"), Some("/"));
}

#[test]
fn request_headers_reach_the_service() {
    let server = server();
    let response = server.send(
        format!(
            "GET /cgi-bin/cgi_axum/headers HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             X-Test: one\r\nUser-Agent: towergate-test\r\n\r\n",
            server.port()
        )
        .as_bytes(),
    );
    assert_ok(&response, &server);
    let text = response.text();
    assert!(text.contains("\nx-test: one\n"), "{text}");
    assert!(text.contains("\nuser-agent: towergate-test\n"), "{text}");
    assert!(
        text.contains(&format!("host: 127.0.0.1:{}\n", server.port())),
        "{text}"
    );
}

#[test]
fn a_streamed_response_arrives_whole() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/stream?n=5&bytes=10000");
    assert_ok(&response, &server);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.body, vec![b'x'; 50_000]);
    // The program sent no length: lighttpd frames it with chunks, or with the length it
    // saw when the program had finished before the head went out (both are checked).
}

#[test]
fn a_long_streamed_response_is_sent_chunked() {
    let server = server();
    // Larger than a pipe's buffer: the program is still writing when lighttpd sends the
    // head, so lighttpd cannot know the length and must use chunked transfer coding.
    let response = server.get("/cgi-bin/cgi_axum/stream?n=20&bytes=100000");
    assert_ok(&response, &server);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert!(response.header("content-length").is_none());
    assert!(
        response.chunks.is_some_and(|n| n > 1),
        "{:?}",
        response.chunks
    );
    assert_eq!(response.body, vec![b'x'; 2_000_000]);
}

#[test]
fn a_panic_is_a_500_with_a_line_in_the_error_log() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/panic");
    assert_eq!(response.status(), 500, "{response:?}");
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(
        response.text(),
        "A server error occurred.  Please contact the administrator."
    );
    // lighttpd writes the programs' standard error to its `server.breakagelog`; the line
    // may land a moment after the response.
    let mut log = String::new();
    for _ in 0..100 {
        log = server.error_log();
        if log.contains("towergate: service failed: panic: the /panic route panics on purpose") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no log line in lighttpd's error log:\n{log}");
}

#[test]
fn a_path_lighttpd_normalised_is_routed_by_its_path_info() {
    // lighttpd resolves `.`, `..` and `//` before it splits off PATH_INFO, so REQUEST_URI no
    // longer matches SCRIPT_NAME + PATH_INFO and the service gets the decoded PATH_INFO.
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/./x/..//info?x=%2F");
    assert_ok(&response, &server);
    let text = response.text();
    assert!(
        text.starts_with("method=GET\npath=/info\nquery=x=%2F\n"),
        "{text}"
    );
    assert!(text.contains("\nPATH_INFO=/info\n"), "{text}");
}
