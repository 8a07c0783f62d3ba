//! `examples/demo.rs`: the README's first command serves its URLs.
#![cfg(feature = "host")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the demo when the test ends, whatever happens.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn demo_serves_the_axum_route_the_gateway_app_and_the_cgi_bin_scripts() {
    let mut child = Command::new(support::example_bin("demo"))
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let mut lines = BufReader::new(stdout).lines();
    let banner = lines.next().unwrap().unwrap();
    let addr: SocketAddr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let urls: Vec<String> = lines.by_ref().take(5).map(|l| l.unwrap()).collect();
    // Keep reading, so the demo never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        urls.iter().any(|l| l.contains("/cgi-bin/hello")),
        "{urls:?}"
    );
    assert!(urls.iter().any(|l| l.contains("/gateway/")), "{urls:?}");

    let response = get(addr, "/");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.contains("towergate demo"), "{response}");

    let response = get(addr, "/gateway/hello");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(
        response.contains("\r\ncontent-length: 13\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nHello, world!"), "{response}");

    let response = get(addr, "/gateway/environ");
    assert!(response.contains("\nSCRIPT_NAME=/gateway\n"), "{response}");
    assert!(response.contains("\nPATH_INFO=/environ\n"), "{response}");
    assert!(response.contains("\nwsgi.multithread=true\n"), "{response}");

    let response = get(addr, "/cgi-bin/hello");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nHello from a shell script over CGI!\n"),
        "{response}"
    );

    let response = get(addr, "/cgi-bin/printenv/a/b?x=1");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    for line in [
        "\nSCRIPT_NAME=/cgi-bin/printenv\n",
        "\nPATH_INFO=/a/b\n",
        "\nQUERY_STRING=x=1\n",
        "\nREMOTE_ADDR=127.0.0.1\n",
        "\nSERVER_PROTOCOL=HTTP/1.0\n",
    ] {
        assert!(response.contains(line), "{line:?} missing in {response}");
    }

    let response = get(addr, "/cgi-bin/..%2Fcgi_axum.rs");
    assert!(response.starts_with("HTTP/1.0 404"), "{response}");
}
