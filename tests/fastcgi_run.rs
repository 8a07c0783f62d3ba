//! `towergate::run` picks the gateway from descriptor 0: `cgi_axum` run by hand, with a
//! connected socket as standard input (python's `http.server` runs CGI programs that way),
//! and with a listening socket on descriptor 0 (FastCGI, stopped by SIGTERM).
#![cfg(all(unix, feature = "fastcgi"))]

mod support;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use support::example_bin;
use support::fcgi::{Peer, borrowed, get, request};

#[test]
fn run_by_hand_it_says_it_is_a_cgi_program() {
    let output = Command::new(example_bin("cgi_axum"))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(": this is a CGI program: a web server runs it with REQUEST_METHOD"),
        "{stderr}"
    );
}

#[test]
fn a_connected_socket_on_standard_input_is_cgi() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(ours);
    let output = Command::new(example_bin("cgi_axum"))
        .env_clear()
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", "/")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\r\n\
         hello from axum over CGI"
    );
}

#[test]
fn a_listening_socket_on_descriptor_0_is_fastcgi_and_sigterm_stops_it_cleanly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = Reaped(
        Command::new(example_bin("cgi_axum"))
            .env_clear()
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut peer = Peer::connect(addr);
    peer.send(&request(1, true, &borrowed(&get("/")), b""));
    let answer = peer.answer(1);
    assert!(
        answer.text().ends_with("\r\n\r\nhello from axum over CGI"),
        "{}",
        answer.text()
    );
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    // The idle kept-alive connection is closed, and the app exits with status 0.
    assert!(peer.is_closed());
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A child killed and reaped when dropped (a failed assertion), by pid.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
