//! One app, both transports (DESIGN.md "Contracts", `examples/native_axum.rs`): the router of
//! `cgi_axum`, run as a CGI program by a real lighttpd at `/cgi-bin/app`, and served natively
//! by hyper through `MountLayer` at the same path, answer every route of the contract alike
//! over real HTTP/1.1 connections (`REMOTE_PORT` aside, and each server's own port).

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::lighttpd::{Lighttpd, WireResponse};
use support::server::{self, Process};
use support::{example_bin, wire};

/// The response headers both transports must agree on (the rest is each server's own:
/// `Date`, `Server`, `Connection`, framing).
const COMPARED_HEADERS: [&str; 4] = ["content-type", "set-cookie", "location", "content-length"];

/// The two servers, started once per test.
struct Both {
    lighttpd: Lighttpd,
    /// Stopped (by pid) and reaped when dropped.
    _native: Process,
    native_port: u16,
}

impl Both {
    fn start() -> Both {
        let lighttpd = Lighttpd::start(&[("app", &example_bin("cgi_axum"))]);
        let binary = example_bin("native_axum");
        let started = server::on_free_port(|port| {
            let mut command = Command::new(&binary);
            command
                .env_clear()
                .arg("--addr")
                .arg(format!("127.0.0.1:{port}"));
            let mut child = Process::spawn(&mut command, Stdio::piped(), Duration::from_secs(5));
            server::wait_for_port("native_axum", &mut child, port, String::new)
                .map(|()| (child, port))
        });
        let (native, native_port) =
            started.unwrap_or_else(|e| panic!("native_axum did not start: {e}"));
        Both {
            lighttpd,
            _native: native,
            native_port,
        }
    }

    /// Sends the request `make(port)` builds to both servers.
    fn send(&self, make: impl Fn(u16) -> Vec<u8>) -> (WireResponse, WireResponse) {
        let cgi = self.lighttpd.send(&make(self.lighttpd.port()));
        let native = wire::send(
            "native_axum",
            self.native_port,
            &make(self.native_port),
            String::new,
        );
        (cgi, native)
    }
}

/// What must be equal: status, the compared headers and the body, with each server's port
/// written `PORT`. `framed` says whether either side's body came chunked: then its length
/// is framing, which is the server's choice (lighttpd gives a streamed body that ended before
/// it sent the head a `Content-Length`), and `content-length` is not compared.
fn comparable(
    response: &WireResponse,
    port: u16,
    framed: bool,
) -> (u16, Vec<(String, String)>, String) {
    let headers = response
        .headers
        .iter()
        .filter(|(name, _)| COMPARED_HEADERS.contains(&name.as_str()))
        .filter(|(name, _)| !(framed && name == "content-length"))
        .cloned()
        .collect();
    let body = response.text().replace(&port.to_string(), "PORT");
    (response.status(), headers, body)
}

#[track_caller]
fn assert_same(both: &Both, target: &str, make: impl Fn(u16) -> Vec<u8>) {
    let (cgi, native) = both.send(make);
    let framed = cgi.chunks.is_some() || native.chunks.is_some();
    let cgi_seen = comparable(&cgi, both.lighttpd.port(), framed);
    let native_seen = comparable(&native, both.native_port, framed);
    assert_eq!(
        cgi_seen,
        native_seen,
        "{target}: CGI (left) and native (right) differ\nCGI: {cgi:?}\nnative: {native:?}\n\
         lighttpd log:\n{}",
        both.lighttpd.error_log()
    );
}

fn get(target: &'static str) -> impl Fn(u16) -> Vec<u8> {
    move |port| wire::get_request(port, target, "X-Test: 1\r\n").into_bytes()
}

#[test]
fn every_route_of_the_contract_answers_alike_under_cgi_and_natively() {
    let both = Both::start();
    for target in [
        "/cgi-bin/app",
        "/cgi-bin/app/",
        "/cgi-bin/app/info?x=1",
        "/cgi-bin/app/info?a=%20b&c",
        "/cgi-bin/app/info/",
        "/cgi-bin/app/stream?n=3&bytes=5",
        "/cgi-bin/app/cookies",
        "/cgi-bin/app/status/201",
        "/cgi-bin/app/status/204",
        "/cgi-bin/app/status/418",
        "/cgi-bin/app/status/%34%31%38",
        "/cgi-bin/app/panic",
        "/cgi-bin/app/redirect",
        "/cgi-bin/app/no-such-route",
    ] {
        assert_same(&both, target, get(target));
    }
    // lighttpd gives every request a CONTENT_LENGTH (0 without a body), so the app sees a
    // `content-length` header whether the client sent one or not; with one sent, both
    // transports see the same request.
    assert_same(&both, "/cgi-bin/app/headers", |port| {
        wire::get_request(
            port,
            "/cgi-bin/app/headers",
            "X-Test: 1\r\nContent-Length: 0\r\n",
        )
        .into_bytes()
    });
    assert_same(&both, "HEAD /", |port| {
        format!(
            "HEAD /cgi-bin/app/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    });
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert_same(&both, "POST /echo", |port| {
        wire::post_request(port, "/cgi-bin/app/echo", "application/octet-stream", &body)
    });
}

#[test]
fn info_shows_the_cgi_meta_variables_natively() {
    let both = Both::start();
    let (_, native) = both.send(get("/cgi-bin/app/info?x=1"));
    assert_eq!(native.status(), 200);
    assert_eq!(
        native.text(),
        format!(
            "method=GET\npath=/info\nquery=x=1\nSCRIPT_NAME=/cgi-bin/app\nPATH_INFO=/info\n\
             QUERY_STRING=x=1\nREMOTE_ADDR=127.0.0.1\nSERVER_NAME=127.0.0.1\nSERVER_PORT={}\n\
             SERVER_PROTOCOL=HTTP/1.1\nHTTPS=\n",
            both.native_port
        )
    );
    // Outside the mount point: 404, the app is not called.
    let (_, native) = both.send(get("/cgi-bin/application/info"));
    assert_eq!(native.status(), 404);
    assert!(native.body.is_empty());
}
