//! A real lighttpd running compiled CGI programs, for the integration tests; requests go
//! through the shared [`wire`] client.
//!
//! lighttpd runs the configuration the `towergate::cgi` docs show, binds `127.0.0.1` on a
//! free port, keeps everything (config, docroot, cgi-bin, logs, uploads) in a temporary
//! directory, and is stopped by pid (SIGTERM, then SIGKILL) and reaped when the
//! [`Lighttpd`] is dropped, which also removes the directory.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::wire;
pub use super::wire::WireResponse;

/// How long lighttpd may take to start accepting connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The lighttpd configuration shown in the `towergate::cgi` docs (the `text` block after
/// "lighttpd (`mod_cgi`)"), so that the tests run exactly what the docs tell users to.
fn documented_config() -> String {
    let source = include_str!("../../src/cgi/mod.rs");
    let start = source
        .find("//! lighttpd (`mod_cgi`)")
        .expect("the lighttpd section of src/cgi/mod.rs");
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

/// A running lighttpd.
pub struct Lighttpd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Lighttpd {
    /// Starts lighttpd with each `(name, program)` linked into its `/cgi-bin/`. Fails the
    /// test, with the reason, when lighttpd is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Lighttpd {
        let binary = find_lighttpd();
        let dir = temp_dir();
        for sub in ["htdocs", "cgi-bin", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create lighttpd directories");
        }
        for (name, program) in programs {
            std::os::unix::fs::symlink(program, dir.join("cgi-bin").join(name))
                .expect("link a CGI program into cgi-bin");
        }
        let mut last_error = String::new();
        let mut dir = dir;
        // A free port is found by binding port 0; another process could take it before
        // lighttpd binds it, so try a few times.
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("lighttpd.conf");
            std::fs::write(&config, config_text(&dir, port)).expect("write lighttpd.conf");
            let child = Command::new(&binary)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = Lighttpd { child, port, dir };
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
        panic!("lighttpd did not start: {last_error}");
    }

    /// The port lighttpd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// lighttpd's error log so far, then what the CGI programs wrote to standard error
    /// (lighttpd's `server.breakagelog`).
    pub fn error_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        read("error.log") + &read("cgi.log")
    }

    /// Sends `request` (a complete HTTP/1.1 request; it should say `Connection: close`) and
    /// reads the response until lighttpd closes the connection.
    pub fn send(&self, request: &[u8]) -> WireResponse {
        wire::send("lighttpd", self.port, request, || self.error_log())
    }

    /// `GET target` over HTTP/1.1.
    pub fn get(&self, target: &str) -> WireResponse {
        self.send(wire::get_request(self.port, target, "").as_bytes())
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
                    "lighttpd exited with {status}: {stderr}{}",
                    self.error_log()
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "lighttpd did not accept connections within {START_LIMIT:?}: {}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, SIGKILL if it lingers; always reaped.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
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
/// `/srv`, `/var/log/lighttpd`, `/var/tmp` and 8080.
fn config_text(dir: &Path, port: u16) -> String {
    let dir = dir.display().to_string();
    let config = documented_config();
    for placeholder in ["\"/srv/", "/var/log/lighttpd/", "\"/var/tmp\"", "= 8080\n"] {
        assert!(
            config.contains(placeholder),
            "{placeholder} is not in {config}"
        );
    }
    config
        .replace("\"/srv/", &format!("\"{dir}/"))
        .replace("/var/log/lighttpd/", &format!("{dir}/"))
        .replace("\"/var/tmp\"", &format!("\"{dir}/tmp\""))
        .replace("= 8080\n", &format!("= {port}\n"))
}

fn find_lighttpd() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()]);
    for dir in candidates {
        let path = dir.join("lighttpd");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "lighttpd is not installed: the real-server tests need it \
         (`bash scripts/test.sh` installs it, or `apt-get install lighttpd`)"
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
        "towergate-lighttpd-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
