//! A real Apache httpd (Debian's `apache2`, with `mod_cgid`) running compiled CGI programs,
//! for the integration tests, and a tiny HTTP/1.1 client.
//!
//! Apache runs the configuration the `towergate::cgi` docs show, binds `127.0.0.1` on a
//! free port, keeps everything (config, cgi-bin, logs, pid file, cgid socket) in a temporary
//! directory, and is stopped by pid (SIGTERM, then SIGKILL) and reaped when the [`Apache`]
//! is dropped, which also removes the directory. Declared from the test file with
//! `#[path = "support/apache.rs"]`.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long Apache may take to start accepting connections.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long one request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long Apache may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The Apache configuration shown in the `towergate::cgi` docs (the `text` block after
/// "Apache 2.4 (`mod_cgid`)"), so that the tests run exactly what the docs tell users to.
fn documented_config() -> String {
    let source = include_str!("../../src/cgi/mod.rs");
    let start = source
        .find("//! Apache 2.4 (`mod_cgid`)")
        .expect("the Apache section of src/cgi/mod.rs");
    let block = &source[start..];
    let open = block.find("//! ```text\n").expect("a text block") + "//! ```text\n".len();
    let close = block[open..]
        .find("//! ```\n")
        .expect("the end of the block")
        + open;
    block[open..close]
        .lines()
        .map(|line| line.strip_prefix("//! ").unwrap_or("").to_owned() + "\n")
        .collect()
}

/// A running Apache.
pub struct Apache {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Apache {
    /// Starts Apache with each `(name, program)` copied into its `/cgi-bin/`. Fails the
    /// test, with the reason, when Apache is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Apache {
        let binary = find_apache();
        let dir = temp_dir();
        let cgi_bin = dir.join("cgi-bin");
        std::fs::create_dir_all(&cgi_bin).expect("create the cgi-bin directory");
        // Run as root, Apache runs the programs as `User` (www-data): the directories and
        // programs must be readable and executable by it. A copy, not a link, so that the
        // directories the build output lives in need not be.
        for path in [&dir, &cgi_bin] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod a temporary directory");
        }
        for (name, program) in programs {
            let target = cgi_bin.join(name);
            std::fs::copy(program, &target).expect("copy a CGI program into cgi-bin");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .expect("chmod a CGI program");
        }
        let mut last_error = String::new();
        let mut dir = dir;
        // A free port is found by binding port 0; another process could take it before
        // Apache binds it, so try a few times.
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("httpd.conf");
            std::fs::write(&config, config_text(&dir, port)).expect("write httpd.conf");
            let child = Command::new(&binary)
                .arg("-DFOREGROUND")
                .arg("-f")
                .arg(&config)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LANG", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = Apache { child, port, dir };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    // Taken back so that dropping the server stops it but keeps the files.
                    dir = std::mem::take(&mut server.dir);
                    drop(server);
                    if !last_error.contains("in use") {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("apache2 did not start: {last_error}");
    }

    /// The port Apache listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Apache's error log so far, where the CGI programs' standard error goes too.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Sends `request` (a complete HTTP/1.1 request; it should say `Connection: close`) and
    /// reads the response until Apache closes the connection.
    pub fn send(&self, request: &[u8]) -> Response {
        let mut stream =
            TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect to apache2");
        stream.set_read_timeout(Some(REQUEST_LIMIT)).unwrap();
        stream.set_write_timeout(Some(REQUEST_LIMIT)).unwrap();
        stream.write_all(request).expect("send the request");
        let mut raw = Vec::new();
        if let Err(e) = stream.read_to_end(&mut raw) {
            panic!(
                "reading the response failed ({e}); got {:?}\nerror log:\n{}",
                String::from_utf8_lossy(&raw),
                self.error_log()
            );
        }
        Response::parse(&raw, request.starts_with(b"HEAD "))
    }

    /// `GET target` over HTTP/1.1, with `extra` header lines (each ending in CRLF).
    pub fn get_with(&self, target: &str, extra: &str) -> Response {
        self.send(
            format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{extra}\r\n",
                self.port
            )
            .as_bytes(),
        )
    }

    /// `GET target` over HTTP/1.1.
    pub fn get(&self, target: &str) -> Response {
        self.get_with(target, "")
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "apache2 exited with {status}: {stderr}{}",
                    self.error_log()
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "apache2 did not accept connections within {START_LIMIT:?}: {}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM: the parent stops its children and the cgid daemon, then exits. SIGKILL if
        // it lingers; always reaped.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The documented configuration with this server's directory and port in place of
/// `/srv`, `/var/log/apache2`, `/run/apache2` and 8080.
fn config_text(dir: &Path, port: u16) -> String {
    let dir = dir.display().to_string();
    let config = documented_config();
    for placeholder in [
        "\"/srv/",
        "\"/var/log/apache2/",
        "\"/run/apache2/",
        ":8080\n",
    ] {
        assert!(
            config.contains(placeholder),
            "{placeholder} is not in {config}"
        );
    }
    config
        .replace("\"/srv/", &format!("\"{dir}/"))
        .replace("\"/var/log/apache2/", &format!("\"{dir}/"))
        .replace("\"/run/apache2/", &format!("\"{dir}/"))
        .replace(":8080\n", &format!(":{port}\n"))
}

fn find_apache() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
        let path = Path::new(dir).join("apache2");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "apache2 is not installed: the Apache tests need it \
         (`bash scripts/test.sh` installs it, or `apt-get install apache2`)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "towergate-apache-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// An HTTP/1.1 response as it came off the wire.
#[derive(Debug)]
pub struct Response {
    /// The status line, without CRLF.
    pub status_line: String,
    /// The header fields, in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body with the framing removed.
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8], head_only: bool) -> Response {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked && !head_only {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        let response = Response {
            status_line,
            headers,
            body,
        };
        if let Some(length) = response.header("content-length").filter(|_| !head_only) {
            assert_eq!(
                length.parse::<usize>().ok(),
                Some(response.body.len()),
                "Content-Length does not match the body"
            );
        }
        response
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", self.status_line))
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lower case), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Removes chunked framing (RFC 9112 §7.1).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = std::str::from_utf8(&raw[..line_end]).expect("chunk size is ASCII");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        raw = &raw[size + 2..];
    }
}
