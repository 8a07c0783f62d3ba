//! The compiled examples executed as real CGI programs: a cleared environment, real pipes,
//! and the exact bytes they write.

mod support;

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use towergate::Environ;
use towergate::cgi::{Builder, RequestBody};

use support::{example_bin, run_cgi, run_cgi_stdin_open};

/// The meta-variables a web server sets for `METHOD /cgi-bin/cgi_axum{path_info}?{query}`.
fn cgi_env<'a>(method: &'a str, path_info: &'a str, query: &'a str) -> Vec<(&'a str, &'a [u8])> {
    vec![
        ("GATEWAY_INTERFACE", b"CGI/1.1"),
        ("REQUEST_METHOD", method.as_bytes()),
        ("SCRIPT_NAME", b"/cgi-bin/cgi_axum"),
        ("PATH_INFO", path_info.as_bytes()),
        ("QUERY_STRING", query.as_bytes()),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"8080"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SERVER_SOFTWARE", b"test"),
        ("REMOTE_ADDR", b"192.0.2.1"),
        ("REMOTE_PORT", b"50000"),
    ]
}

fn axum_get(path_info: &str, query: &str) -> Output {
    run_cgi(
        &example_bin("cgi_axum"),
        &cgi_env("GET", path_info, query),
        b"",
    )
}

/// Asserts a successful run whose standard output is exactly `expected`.
#[track_caller]
fn assert_stdout(output: &Output, expected: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(expected),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, expected);
    assert!(output.status.success(), "exit status {}", output.status);
}

const WSGIREF_500: &[u8] = b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
    Content-Length: 59\r\n\r\nA server error occurred.  Please contact the administrator.";

const TEXT_UTF8: &str = "Content-Type: text/plain; charset=utf-8\r\n";

#[test]
fn root_route_answers_hello() {
    assert_stdout(
        &axum_get("/", ""),
        format!("Status: 200 OK\r\n{TEXT_UTF8}Content-Length: 24\r\n\r\nhello from axum over CGI")
            .as_bytes(),
    );
}

#[test]
fn empty_path_info_is_the_root() {
    assert_stdout(
        &axum_get("", ""),
        format!("Status: 200 OK\r\n{TEXT_UTF8}Content-Length: 24\r\n\r\nhello from axum over CGI")
            .as_bytes(),
    );
}

#[test]
fn head_sends_the_head_without_the_body() {
    let output = run_cgi(&example_bin("cgi_axum"), &cgi_env("HEAD", "/", ""), b"");
    assert_stdout(
        &output,
        format!("Status: 200 OK\r\n{TEXT_UTF8}Content-Length: 24\r\n\r\n").as_bytes(),
    );
}

#[test]
fn echo_streams_the_body_back_with_its_content_type() {
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"application/x-test"));
    env.push(("CONTENT_LENGTH", b"5"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"hello");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: application/x-test\r\n\r\nhello",
    );
}

