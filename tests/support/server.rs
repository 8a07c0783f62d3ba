//! Plumbing shared by the real-web-server harnesses (lighttpd, nginx, Apache): free ports,
//! waiting for a server to accept, the configuration blocks in the `towergate::cgi` docs,
//! temporary directories, finding a server binary, and stopping a child process by pid.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to start accepting connections.
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// How often [`wait_ready`] and [`Process::stop`] look again.
const POLL: Duration = Duration::from_millis(20);

/// A port on 127.0.0.1 that was free a moment ago (found by binding port 0; another process
/// could take it before the server binds it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Whether 127.0.0.1:`port` accepts a TCP connection now.
pub fn port_accepts(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Whether the unix socket at `path` accepts a connection now.
pub fn socket_accepts(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// Runs `start` on a [`free_port`], up to three times while it fails with an error that
/// says "in use" (another process took the port first); otherwise the error it gave last.
pub fn on_free_port<T>(mut start: impl FnMut(u16) -> Result<T, String>) -> Result<T, String> {
    let mut last_error = String::new();
    for _ in 0..3 {
        match start(free_port()) {
            Ok(started) => return Ok(started),
            Err(e) => {
                last_error = e;
                if !last_error.contains("in use") {
                    break;
                }
            }
        }
    }
    Err(last_error)
}

/// Polls every 20 ms until `ready`. Fails with "`name` exited with `status`: `stderr`"
/// then `after_stderr` and the `error_log` when one of the named `children` has exited
/// (checked first), or with "`what` did not accept connections within `limit`: " and the
/// `error_log` once `limit` has passed.
pub fn wait_ready(
    what: &str,
    limit: Duration,
    children: &mut [(&str, &mut Process)],
    after_stderr: &str,
    error_log: impl Fn() -> String,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        for (name, child) in children.iter_mut() {
            if let Some((status, stderr)) = child.exited() {
                return Err(format!(
                    "{name} exited with {status}: {stderr}{after_stderr}{}",
                    error_log()
                ));
            }
        }
        if ready() {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{what} did not accept connections within {limit:?}: {}",
                error_log()
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_ready`] for one server `what` (its `child`) to accept connections on
/// 127.0.0.1:`port`, within [`START_LIMIT`].
pub fn wait_for_port(
    what: &str,
    child: &mut Process,
    port: u16,
    error_log: impl Fn() -> String,
) -> Result<(), String> {
    let ready = || port_accepts(port);
    wait_ready(
        what,
        START_LIMIT,
        &mut [(what, child)],
        "",
        error_log,
        ready,
    )
}

/// Removes `dir` and everything in it; an empty path (a directory taken back from a server
/// that did not start) is left alone.
pub fn remove_dir(dir: &Path) {
    if !dir.as_os_str().is_empty() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The `text` block after `marker` in `src/cgi/mod.rs` (the `towergate::cgi` docs), without
/// the `//! ` prefixes, so that the tests run exactly what the docs tell users to.
pub fn doc_block(marker: &str) -> String {
    doc_block_in(include_str!("../../src/cgi/mod.rs"), marker)
}

/// The `text` block after `marker` in the module docs `source`, without the `//! `
/// prefixes.
pub fn doc_block_in(source: &str, marker: &str) -> String {
    let start = source
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in the module docs"));
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

/// A new, empty `towergate-<name>-<pid>-<n>` directory under the system temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "towergate-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// The first file `name` in `$PATH` (when `in_path`), then `/usr/sbin`, `/usr/local/sbin`
/// and `/sbin`.
pub fn find_binary(name: &str, in_path: bool) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .filter(|_| in_path)
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A child process that is stopped by pid when dropped (or [`stop`](Process::stop)ped):
/// SIGTERM for a clean shutdown, SIGKILL if it lingers past `grace`; always reaped.
pub struct Process {
    child: Option<Child>,
    grace: Duration,
}

impl Process {
    /// Spawns `command` with no standard input or output and standard error to `stderr`,
    /// guarded, giving it `grace` to exit after SIGTERM. Fails the test when it cannot run.
    pub fn spawn(command: &mut Command, stderr: impl Into<Stdio>, grace: Duration) -> Process {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                let program = Path::new(command.get_program()).display();
                panic!("cannot run {program}: {e}")
            });
        Process::new(child, grace)
    }

    /// Guards `child`, giving it `grace` to exit after SIGTERM.
    pub fn new(child: Child, grace: Duration) -> Process {
        Process {
            child: Some(child),
            grace,
        }
    }

    /// The exit status and piped standard error (if any, read once) when the process has
    /// exited.
    pub fn exited(&mut self) -> Option<(ExitStatus, String)> {
        let child = self.child.as_mut()?;
        let Ok(Some(status)) = child.try_wait() else {
            return None;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        Some((status, stderr))
    }

    /// Stops and reaps the process now; later calls do nothing.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + self.grace;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
