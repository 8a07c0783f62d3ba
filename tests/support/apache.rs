//! A real Apache httpd (Debian's `apache2`, with `mod_cgid`) running compiled CGI programs,
//! for the integration tests; requests go through the shared [`wire`] client.
//!
//! Apache runs the configuration the `towergate::cgi` docs show, binds `127.0.0.1` on a
//! free port, keeps everything (config, cgi-bin, logs, pid file, cgid socket) in a temporary
//! directory, and is stopped by pid (SIGTERM, then SIGKILL) and reaped when the [`Apache`]
//! is dropped, which also removes the directory. Declared from the test file with
//! `#[path = "support/apache.rs"]`.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::server::{self, Process};
use crate::support::wire;
pub use crate::support::wire::WireResponse;

/// How long Apache may take to stop after SIGTERM (the parent stops its children and the
/// cgid daemon, then exits) before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A running Apache.
pub struct Apache {
    child: Process,
    port: u16,
    dir: PathBuf,
}

impl Apache {
    /// Starts Apache with each `(name, program)` copied into its `/cgi-bin/`. Fails the
    /// test, with the reason, when Apache is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Apache {
        let binary = find_apache();
        let dir = server::temp_dir("apache");
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
        // A free port is found by binding port 0; another process could take it before
        // Apache binds it, so try a few times.
        let started = server::on_free_port(|port| {
            let config = dir.join("httpd.conf");
            std::fs::write(&config, config_text(&dir, port)).expect("write httpd.conf");
            let mut command = Command::new(&binary);
            command
                .arg("-DFOREGROUND")
                .arg("-f")
                .arg(&config)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LANG", "C");
            let mut child = Process::spawn(&mut command, Stdio::piped(), STOP_LIMIT);
            server::wait_for_port("apache2", &mut child, port, || error_log(&dir))
                .map(|()| (child, port))
        });
        match started {
            Ok((child, port)) => Apache { child, port, dir },
            Err(last_error) => {
                server::remove_dir(&dir);
                panic!("apache2 did not start: {last_error}")
            }
        }
    }

    /// The port Apache listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Apache's error log so far, where the CGI programs' standard error goes too.
    pub fn error_log(&self) -> String {
        error_log(&self.dir)
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
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.child.stop();
        server::remove_dir(&self.dir);
    }
}

/// Apache's error log in `dir`, so far.
fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

/// The documented configuration with this server's directory and port in place of
/// `/srv`, `/var/log/apache2`, `/run/apache2` and 8080.
fn config_text(dir: &Path, port: u16) -> String {
    let dir = dir.display().to_string();
    // The configuration the docs show (the `text` block after their section title).
    let config = server::doc_block("//! Apache 2.4 (`mod_cgid`)");
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
    server::find_binary("apache2", false).unwrap_or_else(|| {
        panic!(
            "apache2 is not installed: the Apache tests need it \
             (`bash scripts/test.sh` installs it, or `apt-get install apache2`)"
        )
    })
}
