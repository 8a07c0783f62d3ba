//! A real nginx with fcgiwrap running compiled CGI programs, for the integration tests;
//! requests go through the shared [`wire`] client.
//!
//! fcgiwrap is started with the command, and nginx with the `server` block, that the
//! `towergate::cgi` docs show. nginx runs in the foreground as a single process, binds
//! `127.0.0.1` on a free port, and keeps everything (config, cgi-bin, socket, pid, logs,
//! temporary files) in a temporary directory. Both are stopped by pid (SIGTERM, then
//! SIGKILL) and reaped when the [`Nginx`] is dropped, which also removes the directory.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::wire;
pub use crate::support::wire::WireResponse;

/// How long fcgiwrap or nginx may take to start accepting connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The `text` block after `marker` in the `towergate::cgi` docs, without the `//! `
/// prefixes.
fn documented_block(marker: &str) -> String {
    let source = include_str!("../../src/cgi/mod.rs");
    let start = source
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in src/cgi/mod.rs"));
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

/// The documented fcgiwrap command line and nginx `server` block.
fn documented_setup() -> (String, String) {
    let command = documented_block("//! nginx with fcgiwrap");
    let start = "//! The programs' standard error, where towergate's log lines go";
    (command, documented_block(start))
}

/// A running fcgiwrap and nginx.
pub struct Nginx {
    nginx: Option<Child>,
    fcgiwrap: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts fcgiwrap and nginx with each `(name, program)` linked into `/cgi-bin/`. Fails
    /// the test, with the reason, when either is not installed or does not start.
    pub fn start(programs: &[(&str, &Path)]) -> Nginx {
        let nginx_binary = find_binary("nginx", "nginx-light");
        let fcgiwrap_binary = find_binary("fcgiwrap", "fcgiwrap");
        let dir = temp_dir();
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
        server.fcgiwrap = Some(
            Command::new(&fcgiwrap_binary)
                .args(words)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", fcgiwrap_binary.display())),
        );
        if let Err(e) = server.wait_until(|| UnixStream::connect(&socket).is_ok(), "fcgiwrap") {
            panic!("fcgiwrap did not start: {e}");
        }
        let mut last_error = String::new();
        // A free port is found by binding port 0; another process could take it before
        // nginx binds it, so try a few times.
        for _ in 0..3 {
            server.port = free_port();
            let config = server.dir.join("nginx.conf");
            std::fs::write(&config, config_text(&server.dir, server.port))
                .expect("write nginx.conf");
            server.nginx = Some(
                Command::new(&nginx_binary)
                    .arg("-p")
                    .arg(&server.dir)
                    .arg("-e")
                    .arg(server.dir.join("error.log"))
                    .arg("-c")
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx_binary.display())),
            );
            let port = server.port;
            match server.wait_until(
                || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok(),
                "nginx",
            ) {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    if let Some(child) = server.nginx.take() {
                        stop(child);
                    }
                    if !last_error.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start: {last_error}");
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

    /// Waits until `ready`, failing when fcgiwrap or nginx has exited or `START_LIMIT`
    /// has passed.
    fn wait_until(&mut self, ready: impl Fn() -> bool, what: &str) -> Result<(), String> {
        let started = Instant::now();
        let dir = self.dir.clone();
        let read = move |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let error_log = || read("error.log") + &read("fcgiwrap.log");
        loop {
            for (name, child) in [("fcgiwrap", &mut self.fcgiwrap), ("nginx", &mut self.nginx)] {
                let Some(child) = child else { continue };
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    return Err(format!(
                        "{name} exited with {status}: {stderr}\n{}",
                        error_log()
                    ));
                }
            }
            if ready() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "{what} did not accept connections within {START_LIMIT:?}: {}",
                    error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(child) = self.nginx.take() {
            stop(child);
        }
        if let Some(child) = self.fcgiwrap.take() {
            stop(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM for a clean shutdown, SIGKILL if it lingers; always reaped.
fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
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
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()]);
    for dir in candidates {
        let path = dir.join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: the nginx tests need nginx and fcgiwrap \
         (`bash scripts/test.sh` installs them, or `apt-get install {package}`)"
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
        "towergate-nginx-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