#[test]
fn info_lists_the_request_and_its_meta_variables() {
    let output = axum_get("/info", "x=1&y=%20");
    let body = "method=GET\npath=/info\nquery=x=1&y=%20\nSCRIPT_NAME=/cgi-bin/cgi_axum\n\
                PATH_INFO=/info\nQUERY_STRING=x=1&y=%20\nREMOTE_ADDR=192.0.2.1\n\
                SERVER_NAME=example.com\nSERVER_PORT=8080\nSERVER_PROTOCOL=HTTP/1.1\nHTTPS=\n";
    assert_stdout(
        &output,
        format!(
            "Status: 200 OK\r\n{TEXT_UTF8}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

#[test]
fn headers_lists_the_request_headers_sorted() {
    let mut env = cgi_env("GET", "/headers", "");
    env.push(("HTTP_USER_AGENT", b"test/1"));
    env.push(("HTTP_ACCEPT", b"*/*"));
    env.push(("HTTP_X_MULTI_WORD", b"a, b"));
    env.push(("CONTENT_TYPE", b"text/x"));
    env.push(("HTTP_PROXY", b"http://evil.example"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"");
    let body = "accept: */*\ncontent-type: text/x\nuser-agent: test/1\nx-multi-word: a, b\n";
    assert_stdout(
        &output,
        format!(
            "Status: 200 OK\r\n{TEXT_UTF8}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

#[test]
fn stream_sends_n_chunks_without_a_length() {
    assert_stdout(
        &axum_get("/stream", "n=3&bytes=4"),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nxxxxxxxxxxxx",
    );
}

#[test]
fn cookies_are_two_set_cookie_lines() {
    assert_stdout(
        &axum_get("/cookies", ""),
        format!(
            "Status: 200 OK\r\n{TEXT_UTF8}Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    );
}

#[test]
fn status_route_answers_that_status() {
    assert_stdout(
        &axum_get("/status/418", ""),
        b"Status: 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n",
    );
}

#[test]
fn no_content_has_no_content_length() {
    // axum adds `Content-Length: 0`; RFC 9110 §8.6 forbids it on 204.
    assert_stdout(
        &axum_get("/status/204", ""),
        b"Status: 204 No Content\r\n\r\n",
    );
}

#[test]
fn an_interim_status_from_the_service_is_an_error() {
    let output = axum_get("/status/103", "");
    assert_stdout(&output, WSGIREF_500);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|l| l
            == "towergate: service failed: 103 Early Hints is an interim status, not a final response (RFC 9110 §15.2)"),
        "{stderr}"
    );
}

#[test]
fn a_body_without_a_content_type_gets_a_sniffed_one() {
    // RFC 3875 §6.3.1: a CGI response with a body must name its type.
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_LENGTH", b"11"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"<html><p>hi");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><p>hi",
    );
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_LENGTH", b"3"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"\x00\x01\x02");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\x02",
    );
}

#[test]
fn a_huge_environment_gets_431_and_a_log_line_not_a_panic() {
    // About 24,600 HTTP_* variables overflowed HeaderMap::with_capacity: exit 101, no output.
    for (count, program) in [(25_000, "cgi_hello"), (1_025, "cgi_axum")] {
        let names: Vec<String> = (0..count).map(|i| format!("HTTP_X_H{i}")).collect();
        let mut env = cgi_env("GET", "/", "");
        env.extend(names.iter().map(|n| (n.as_str(), &b"v"[..])));
        let output = run_cgi(&example_bin(program), &env, b"");
        assert_stdout(
            &output,
            b"Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\
              Content-Length: 32\r\n\r\nRequest Header Fields Too Large\n",
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!("towergate: bad request: {count} request headers is more than allowed\n")
        );
    }
}

#[test]
fn a_path_too_long_for_a_uri_is_414_not_another_route() {
    // It became `/`, and the root route answered 200.
    let path = format!("/{}", "%".repeat(30_000));
    let output = axum_get(&path, "");
    assert_stdout(
        &output,
        b"Status: 414 URI Too Long\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nURI Too Long\n",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("more than a URI can hold"), "{stderr}");
}

#[test]
fn the_query_is_recovered_from_request_uri_without_query_string() {
    let env: Vec<(&str, &[u8])> = cgi_env("GET", "/info", "")
        .into_iter()
        .filter(|(k, _)| *k != "QUERY_STRING")
        .chain([("REQUEST_URI", &b"/cgi-bin/cgi_axum/info?x=1"[..])])
        .collect();
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(body.contains("\npath=/info\nquery=x=1\n"), "{body}");
    assert!(body.contains("\nQUERY_STRING=\n"), "{body}");
}

#[test]
fn redirect_answers_302_with_a_location() {
    assert_stdout(
        &axum_get("/redirect", ""),
        b"Status: 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n",
    );
}

#[test]
fn unknown_route_is_404() {
    assert_stdout(
        &axum_get("/nowhere", ""),
        b"Status: 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
}

#[test]
fn panic_gives_wsgirefs_500_and_a_log_line() {
    let output = axum_get("/panic", "");
    assert_stdout(
        &output,
        b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 59\r\n\r\n\
          A server error occurred.  Please contact the administrator.",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "towergate: service failed: panic: the /panic route panics on purpose"),
        "{stderr}"
    );
}

#[test]
fn hello_answers_every_request() {
    for (method, path) in [("GET", "/"), ("POST", "/anything/else")] {
        let mut env = cgi_env(method, path, "");
        env.push(("CONTENT_LENGTH", b"3"));
        let output = run_cgi(&example_bin("cgi_hello"), &env, b"abc");
        assert_stdout(
            &output,
            b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!",
        );
    }
}

/// A deterministic byte pattern that is not UTF-8 and holds CR, LF and NUL.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn a_one_mebibyte_post_is_echoed_byte_for_byte() {
    let body = pattern(1 << 20);
    let length = body.len().to_string();
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"application/octet-stream"));
    env.push(("CONTENT_LENGTH", length.as_bytes()));
    // run_cgi writes standard input on a thread while it reads standard output.
    let output = run_cgi(&example_bin("cgi_axum"), &env, &body);
    let head = b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.starts_with(head));
    assert_eq!(output.stdout.len(), head.len() + body.len());
    assert!(output.stdout[head.len()..] == body[..], "body differs");
}

#[test]
fn count_reads_a_three_mebibyte_body_and_answers_its_length() {
    let body = pattern(3 << 20);
    let length = body.len().to_string();
    let mut env = cgi_env("POST", "/count", "");
    env.push(("CONTENT_TYPE", b"application/octet-stream"));
    env.push(("CONTENT_LENGTH", length.as_bytes()));
    let output = run_cgi(&example_bin("cgi_axum"), &env, &body);
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n3145728",
    );
}

#[test]
fn count_of_an_empty_body_is_zero() {
    let mut env = cgi_env("POST", "/count", "");
    env.push(("CONTENT_LENGTH", b"0"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n0",
    );
}

#[test]
fn the_program_answers_without_waiting_for_stdin_to_close() {
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"text/plain"));
    env.push(("CONTENT_LENGTH", b"5"));
    // Standard input stays open after the five bytes; the run is bounded by a watchdog.
    let output = run_cgi_stdin_open(&example_bin("cgi_axum"), &env, b"hello");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
    );
}

