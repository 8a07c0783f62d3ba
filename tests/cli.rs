//! The `towergate` command-line tool: real `towergate serve` processes on free ports, real
//! CGI programs, raw clients (slowloris, idle, absolute-form targets), SIGTERM; and `call`.
#![cfg(feature = "cli")]

#[path = "support/fifo.rs"]
mod fifo;
#[path = "support/host.rs"]
mod host_support;
#[path = "support/towergate.rs"]
mod towergate_support;
#[path = "support/wire.rs"]
#[allow(dead_code, unreachable_pub)]
mod wire;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use host_support::TempDir;
use towergate_support::{
    TOWERGATE, Towergate, closed_by_server, connect, eventually, exchange, get,
};
use wire::WireResponse;

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

    let mut command = Command::new(TOWERGATE);
    command
        .arg("serve")
        .arg(dir.path())
        .args(["--addr", "127.0.0.1:0", "--timeout", "1"])
        .args(["--max-processes", "4", "--env", "EXTRA=x=1"])
        .args(["--pass-env", "TG_PASSED", "--pass-authorization"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TG_PASSED", "passed");
    // `--pass-env` reads the server's own environment, so this one test starts the
    // server by hand (the helper clears the environment).
    let server = Towergate::from_command(command);
    let addr = server.addr;

    let response = get(addr, "/index.html");
    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.text(), "<h1>static</h1>\n");

    let response = String::from_utf8_lossy(&exchange(
        addr,
        b"GET /cgi-bin/show/a/b HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic eDp5\r\n\r\n",
    ))
    .into_owned();
    assert!(
        response.starts_with("HTTP/1.0 200 Very OK\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\n/cgi-bin/show|/a/b|x=1|passed|Basic eDp5|127.0.0.1"),
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
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response.text().contains("printf"), "{path}: {response:?}");
    }

    assert_eq!(get(addr, "/cgi-bin/slow").status(), 504);

    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("\"GET /index.html HTTP/1.1\" 200 16 "),
        "{log}"
    );
    assert!(
        log.contains("\"GET /cgi-bin/show/a/b HTTP/1.0\" 200 "),
        "{log}"
    );
    assert!(log.contains("\"GET /cgi-bin/slow HTTP/1.1\" 504 "), "{log}");
}

#[test]
fn dotfiles_and_dot_directories_are_never_served() {
    let dir = TempDir::new("cli-dot");
    dir.file("index.html", "home\n");
    dir.file(".env", "SECRET=1\n");
    dir.file(".git/config", "SECRET=2\n");
    dir.file(".htpasswd", "SECRET=3\n");
    dir.file("sub/.htpasswd", "SECRET=4\n");
    dir.file("sub/ok.txt", "fine\n");
    let server = Towergate::start(dir.path(), &[]);
    for path in [
        "/.env",
        "/.git/config",
        "/.htpasswd",
        "/sub/.htpasswd",
        "/%2eenv",
        "/%2Eenv",
        "/%2egit/config",
        "/.git%2fconfig",
        "/sub%2F.htpasswd",
        "/sub/%2ehtpasswd",
        "/sub/../.env",
        "/.git/",
    ] {
        let response = get(server.addr, path);
        assert_eq!(response.status_line, "HTTP/1.1 404 Not Found", "{path}");
        assert!(!response.text().contains("SECRET"), "{path}: {response:?}");
    }
    let response = get(server.addr, "/sub/ok.txt");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "fine\n");
}

#[test]
fn a_local_redirect_is_served_by_the_whole_server() {
    let dir = TempDir::new("cli-redirect");
    dir.file("index.html", "<p>the index</p>\n");
    dir.script(
        "cgi-bin/to-static",
        "#!/bin/sh\nprintf 'Location: /index.html\\n\\n'\n",
    );
    dir.script(
        "cgi-bin/to-program",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/target/x?q=1\\n\\n'\n",
    );
    dir.script(
        "cgi-bin/target",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s %s' \"$REQUEST_METHOD\" \"$PATH_INFO\" \"$QUERY_STRING\"\n",
    );
    dir.script(
        "cgi-bin/to-dotfile",
        "#!/bin/sh\nprintf 'Location: /.env\\n\\n'\n",
    );
    dir.file(".env", "SECRET\n");
    let server = Towergate::start(dir.path(), &[]);

    let response = get(server.addr, "/cgi-bin/to-static");
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("content-type"), Some("text/html"));
    assert_eq!(response.text(), "<p>the index</p>\n");

    let response = get(server.addr, "/cgi-bin/to-program");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "GET /x q=1");

    let response = get(server.addr, "/cgi-bin/to-dotfile");
    assert_eq!(response.status(), 404);
    assert!(!response.text().contains("SECRET"));
}

