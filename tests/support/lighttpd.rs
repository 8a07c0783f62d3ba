//! A real lighttpd running compiled CGI programs, for the integration tests; requests go
//! through the shared [`wire`] client.
//!
//! lighttpd runs the configuration the `towergate::cgi` docs show, binds `127.0.0.1` on a
//! free port, keeps everything (config, docroot, cgi-bin, logs, uploads) in a temporary
//! directory, and is stopped by pid (SIGTERM, then SIGKILL) and reaped when the
//! [`Lighttpd`] is dropped, which also removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::server::{self, Process};
use super::wire;
pub use super::wire::WireResponse;

/// How long lighttpd may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A running lighttpd.
pub struct Lighttpd {
    child: Process,
    port: u16,
    dir: PathBuf,
}

impl Lighttpd {
    /// Starts lighttpd with each `(name, program)` linked into its `/cgi-bin/`. Fails the
    /// test, with the reason, when lighttpd is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Lighttpd {
        let binary = find_lighttpd();
        let dir = server::temp_dir("lighttpd");
        for sub in ["htdocs", "cgi-bin", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create lighttpd directories");
        }
        for (name, program) in programs {
            std::os::unix::fs::symlink(program, dir.join("cgi-bin").join(name))
                .expect("link a CGI program into cgi-bin");
        }
        // A free port is found by binding port 0; another process could take it before
        // lighttpd binds it, so try a few times.
        let started = server::on_free_port(|port| {
            let config = dir.join("lighttpd.conf");
            std::fs::write(&config, config_text(&dir, port)).expect("write lighttpd.conf");
            let mut command = Command::new(&binary);
            command.arg("-D").arg("-f").arg(&config);
            let mut child = Process::spawn(&mut command, Stdio::piped(), STOP_LIMIT);
            server::wait_for_port("lighttpd", &mut child, port, || error_log(&dir))
                .map(|()| (child, port))
        });
        match started {
            Ok((child, port)) => Lighttpd { child, port, dir },
            Err(last_error) => {
                server::remove_dir(&dir);
                panic!("lighttpd did not start: {last_error}")
            }
        }
    }

    /// The port lighttpd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// lighttpd's error log so far, then what the CGI programs wrote to standard error
    /// (lighttpd's `server.breakagelog`).
    pub fn error_log(&self) -> String {
        error_log(&self.dir)
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
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        self.child.stop();
        server::remove_dir(&self.dir);
    }
}

/// lighttpd's error log and `server.breakagelog` in `dir`, so far.
fn error_log(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    read("error.log") + &read("cgi.log")
}

/// The documented configuration with this server's directory and port in place of
/// `/srv`, `/var/log/lighttpd`, `/var/tmp` and 8080.
fn config_text(dir: &Path, port: u16) -> String {
    let dir = dir.display().to_string();
    // The configuration the docs show (the `text` block after their section title).
    let config = server::doc_block("//! lighttpd (`mod_cgi`)");
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
    server::find_binary("lighttpd", true).unwrap_or_else(|| {
        panic!(
            "lighttpd is not installed: the real-server tests need it \
             (`bash scripts/test.sh` installs it, or `apt-get install lighttpd`)"
        )
    })
}
