//! The CGI host's per-request work outside the child process: parsing a program's response
//! head (RFC 3875 §6) and building the environment it is started with (RFC 3875 §4.1),
//! time and allocations per operation.
//!
//! `cargo bench --bench host --features unstable-bench` (the steps are reached through
//! `towergate::host::bench`, an explicitly unstable module behind that feature).

use bytes::{Bytes, BytesMut};
use divan::{AllocProfiler, Bencher, black_box};
use http::Request;
use towergate::ext::ConnectInfo;
use towergate::host::{CgiProgram, bench};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

#[path = "common/request.rs"]
mod request;

fn main() {
    divan::main();
}

/// `output` as the host holds it: split off its read buffer, so that it is shared.
fn read(output: &[u8]) -> Bytes {
    let mut buf = BytesMut::from(output);
    buf.split_to(output.len()).freeze()
}

/// A typical head: 4 fields and the start of the body, as one read returns it.
const HEAD_4: &str = "Status: 200 OK\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Cache-Control: no-cache\r\n\
Set-Cookie: session=abcdef0123456789; Path=/; HttpOnly\r\n\
\r\n\
<!doctype html><title>hello</title>";

/// A head of 20 fields.
fn head_20() -> Bytes {
    let mut head = b"Status: 201 Created\r\nContent-Type: application/json\r\n".to_vec();
    for i in 0..18 {
        head.extend_from_slice(
            format!("X-Field-{i}: value number {i}, somewhat longer than short\r\n").as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n{\"ok\":true}");
    read(&head)
}

#[divan::bench]
fn parse_head_4_fields(bencher: Bencher) {
    let head = read(HEAD_4.as_bytes());
    assert_eq!(
        bench::parse_head(&head).map(|(s, h)| (s, h.len())),
        Some((http::StatusCode::OK, 3))
    );
    bencher.bench_local(|| bench::parse_head(black_box(&head)));
}

#[divan::bench]
fn parse_head_20_fields(bencher: Bencher) {
    let head = head_20();
    assert_eq!(bench::parse_head(&head).map(|(_, h)| h.len()), Some(19));
    bencher.bench_local(|| bench::parse_head(black_box(&head)));
}

/// A browser-like request with 20 headers (as `benches/environ.rs`).
fn parts() -> http::request::Parts {
    request::browser_request("/cgi-bin/hello/users/42?tab=settings&lang=en")
        .into_parts()
        .0
}

/// A wrk-like request: `GET` with a `Host` header only.
fn small_parts() -> http::request::Parts {
    let mut request = Request::get("/cgi-bin/hello")
        .header("host", "127.0.0.1:8080")
        .body(())
        .expect("valid request");
    request.extensions_mut().insert(ConnectInfo {
        remote: "127.0.0.1:50123".parse().expect("addr"),
        local: Some("127.0.0.1:8080".parse().expect("addr")),
    });
    request.into_parts().0
}

fn program() -> CgiProgram {
    CgiProgram::new("/srv/cgi-bin/hello").script_name("/cgi-bin/hello")
}

/// The meta-variables of a request with 20 headers.
#[divan::bench(name = "environ (20 headers)")]
fn environ_20_headers(bencher: Bencher) {
    let (program, parts) = (program(), parts());
    bencher.bench_local(|| bench::environ(&program, black_box(&parts)));
}

/// The meta-variables and the command (`env_clear` + `envs`) for a request with 20 headers:
/// all of the environment work of one request before the spawn.
#[divan::bench(name = "environ + command (20 headers)")]
fn command_20_headers(bencher: Bencher) {
    let (program, parts) = (program(), parts());
    bencher.bench_local(|| {
        let environ = bench::environ(&program, black_box(&parts));
        bench::prepare_command(&program, &environ)
    });
}

/// The same for a request with only `Host`, as wrk sends.
#[divan::bench(name = "environ + command (Host only)")]
fn command_small(bencher: Bencher) {
    let (program, parts) = (program(), small_parts());
    bencher.bench_local(|| {
        let environ = bench::environ(&program, black_box(&parts));
        bench::prepare_command(&program, &environ)
    });
}
