//! The `towergate` command-line tool: `serve` on a free port and `call`.
#![cfg(feature = "cli")]

#[path = "support/host.rs"]
mod host_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_support::TempDir;

const TOWERGATE: &str = env!("CARGO_BIN_EXE_towergate");

/// One HTTP/1.0 request (so the body is not chunked); the whole raw response.
fn fetch(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    fetch(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
    )
}

/// Stops the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn serve_answers_static_files_and_cgi_programs_then_shuts_down_on_sigterm() {
    let dir = TempDir::new("cli-serve");
    dir.file("index.html", "<h1>static</h1>\n");
    dir.script(
        "cgi-bin/show",
        "#!/bin/sh\nprintf 'Status: 200 Very OK\\nContent-Type: text/plain\\n\\n'\n\
         printf '%s|%s|%s|%s|%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\" \"$EXTRA\" \"$TG_PASSED\" \"$HTTP_AUTHORIZATION\" \"$REMOTE_ADDR\"\n",
    );
    dir.script("cgi-bin/slow", "#!/bin/sh\nexec sleep 30\n");

    let mut child = Command::new(TOWERGATE)
        .arg("serve")
        .arg(dir.path())
        .args([
            "--addr",
            "127.0.0.1:0",
            "--timeout",
            "1",
            "--max-processes",
            "4",
        ])
        .args([
            "--env",
            "EXTRA=x=1",
            "--pass-env",
            "TG_PASSED",
            "--pass-authorization",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TG_PASSED", "passed")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start towergate serve");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut server = Server(child);
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(stdout);
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    let addr: SocketAddr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));

    let response = get(addr, "/index.html");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.ends_with("<h1>static</h1>\n"), "{response}");

    let response = fetch(
        addr,
        "GET /cgi-bin/show/a/b HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic eDp5\r\n\r\n",
    );
    assert!(
        response.starts_with("HTTP/1.0 200 Very OK\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("/cgi-bin/show|/a/b|x=1|passed|Basic eDp5|127.0.0.1"),
        "{response}"
    );

    // The programs' source is never served as a static file, whatever the spelling.
    for path in [
        "/%63gi-bin/show",
        "//cgi-bin/show",
        "/./cgi-bin/show",
        "/cgi-bin/../cgi-bin/show",
    ] {
        let response = get(addr, path);
        assert!(response.starts_with("HTTP/1.0 404"), "{path}: {response}");
        assert!(!response.contains("printf"), "{path}: {response}");
    }

    let response = get(addr, "/cgi-bin/slow");
    assert!(response.starts_with("HTTP/1.0 504"), "{response}");

    let pid = rustix::process::Pid::from_raw(server.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_exit(&mut server.0).expect("towergate exited after SIGTERM");
    assert!(status.success(), "{status}");
    let log = log.join().unwrap();
    assert!(log.contains("\"GET /index.html HTTP/1.0\" 200"), "{log}");
    assert!(
        log.contains("\"GET /cgi-bin/show/a/b HTTP/1.0\" 200"),
        "{log}"
    );
    assert!(log.contains("\"GET /cgi-bin/slow HTTP/1.0\" 504"), "{log}");
}

#[test]
fn call_prints_the_response_of_one_run() {
    let dir = TempDir::new("cli-call");
    let script = dir.script(
        "echo.sh",
        "#!/bin/sh\nprintf 'Status: 201 Created\\r\\nContent-Type: text/plain\\r\\nX-Method: %s\\r\\n\\r\\n' \"$REQUEST_METHOD\"\n\
         printf '%s|%s|%s|' \"$PATH_INFO\" \"$QUERY_STRING\" \"$HTTP_X_TOKEN\"\nhead -c \"$CONTENT_LENGTH\"\n",
    );
    let output = Command::new(TOWERGATE)
        .arg("call")
        .arg(&script)
        .args([
            "/items/7?full=1",
            "-X",
            "PUT",
            "-d",
            "payload",
            "-H",
            "X-Token: t0k",
        ])
        .output()
        .expect("run towergate call");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("HTTP/1.1 201 Created\r\n"), "{stdout}");
    assert!(stdout.contains("content-type: text/plain\r\n"), "{stdout}");
    assert!(stdout.contains("x-method: PUT\r\n"), "{stdout}");
    assert!(
        stdout.ends_with("\r\n\r\n/items/7|full=1|t0k|payload"),
        "{stdout}"
    );

    // A program with malformed output: the host's 502.
    let bad = dir.script("bad.sh", "#!/bin/sh\necho garbage\n");
    let output = Command::new(TOWERGATE)
        .arg("call")
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{stdout}"
    );
}