#[test]
fn an_absolute_form_target_names_the_server_not_the_host_header() {
    let dir = TempDir::new("cli-absolute");
    dir.script(
        "cgi-bin/where",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s|%s|%s|%s' \"$SERVER_NAME\" \"$SERVER_PORT\" \"$HTTP_HOST\" \"$SCRIPT_NAME\" \"$PATH_INFO\"\n",
    );
    let server = Towergate::start(dir.path(), &[]);
    let response = exchange(
        server.addr,
        b"GET http://example.com:8080/cgi-bin/where/p HTTP/1.1\r\nHost: other.test:9\r\nConnection: close\r\n\r\n",
    );
    let response = WireResponse::parse(&response, false);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text(),
        "example.com|8080|example.com:8080|/cgi-bin/where|/p"
    );

    // Without a port, and with user information that must not reach Host.
    let response = exchange(
        server.addr,
        b"GET http://user@example.org/cgi-bin/where HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    let response = WireResponse::parse(&response, false);
    assert_eq!(
        response.text(),
        "example.org|80|example.org:80|/cgi-bin/where|"
    );

    // An origin-form target keeps Host.
    let response = exchange(
        server.addr,
        b"GET /cgi-bin/where HTTP/1.1\r\nHost: other.test:9\r\nConnection: close\r\n\r\n",
    );
    let response = WireResponse::parse(&response, false);
    assert_eq!(response.text(), "other.test|9|other.test:9|/cgi-bin/where|");
}