#[test]
fn bytes_past_content_length_are_ignored() {
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"text/plain"));
    env.push(("CONTENT_LENGTH", b"5"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"hello, and more");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
    );
}

#[test]
fn no_content_length_means_no_body() {
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"text/plain"));
    let output = run_cgi_stdin_open(&example_bin("cgi_axum"), &env, b"ignored");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    );
}

#[test]
fn chunked_transfer_encoding_reads_stdin_to_the_end() {
    let mut env = cgi_env("POST", "/echo", "");
    env.push(("CONTENT_TYPE", b"text/plain"));
    env.push(("HTTP_TRANSFER_ENCODING", b"chunked"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"all of it");
    assert_stdout(
        &output,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
    );
}

const BAD_REQUEST: &[u8] =
    b"Status: 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nBad Request\n";

#[test]
fn a_body_shorter_than_content_length_is_400() {
    for sent in [&b""[..], b"hel"] {
        let mut env = cgi_env("POST", "/echo", "");
        env.push(("CONTENT_TYPE", b"text/plain"));
        env.push(("CONTENT_LENGTH", b"5"));
        let output = run_cgi(&example_bin("cgi_axum"), &env, sent);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(BAD_REQUEST)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("request body ended after"),
            "no log line: {stderr}"
        );
    }
}

#[test]
fn a_malformed_content_length_is_400() {
    for bad in [
        &b"5x"[..],
        b"-5",
        b"+5",
        b"0x10",
        b"99999999999999999999999",
    ] {
        let mut env = cgi_env("POST", "/echo", "");
        env.push(("CONTENT_LENGTH", bad));
        let output = run_cgi(&example_bin("cgi_axum"), &env, b"hello");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(BAD_REQUEST),
            "CONTENT_LENGTH {:?}",
            String::from_utf8_lossy(bad)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid CONTENT_LENGTH"), "{stderr}");
    }
}

#[test]
fn without_request_method_it_explains_itself_on_one_line() {
    for program in ["cgi_axum", "cgi_hello"] {
        let output = run_cgi(&example_bin(program), &[("PATH_INFO", b"/")], b"");
        assert!(output.stdout.is_empty(), "{output:?}");
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.ends_with('\n'));
        assert!(stderr.contains("this is a CGI program"), "{stderr}");
    }
}

