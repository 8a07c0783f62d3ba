//! The `gateway_cgi` example executed as a real CGI process: every path of the contract,
//! exact standard output, exit status and standard-error line.

mod support;

use std::process::Output;

const ERROR_PAGE: &[u8] = b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 59\r\n\r\nA server error occurred.  Please contact the administrator.";

fn run(path: &str) -> Output {
    run_with(path, &[])
}

fn run_with(path: &str, extra: &[(&str, &[u8])]) -> Output {
    let program = support::example_bin("gateway_cgi");
    let mut env: Vec<(&str, &[u8])> = vec![
        ("REQUEST_METHOD", b"GET"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SERVER_NAME", b"localhost"),
        ("SERVER_PORT", b"80"),
        ("SCRIPT_NAME", b"/cgi-bin/gateway"),
        ("PATH_INFO", path.as_bytes()),
        ("QUERY_STRING", b""),
    ];
    env.extend_from_slice(extra);
    support::run_cgi(&program, &env, b"")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output, stdout: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(stdout)
    );
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn hello_is_one_chunk_with_a_length() {
    let output = run("/hello");
    assert_ok(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!",
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn two_chunks_are_streamed_without_a_length() {
    assert_ok(
        &run("/chunks"),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nabcd",
    );
}

#[test]
fn empty_body_gets_content_length_zero() {
    assert_ok(
        &run("/empty"),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    );
}

#[test]
fn write_output_precedes_the_returned_chunks() {
    assert_ok(
        &run("/write"),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nvia-write+iter",
    );
}

#[test]
fn start_response_twice_gives_the_error_page_and_a_log_line() {
    let output = run("/start-twice");
    assert_ok(&output, ERROR_PAGE);
    assert_eq!(
        stderr(&output),
        "towergate: app failed: start_response: called twice without an error (headers already set)\n"
    );
}

#[test]
fn hop_by_hop_header_gives_the_error_page() {
    let output = run("/hop");
    assert_ok(&output, ERROR_PAGE);
    assert_eq!(
        stderr(&output),
        "towergate: app failed: start_response: hop-by-hop header \"Connection: close\" not allowed\n"
    );
}

#[test]
fn bad_status_gives_the_error_page() {
    let output = run("/bad-status");
    assert_ok(&output, ERROR_PAGE);
    assert_eq!(
        stderr(&output),
        "towergate: app failed: start_response: the status must begin with a three-digit code: \"20 OK\"\n"
    );
}

#[test]
fn error_before_output_gives_the_error_page() {
    let output = run("/error-before-output");
    assert_ok(&output, ERROR_PAGE);
    assert_eq!(
        stderr(&output),
        "towergate: app failed: error before output\n"
    );
}

#[test]
fn error_after_output_truncates_and_exits_1() {
    let output = run("/error-after-output");
    assert_eq!(
        output.stdout,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial"
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "towergate: app failed after the head was sent: error after output\n"
    );
}

#[test]
fn start_response_with_the_error_replaces_the_head() {
    let output = run("/replace");
    assert_ok(
        &output,
        b"Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nService Unavailable",
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn panic_gives_the_error_page() {
    let output = run("/panic");
    assert_ok(&output, ERROR_PAGE);
    assert!(
        stderr(&output).ends_with("towergate: app failed: panic: the app panicked\n"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn body_without_start_response_gives_the_error_page() {
    let output = run("/no-start");
    assert_ok(&output, ERROR_PAGE);
    assert_eq!(
        stderr(&output),
        "towergate: app failed: the app produced its response without calling start_response (write() before start_response())\n"
    );
}

#[test]
fn environ_lists_every_key_sorted_with_the_gateway_keys() {
    let output = run("/environ");
    let expected = "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 252\r\n\r\n\
PATH_INFO=/environ\n\
QUERY_STRING=\n\
REQUEST_METHOD=GET\n\
SCRIPT_NAME=/cgi-bin/gateway\n\
SERVER_NAME=localhost\n\
SERVER_PORT=80\n\
SERVER_PROTOCOL=HTTP/1.1\n\
wsgi.file_wrapper=true\n\
wsgi.multiprocess=true\n\
wsgi.multithread=false\n\
wsgi.run_once=true\n\
wsgi.url_scheme=http\n";
    assert_ok(&output, expected.as_bytes());
}

#[test]
fn https_meta_variable_gives_the_https_scheme() {
    let output = run_with("/environ", &[("HTTPS", b"on")]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("\nHTTPS=on\n"), "{text}");
    assert!(text.ends_with("\nwsgi.url_scheme=https\n"), "{text}");
}

#[test]
fn file_wrapper_sends_the_file_with_its_length() {
    let path = std::env::temp_dir().join(format!("towergate-gw-file-{}", std::process::id()));
    std::fs::write(&path, b"0123456789\nfile body\n").unwrap();
    let output = run_with("/file", &[("FILE", path.to_str().unwrap().as_bytes())]);
    std::fs::remove_file(&path).unwrap();
    assert_ok(
        &output,
        b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 21\r\n\r\n0123456789\nfile body\n",
    );
}

#[test]
fn head_request_gets_the_head_only() {
    let output = run_with("/hello", &[("REQUEST_METHOD", b"HEAD")]);
    assert_ok(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n",
    );
}

#[test]
fn unknown_path_is_404() {
    assert_ok(
        &run("/nope"),
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n",
    );
}

#[test]
fn run_by_hand_explains_and_exits_1() {
    let program = support::example_bin("gateway_cgi");
    let output = support::run_cgi(&program, &[], b"");
    assert_eq!(output.stdout, b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this is a CGI program"),
        "{}",
        stderr(&output)
    );
}

fn post(path: &str, content_length: &[u8], stdin: &[u8]) -> Output {
    let program = support::example_bin("gateway_cgi");
    let env: Vec<(&str, &[u8])> = vec![
        ("REQUEST_METHOD", b"POST"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SCRIPT_NAME", b"/cgi-bin/gateway"),
        ("PATH_INFO", path.as_bytes()),
        ("CONTENT_LENGTH", content_length),
    ];
    support::run_cgi(&program, &env, stdin)
}

const BAD_REQUEST: &[u8] =
    b"Status: 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nBad Request\n";

#[test]
fn an_app_that_awaits_a_timer_is_served() {
    // The runtime of CgiHandler::run has its timer (it had none: 500).
    let output = run("/sleep");
    assert_ok(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nslept",
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn the_body_is_exactly_content_length_bytes() {
    assert_ok(
        &post("/echo", b"5", b"hello, and more"),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
}

#[test]
fn a_malformed_content_length_is_400_as_under_cgi_run() {
    // CgiHandler read `abc` as 0 and `+5` as 5.
    for bad in [&b"abc"[..], b"+5", b"-1", b"5x"] {
        let output = post("/echo", bad, b"hello");
        assert_ok(&output, BAD_REQUEST);
        assert!(
            stderr(&output).contains("invalid CONTENT_LENGTH"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_body_shorter_than_content_length_is_400_as_under_cgi_run() {
    // CgiHandler answered 500 (the app's read failed).
    let output = post("/echo", b"5", b"hel");
    assert_ok(&output, BAD_REQUEST);
    assert!(
        stderr(&output).contains("request body ended after 3 of CONTENT_LENGTH 5 bytes"),
        "{}",
        stderr(&output)
    );
}