#[test]
fn the_access_line_is_written_at_completion_with_bytes_and_outcome() {
    let dir = TempDir::new("cli-access");
    dir.file("index.html", "0123456789\n");
    // Its head and 7 bytes, then it hangs until the time limit ends the body with an error.
    dir.script(
        "cgi-bin/partial",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nexec sleep 30\n",
    );
    // Streams until the client goes away.
    dir.script(
        "cgi-bin/endless",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec yes\n",
    );
    let server = Towergate::start(dir.path(), &["--timeout", "1"]);

    assert_eq!(get(server.addr, "/index.html").text(), "0123456789\n");
    assert!(server.wait_log("\"GET /index.html HTTP/1.1\" 200 11 "));

    let response = exchange(
        server.addr,
        b"GET /cgi-bin/partial HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    // The chunk, but no last chunk: the client sees the truncation.
    assert!(response.ends_with("\r\n\r\n7\r\npartial\r\n"), "{response}");
    assert!(server.wait_log("\"GET /cgi-bin/partial HTTP/1.1\" 200 7 "));

    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /cgi-bin/endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut stream, &mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(stream);
    assert!(server.wait_log("\"GET /cgi-bin/endless HTTP/1.1\" 200 "));

    let (_, log) = server.stop();
    let line = |needle: &str| {
        log.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} line in\n{log}"))
            .to_owned()
    };
    let complete = line("\"GET /index.html HTTP/1.1\"");
    assert!(complete.contains(" INFO towergate::access: "), "{complete}");
    assert!(!complete.contains("incomplete"), "{complete}");
    let failed = line("\"GET /cgi-bin/partial HTTP/1.1\"");
    assert!(failed.contains(" WARN towergate::access: "), "{failed}");
    assert!(failed.contains(" 200 7 "), "{failed}");
    assert!(failed.contains("incomplete: "), "{failed}");
    let gone = line("\"GET /cgi-bin/endless HTTP/1.1\"");
    assert!(gone.contains(" INFO towergate::access: "), "{gone}");
    assert!(
        gone.contains("incomplete: connection closed before the end"),
        "{gone}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn max_body_refuses_larger_bodies_declared_or_chunked() {
    let dir = TempDir::new("cli-max-body");
    dir.script(
        "cgi-bin/count",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s:' \"$CONTENT_LENGTH\"\nwc -c | tr -d ' \\n'\n",
    );
    let server = Towergate::start(dir.path(), &["--max-body", "1K"]);
    let post = |headers: &str, body: &[u8]| {
        let mut request = format!(
            "POST /cgi-bin/count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(body);
        WireResponse::parse(&exchange(server.addr, &request), false)
    };
    let response = post("Content-Length: 1024\r\n", &[b'a'; 1024]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "1024:1024");

    assert_eq!(
        post("Content-Length: 1025\r\n", &[b'a'; 1025]).status(),
        413
    );

    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'b'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(
        post("Transfer-Encoding: chunked\r\n", &chunked).status(),
        413
    );

    let output = Command::new(TOWERGATE)
        .args(["serve", "--max-body", "lots"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--max-body"));
}

/// Clients that send a request head one line at a time, forever, until told to stop.
struct Slowloris {
    streams: Vec<std::net::TcpStream>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slowloris {
    fn start(addr: std::net::SocketAddr, count: usize) -> Slowloris {
        let streams: Vec<_> = (0..count).map(|_| connect(addr)).collect();
        let mut writers: Vec<_> = streams.iter().map(|s| s.try_clone().unwrap()).collect();
        for writer in &mut writers {
            let _ = writer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                for writer in &mut writers {
                    let _ = writer.write_all(b"X-Slow: 1\r\n");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Slowloris {
            streams,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn normal_clients_are_served_while_slowloris_connections_trickle() {
    let dir = TempDir::new("cli-slowloris");
    dir.file("index.html", "still here\n");

    // Under the connection cap: the attack holds 20 connections, a normal client is served
    // next to them at once.
    let server = Towergate::start(
        dir.path(),
        &["--max-connections", "64", "--header-timeout", "30"],
    );
    let attack = Slowloris::start(server.addr, 20);
    let response = get(server.addr, "/index.html");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "still here\n");
    drop(attack);
    drop(server);

    // At the cap: the attack holds every connection slot, so the normal client waits in
    // the listen queue until the header timeout closes the trickling connections; then it
    // is served.
    let server = Towergate::start(
        dir.path(),
        &["--max-connections", "8", "--header-timeout", "1"],
    );
    let mut attack = Slowloris::start(server.addr, 8);
    let response = get(server.addr, "/index.html");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "still here\n");
    for stream in &mut attack.streams {
        let (closed, sent) = closed_by_server(stream);
        assert!(closed, "a slowloris connection stayed open");
        assert!(!sent.starts_with(b"HTTP/1.1 200"), "{sent:?}");
    }
    drop(attack);
    let (_, log) = server.stop();
    assert!(log.contains("towergate::connection"), "{log}");
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let dir = TempDir::new("cli-idle");
    dir.file("index.html", "x\n");
    let server = Towergate::start(
        dir.path(),
        &["--idle-timeout", "0.5", "--header-timeout", "60"],
    );
    // A connection that never sends anything.
    let mut silent = connect(server.addr);
    assert_eq!(closed_by_server(&mut silent), (true, Vec::new()));

    // A keep-alive connection after its response.
    let mut kept = connect(server.addr);
    kept.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (closed, sent) = closed_by_server(&mut kept);
    assert!(closed);
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"), "{sent}");
    assert!(sent.ends_with("\r\n\r\nx\n"), "{sent}");
    let (_, log) = server.stop();
    assert!(log.contains("closed: idle timeout"), "{log}");
}

#[tokio::test]
async fn http2_streams_share_a_connection_and_an_idle_one_is_closed() {
    use http_body_util::BodyExt;

    let dir = TempDir::new("cli-h2");
    dir.file("index.html", "over h2\n");
    dir.script(
        "cgi-bin/proto",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s' \"$SERVER_PROTOCOL\" \"$SERVER_NAME\"\n",
    );
    let server = Towergate::start(dir.path(), &["--idle-timeout", "0.5"]);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 with prior knowledge");
    let connection = tokio::spawn(connection);
    let get = |path: &str| {
        let mut sender = sender.clone();
        let request = http::Request::get(format!("http://h2.test{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        async move {
            let response = sender.send_request(request).await.expect("a response");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    // Two streams at once on the one connection.
    let (file, program) = tokio::join!(get("/index.html"), get("/cgi-bin/proto"));
    assert_eq!(file, (200, "over h2\n".to_owned()));
    assert_eq!(program, (200, "HTTP/2.0 h2.test".to_owned()));
    // Nothing in flight and nothing sent: the server ends the connection, while the client
    // still holds it (its sender alive).
    let ended = tokio::time::timeout(towergate_support::LIMIT, connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection stayed open");
    drop(sender);
    let (_, log) = server.stop();
    assert!(log.contains("closed: idle timeout"), "{log}");
    assert!(
        log.contains("\"GET http://h2.test/cgi-bin/proto HTTP/2.0\" 200 16 "),
        "{log}"
    );
}

#[test]
fn accept_failures_back_off_and_the_server_recovers() {
    let dir = TempDir::new("cli-emfile");
    dir.file("index.html", "back\n");
    let server = Towergate::start_with(
        dir.path(),
        &["--max-connections", "200", "--idle-timeout", "60"],
        Some(48),
    );
    // More connections than descriptors: accept fails with EMFILE while they stay open.
    let hogs: Vec<_> = (0..80).map(|_| connect(server.addr)).collect();
    assert!(server.wait_log("accept failed"), "{}", server.log());
    std::thread::sleep(Duration::from_millis(500));
    drop(hogs);
    assert_eq!(get(server.addr, "/index.html").text(), "back\n");
    let (_, log) = server.stop();
    // One warning per episode of failures, not one per failed accept (dozens here).
    assert!(log.matches("accept failed").count() <= 3, "{log}");
    assert!(log.contains("accepting again after "), "{log}");
}

#[test]
fn sigterm_finishes_requests_in_flight_then_answers_503_and_ends_every_program() {
    let dir = TempDir::new("cli-shutdown");
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // Finishes within the grace.
    dir.script(
        "cgi-bin/quick",
        "#!/bin/sh\necho $$ > \"$TG_PIDS/quick\"\nsleep 1\nprintf 'Content-Type: text/plain\\n\\nquick done'\n",
    );
    // Sends nothing, ignores SIGTERM, and so does its child.
    dir.script(
        "cgi-bin/stuck",
        "#!/bin/sh\ntrap '' TERM\necho $$ > \"$TG_PIDS/stuck\"\nsleep 300 &\nwait\nwait\n",
    );
    let server = Towergate::start(
        dir.path(),
        &[
            "--grace",
            "3",
            "--env",
            &format!("TG_PIDS={}", pids.display()),
        ],
    );
    let addr = server.addr;
    let quick = std::thread::spawn(move || get(addr, "/cgi-bin/quick"));
    let stuck = std::thread::spawn(move || get(addr, "/cgi-bin/stuck"));
    assert!(eventually(|| pids.join("quick").exists()
        && pids.join("stuck").exists()
        && server.programs().len() >= 3));

    server.signal(rustix::process::Signal::TERM);
    assert!(server.wait_log("shutting down"), "{}", server.log());
    // No new connections once shutting down.
    assert!(std::net::TcpStream::connect(addr).is_err());

    let quick = quick.join().unwrap();
    assert_eq!(quick.status(), 200);
    assert_eq!(quick.text(), "quick done");
    let stuck = stuck.join().unwrap();
    assert_eq!(stuck.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(stuck.header("connection"), Some("close"));
    let mark = server.mark.clone();
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        eventually(|| towergate_support::marked_processes(&mark).is_empty()),
        "programs left behind: {:?}",
        towergate_support::marked_processes(&mark)
    );
    assert!(
        log.contains("\"GET /cgi-bin/quick HTTP/1.1\" 200 10 "),
        "{log}"
    );
    assert!(
        log.contains("\"GET /cgi-bin/stuck HTTP/1.1\" 503 "),
        "{log}"
    );
}

#[test]
fn past_max_waiting_a_request_gets_503_at_once() {
    let dir = TempDir::new("cli-max-waiting");
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    dir.script(
        "cgi-bin/held",
        "#!/bin/sh\necho $$ > \"$TG_PIDS/held\"\nexec sleep 300\n",
    );
    // One slot and no line: with the slot taken, a request could wait a minute, but may not.
    let server = Towergate::start(
        dir.path(),
        &[
            "--max-processes",
            "1",
            "--max-waiting",
            "0",
            "--slot-wait",
            "60",
            "--grace",
            "1",
            "--env",
            &format!("TG_PIDS={}", pids.display()),
        ],
    );
    let addr = server.addr;
    let held = std::thread::spawn(move || get(addr, "/cgi-bin/held"));
    assert!(eventually(|| pids.join("held").exists()));
    let refused = get(addr, "/cgi-bin/held");
    assert_eq!(refused.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.text(), "503 Service Unavailable\n");
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(held.join().unwrap().status(), 503);
    assert!(
        log.contains("the line for a process slot is full (0 waiting)"),
        "{log}"
    );
}

#[test]
fn a_static_file_read_stuck_past_the_grace_does_not_hold_the_exit() {
    let dir = TempDir::new("cli-stuck-read");
    // Opening it blocks one of the runtime's blocking threads for good.
    fifo::mkfifo(&dir.path().join("stuck"));
    let server = Towergate::start(dir.path(), &["--grace", "1"]);
    let addr = server.addr;
    let stuck = std::thread::spawn(move || get(addr, "/stuck"));
    assert!(eventually(|| fifo::opening_a_fifo(server.pid())));
    // Dropping the runtime would wait for the blocked read forever.
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    let stuck = stuck.join().unwrap();
    assert_eq!(stuck.status_line, "HTTP/1.1 503 Service Unavailable");
    assert!(log.contains("\"GET /stuck HTTP/1.1\" 503 "), "{log}");
}

#[test]
fn server_options_are_checked() {
    for args in [
        &["--header-timeout", "0"][..],
        &["--idle-timeout=-1"],
        &["--grace", "soon"],
        &["--max-connections", "0"],
        &["--max-waiting", "some"],
    ] {
        let output = Command::new(TOWERGATE)
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let option = args[0].split('=').next().unwrap_or_default();
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
    let output = Command::new(TOWERGATE)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--header-timeout",
        "--idle-timeout",
        "--max-connections",
        "--grace",
        "--max-body",
        "--slot-wait",
        "--max-waiting",
        "--body-timeout",
        "--spool-limit",
        "[default: 1G]",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
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