#[test]
fn non_utf8_meta_variables_do_not_panic() {
    let mut env = cgi_env("GET", "/headers", "");
    env.retain(|(k, _)| *k != "PATH_INFO" && *k != "SERVER_NAME");
    env.push(("PATH_INFO", b"/headers"));
    env.push(("SERVER_NAME", b"\xff\xfe"));
    env.push(("HTTP_X", b"\xfe"));
    env.push(("HTTP_X_BAD", b"a\x01b"));
    env.push(("REMOTE_USER", b"\xc3("));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"");
    // `x: \xfe` is a valid header value (obs-text); a value with a control byte is skipped.
    let body = "x: \u{fffd}\n";
    assert_stdout(
        &output,
        format!(
            "Status: 200 OK\r\n{TEXT_UTF8}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );

    let mut env = cgi_env("GET", "/", "");
    env.retain(|(k, _)| *k != "PATH_INFO");
    env.push(("PATH_INFO", b"/\xff"));
    env.push(("HTTP_X", b"\xfe"));
    let output = run_cgi(&example_bin("cgi_axum"), &env, b"");
    assert_stdout(
        &output,
        b"Status: 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn info_shows_non_utf8_values_lossily() {
    let mut env = cgi_env("GET", "/info", "");
    env.retain(|(k, _)| *k != "SERVER_NAME");
    env.push(("SERVER_NAME", b"h\xffst"));
    let output = axum_run(&env);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains("\nSERVER_NAME=h\u{fffd}st\n"), "{text}");
    assert!(output.status.success());
}

#[test]
fn the_watchdog_kills_a_program_that_hangs_and_fails_the_test() {
    // The harness the stdin test relies on: a program that never exits is killed by pid.
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("run sleep");
    let watchdog = support::Watchdog::start(child.id(), std::time::Duration::from_millis(100));
    let status = child.wait().expect("wait for sleep");
    assert!(!status.success(), "sleep was not killed: {status}");
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watchdog.finish()));
    let message = verdict.expect_err("the watchdog must fail the test");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("did not finish"), "{message}");
}

fn axum_run(env: &[(&str, &[u8])]) -> Output {
    run_cgi(&example_bin("cgi_axum"), env, b"")
}

// In-process: `Builder::serve_with` over an environ, input and output of our own, for the
// options the examples do not use and for what only a recording writer can see.

/// A service answering `path: PATH` with the request's URI path.
fn path_service() -> impl tower::Service<
    Request<RequestBody>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>>,
> + Clone {
    tower::service_fn(|request: Request<RequestBody>| async move {
        let body = format!("path: {}", request.uri());
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "text/plain")
                .body(body)
                .unwrap(),
        )
    })
}

