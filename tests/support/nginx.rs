//! A real nginx with fcgiwrap running compiled CGI programs, for the integration tests;
//! requests go through the shared [`wire`] client.
//!
//! fcgiwrap is started with the command, and nginx with the `server` block, that the
//! `towergate::cgi` docs show. nginx runs in the foreground as a single process, binds
//! `127.0.0.1` on a free port, and keeps everything (config, cgi-bin, socket, pid, logs,
//! temporary files) in a temporary directory. Both are stopped by pid (SIGTERM, then
//! SIGKILL) and reaped when the [`Nginx`] is dropped, which also removes the directory.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::server::{self, Process};
use crate::support::wire;
pub use crate::support::wire::WireResponse;

/// How long fcgiwrap or nginx may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// The documented fcgiwrap command line and nginx `server` block.
fn documented_setup() -> (String, String) {
    let command = server::doc_block("//! nginx with fcgiwrap");
    let start = "//! The programs' standard error, where towergate's log lines go";
    (command, server::doc_block(start))
}

/// A running fcgiwrap and nginx.
pub struct Nginx {
    nginx: Option<Process>,
    fcgiwrap: Option<Process>,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts fcgiwrap and nginx with each `(name, program)` linked into `/cgi-bin/`. Fails
    /// the test, with the reason, when either is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Nginx {
        let nginx_binary = find_binary("nginx", "nginx-light");
        let fcgiwrap_binary = find_binary("fcgiwrap", "fcgiwrap");
        let dir = server::temp_dir("nginx");
        std::fs::create_dir_all(dir.join("cgi-bin")).expect("create cgi-bin");
        for (name, program) in programs {
            std::os::unix::fs::symlink(program, dir.join("cgi-bin").join(name))
                .expect("link a CGI program into cgi-bin");
        }
        let mut server = Nginx {
            nginx: None,
            fcgiwrap: None,
            port: 0,
            dir,
        };
        let socket = server.dir.join("fcgiwrap.socket");
        let (command, _) = documented_setup();
        let command = command.replace("/run/fcgiwrap.socket", &socket.display().to_string());
        let mut words = command.split_whitespace();
        assert_eq!(words.next(), Some("fcgiwrap"), "{command}");
        // The programs' standard error is fcgiwrap's: kept in a file, never a pipe that
        // could fill up.
        let log = std::fs::File::create(server.dir.join("fcgiwrap.log")).expect("fcgiwrap.log");
        let mut fcgiwrap = Command::new(&fcgiwrap_binary);
        fcgiwrap.args(words);
        server.fcgiwrap = Some(Process::spawn(&mut fcgiwrap, log, STOP_LIMIT));
        if let Err(e) = server.wait_until(|| server::socket_accepts(&socket), "fcgiwrap") {
            panic!("fcgiwrap did not start: {e}");
        }
        // A free port is found by binding port 0; another process could take it before
        // nginx binds it, so try a few times.
        let started = server::on_free_port(|port| {
            server.port = port;
            let config = server.dir.join("nginx.conf");
            std::fs::write(&config, config_text(&server.dir, server.port))
                .expect("write nginx.conf");
            let mut nginx = Command::new(&nginx_binary);
            nginx
                .arg("-p")
                .arg(&server.dir)
                .arg("-e")
                .arg(server.dir.join("error.log"))
                .arg("-c")
                .arg(&config);
            server.nginx = Some(Process::spawn(&mut nginx, Stdio::piped(), STOP_LIMIT));
            let started = server.wait_until(|| server::port_accepts(port), "nginx");
            if started.is_err() {
                // Dropping the guard stops nginx.
                drop(server.nginx.take());
            }
            started
        });
        if let Err(last_error) = started {
            panic!("nginx did not start: {last_error}");
        }
        server
    }

    /// The port nginx listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// nginx's error log so far, then fcgiwrap's standard error, where the CGI programs'
    /// standard error goes.
    pub fn error_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        read("error.log") + &read("fcgiwrap.log")
    }

    /// Sends `request` (a complete HTTP/1.1 request; it should say `Connection: close`) and
    /// reads the response until nginx closes the connection.
    pub fn send(&self, request: &[u8]) -> WireResponse {
        wire::send("nginx", self.port, request, || self.error_log())
    }

    /// `GET target` over HTTP/1.1.
    pub fn get(&self, target: &str) -> WireResponse {
        self.send(wire::get_request(self.port, target, "").as_bytes())
    }

    /// Waits until `ready`, failing when fcgiwrap or nginx has exited or [`server::START_LIMIT`]
    /// has passed.
    fn wait_until(&mut self, ready: impl Fn() -> bool, what: &str) -> Result<(), String> {
        let dir = self.dir.clone();
        let read = move |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let error_log = || read("error.log") + &read("fcgiwrap.log");
        let mut children = [
            ("fcgiwrap", self.fcgiwrap.as_mut()),
            ("nginx", self.nginx.as_mut()),
        ]
        .into_iter()
        .filter_map(|(name, child)| Some((name, child?)))
        .collect::<Vec<_>>();
        server::wait_ready(
            what,
            server::START_LIMIT,
            &mut children,
            "\n",
            error_log,
            ready,
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Dropping each guard stops its process: nginx first, then fcgiwrap.
        drop(self.nginx.take());
        drop(self.fcgiwrap.take());
        server::remove_dir(&self.dir);
    }
}

/// A main nginx configuration holding the documented `server` block, with this server's
/// directory in place of `/srv` and the socket's directory, and `port` in place of 8080.
/// Everything outside the block only keeps nginx in the foreground, in one process, and
/// its files in `dir`.
fn config_text(dir: &Path, port: u16) -> String {
    let d = dir.display().to_string();
    let (_, server) = documented_setup();
    for placeholder in ["/srv$", "unix:/run/fcgiwrap.socket;", "127.0.0.1:8080;"] {
        assert!(
            server.contains(placeholder),
            "{placeholder} is not in {server}"
        );
    }
    let server = server
        .replace("/srv$", &format!("{d}$"))
        .replace(
            "unix:/run/fcgiwrap.socket;",
            &format!("unix:{d}/fcgiwrap.socket;"),
        )
        .replace("127.0.0.1:8080;", &format!("127.0.0.1:{port};"));
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nfastcgi_temp_path {d}/fastcgi;\n\
         proxy_temp_path {d}/proxy;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {server}}}\n"
    )
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    server::find_binary(name, true).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the nginx tests need nginx and fcgiwrap \
             (`bash scripts/test.sh` installs them, or `apt-get install {package}`)"
        )
    })
}
