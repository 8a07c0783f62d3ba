//! The examples run by a real Apache httpd with `mod_cgid` (the configuration the
//! `towergate::cgi` docs show), over real HTTP/1.1 connections.

#[path = "support/apache.rs"]
mod apache_support;
mod support;

use apache_support::{Apache, WireResponse};
use support::example_bin;
use support::wire::post_request;

fn server() -> Apache {
    Apache::start(&[("cgi_axum", &example_bin("cgi_axum"))])
}

#[track_caller]
fn assert_ok(response: &WireResponse, server: &Apache) {
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
    let text = response.text();
    assert!(
        text.starts_with("method=GET\npath=/info\nquery=x=1\n"),
        "{text}"
    );
    for line in [
        "SCRIPT_NAME=/cgi-bin/cgi_axum",
        "PATH_INFO=/info",
        "QUERY_STRING=x=1",
        "REMOTE_ADDR=127.0.0.1",
        &format!("SERVER_PORT={}", server.port()),
        "SERVER_PROTOCOL=HTTP/1.1",
        "HTTPS=",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
}

#[test]
fn the_program_root_is_the_apps_root() {
    let server = server();
    for target in ["/cgi-bin/cgi_axum", "/cgi-bin/cgi_axum/"] {
        let response = server.get(target);
        assert_ok(&response, &server);
        assert_eq!(response.text(), "hello from axum over CGI", "{target}");
    }
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
fn a_panic_is_a_500_with_a_line_in_the_error_log() {
    let server = server();
    let response = server.get("/cgi-bin/cgi_axum/panic");
    assert_eq!(response.status(), 500, "{response:?}");
    assert_eq!(
        response.text(),
        "A server error occurred.  Please contact the administrator."
    );
    // Apache writes the programs' standard error to its ErrorLog; the line may land a
    // moment after the response.
    let mut log = String::new();
    for _ in 0..100 {
        log = server.error_log();
        if log.contains("towergate: service failed: panic: the /panic route panics on purpose") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no log line in Apache's error log:\n{log}");
}

#[test]
fn request_headers_reach_the_service_but_authorization_does_not() {
    // Without `CGIPassAuth On` (commented out in the documented configuration) Apache keeps
    // the Authorization header from the program.
    let server = server();
    let response = server.get_with(
        "/cgi-bin/cgi_axum/headers",
        "X-Test: one\r\nAuthorization: Basic dXNlcjpwYXNz\r\n",
    );
    assert_ok(&response, &server);
    let text = response.text();
    assert!(text.lines().any(|l| l == "x-test: one"), "{text}");
    assert!(
        text.contains(&format!("host: 127.0.0.1:{}\n", server.port())),
        "{text}"
    );
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
}