fn lighttpd_like_environ() -> Environ {
    Environ::from_vars([
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/cgi-bin/app"),
        ("PATH_INFO", "/a/b"),
        ("QUERY_STRING", "q=1"),
        ("REQUEST_URI", "/cgi-bin/app/a%2Fb?q=1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ])
}

#[tokio::test]
async fn the_service_sees_the_app_relative_path_by_default() {
    let mut out = Vec::new();
    Builder::new()
        .serve_with(
            path_service(),
            lighttpd_like_environ(),
            std::io::empty(),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\npath: /a%2Fb?q=1"
    );
}

#[tokio::test]
async fn full_path_mode_routes_on_the_whole_request_uri() {
    let mut out = Vec::new();
    Builder::new()
        .full_path(true)
        .serve_with(
            path_service(),
            lighttpd_like_environ(),
            std::io::empty(),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 28\r\n\r\npath: /cgi-bin/app/a%2Fb?q=1"
    );

    // Without REQUEST_URI the full path is rebuilt from SCRIPT_NAME and PATH_INFO.
    let mut environ = lighttpd_like_environ();
    environ.remove("REQUEST_URI");
    let mut out = Vec::new();
    Builder::new()
        .full_path(true)
        .serve_with(path_service(), environ, std::io::empty(), &mut out)
        .await
        .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("\r\n\r\npath: /cgi-bin/app/a/b?q=1")
    );
}

/// Replaces the value of the `Date` line, which changes every second.
fn without_date(head: &str) -> String {
    head.split("\r\n")
        .map(|line| {
            if line.starts_with("Date: ") {
                "Date: *"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn nph_mode_writes_a_complete_http_response() {
    let mut out = Vec::new();
    Builder::new()
        .nph(true)
        .server_software("test/1")
        .serve_with(
            path_service(),
            lighttpd_like_environ(),
            std::io::empty(),
            &mut out,
        )
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("\r\nDate: ") && text.contains(" GMT\r\n"),
        "{text}"
    );
    assert_eq!(
        without_date(&text),
        "HTTP/1.1 200 OK\r\nDate: *\r\nServer: test/1\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\npath: /a%2Fb?q=1"
    );
}

#[tokio::test]
async fn nph_mode_closes_the_connection_without_a_length_and_speaks_http_10_to_10() {
    let stream = tower::service_fn(|_: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(Chunks::new(&["ab", "cd"], None)))
    });
    let mut out = Vec::new();
    Builder::new()
        .nph(true)
        .server_software("")
        .serve_with(stream, lighttpd_like_environ(), std::io::empty(), &mut out)
        .await
        .unwrap();
    assert_eq!(
        without_date(&String::from_utf8(out).unwrap()),
        "HTTP/1.1 200 OK\r\nDate: *\r\nConnection: close\r\n\r\nabcd"
    );

    let mut environ = lighttpd_like_environ();
    environ.insert("SERVER_PROTOCOL", "HTTP/1.0");
    let mut out = Vec::new();
    Builder::new()
        .nph(true)
        .server_software("")
        .serve_with(stream, environ, std::io::empty(), &mut out)
        .await
        .unwrap();
    assert_eq!(
        without_date(&String::from_utf8(out).unwrap()),
        "HTTP/1.0 200 OK\r\nDate: *\r\n\r\nabcd"
    );
}

/// A writer that records the bytes written between flushes.
#[derive(Clone, Default)]
struct FlushRecorder {
    pending: Arc<Mutex<Vec<u8>>>,
    flushed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Write for FlushRecorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let bytes = std::mem::take(&mut *self.pending.lock().unwrap());
        if !bytes.is_empty() {
            self.flushed.lock().unwrap().push(bytes);
        }
        Ok(())
    }
}

/// A streamed body of fixed chunks that, before yielding each chunk, notes how many
/// flushed writes the recorder holds.
struct Chunks {
    chunks: Vec<&'static str>,
    recorder: Option<FlushRecorder>,
    seen: Arc<Mutex<Vec<usize>>>,
}

impl Chunks {
    fn new(chunks: &[&'static str], recorder: Option<FlushRecorder>) -> Self {
        Chunks {
            chunks: chunks.iter().rev().copied().collect(),
            recorder,
            seen: Arc::default(),
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let flushed = self
            .recorder
            .as_ref()
            .map_or(0, |r| r.flushed.lock().unwrap().len());
        self.seen.lock().unwrap().push(flushed);
        Poll::Ready(
            self.chunks
                .pop()
                .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))),
        )
    }
}

#[tokio::test]
async fn a_streamed_response_is_flushed_chunk_by_chunk() {
    let recorder = FlushRecorder::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = {
        let recorder = recorder.clone();
        let seen = seen.clone();
        tower::service_fn(move |_: Request<RequestBody>| {
            let mut body = Chunks::new(&["one", "two", "three"], Some(recorder.clone()));
            body.seen = seen.clone();
            async move { Ok::<_, Infallible>(Response::new(body)) }
        })
    };
    Builder::new()
        .serve_with(
            service,
            lighttpd_like_environ(),
            std::io::empty(),
            recorder.clone(),
        )
        .await
        .unwrap();
    let flushed: Vec<String> = recorder
        .flushed
        .lock()
        .unwrap()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(
        flushed,
        [
            "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\none",
            "two",
            "three"
        ]
    );
    // Each chunk was out (flushed) before the next one was asked for.
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]);
}

#[tokio::test]
async fn a_short_body_read_by_the_service_gives_400_not_the_services_answer() {
    use http_body_util::BodyExt;
    // The service reads the body, fails, and answers 500 itself: the program says 400.
    let service = tower::service_fn(|request: Request<RequestBody>| async move {
        let status = match request.into_body().collect().await {
            Ok(_) => 200,
            Err(_) => 500,
        };
        Ok::<_, Infallible>(
            Response::builder()
                .status(status)
                .body(String::from("service's answer"))
                .unwrap(),
        )
    });
    let mut environ = lighttpd_like_environ();
    environ.insert("REQUEST_METHOD", "POST");
    environ.insert("CONTENT_LENGTH", "10");
    let mut out = Vec::new();
    Builder::new()
        .serve_with(service, environ, std::io::Cursor::new(b"short"), &mut out)
        .await
        .unwrap();
    assert_eq!(out, BAD_REQUEST);
}

#[tokio::test]
async fn a_chunked_body_over_max_body_gives_413() {
    let service = tower::service_fn(|request: Request<RequestBody>| async move {
        Ok::<_, Infallible>(Response::new(request.into_body()))
    });
    let mut environ = lighttpd_like_environ();
    environ.insert("REQUEST_METHOD", "POST");
    environ.insert("HTTP_TRANSFER_ENCODING", "chunked");
    let mut out = Vec::new();
    Builder::new()
        .max_body(4)
        .serve_with(
            service,
            environ,
            std::io::Cursor::new(b"0123456789"),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Status: 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nContent Too Large\n"
    );
}
