//! A real Apache httpd (Debian's `apache2`, with `mod_cgid`) running compiled CGI programs,
//! for the integration tests; requests go through the shared [`wire`] client.
//!
//! Apache runs the configuration the `towergate::cgi` docs show, binds `127.0.0.1` on a
//! free port, keeps everything (config, cgi-bin, logs, pid file, cgid socket) in a temporary
//! directory, and is stopped by pid (SIGTERM, then SIGKILL) and reaped when the [`Apache`]
//! is dropped, which also removes the directory. Declared from the test file with
//! `#[path = "support/apache.rs"]`.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::wire;
pub use crate::support::wire::WireResponse;

/// How long Apache may take to start accepting connections.
const START_LIMIT: Duration = Duration::from_secs(20);
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
    pub fn send(&self, request: &[u8]) -> WireResponse {
        wire::send("apache2", self.port, request, || self.error_log())
    }

    /// `GET target` over HTTP/1.1, with `extra` header lines (each ending in CRLF).
    pub fn get_with(&self, target: &str, extra: &str) -> WireResponse {
        self.send(wire::get_request(self.port, target, extra).as_bytes())
    }

    /// `GET target` over HTTP/1.1.
    pub fn get(&self, target: &str) -> WireResponse {
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
