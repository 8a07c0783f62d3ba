//! Shared helpers for the integration tests: locating the compiled example binaries and
//! running a CGI program once with a cleared environment.
#![allow(dead_code, unreachable_pub)]

pub mod fcgi;
pub mod lighttpd;
pub mod server;
pub mod wire;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The directory cargo builds examples into (`target/<profile>/examples`), found from the
/// test binary's own path (`target/<profile>/deps/<test>`).
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory")
        .join("examples")
}

/// The path of a compiled example, building it (with every feature) when it is missing
/// or older than the crate's sources, so that a test never runs a stale binary.
/// `bash scripts/test.sh` builds them all first; this keeps `cargo test` alone working.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let path = examples_dir().join(name);
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if is_stale(&path, name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--all-features", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(path.exists(), "example binary {} missing", path.display());
    path
}

/// Whether `binary` is missing or older than a source it is built from.
fn is_stale(binary: &Path, name: &str) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![
        root.join("Cargo.toml"),
        root.join("examples").join(format!("{name}.rs")),
    ];
    let mut dirs = vec![root.join("src"), root.join("examples").join("common")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                sources.push(path);
            }
        }
    }
    sources.iter().any(|source| {
        source
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > built)
    })
}

/// How long a CGI program run by a test may take before it is killed and the test fails.
pub const PROGRAM_LIMIT: Duration = Duration::from_secs(60);

/// Runs a CGI program once: a cleared environment holding only `env`, `stdin` written to it
/// on a thread (and closed), and its whole output collected. The run is bounded by
/// [`PROGRAM_LIMIT`]: past it the program is killed and the test fails.
pub fn run_cgi(program: &Path, env: &[(&str, &[u8])], stdin: &[u8]) -> Output {
    run_cgi_with(program, env, stdin, false)
}

/// Like [`run_cgi`], but standard input stays open after `stdin` is written, until the
/// program has exited: the program must not wait for end-of-file.
pub fn run_cgi_stdin_open(program: &Path, env: &[(&str, &[u8])], stdin: &[u8]) -> Output {
    run_cgi_with(program, env, stdin, true)
}

fn run_cgi_with(program: &Path, env: &[(&str, &[u8])], stdin: &[u8], keep_open: bool) -> Output {
    use std::os::unix::ffi::OsStrExt;
    let mut command = Command::new(program);
    command.env_clear();
    for (key, value) in env {
        command.env(key, std::ffi::OsStr::from_bytes(value));
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn CGI program");
    let watchdog = Watchdog::start(child.id(), PROGRAM_LIMIT);
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit without reading all of it.
        let _ = input.write_all(&stdin);
        // Returned to keep the pipe open until the program has exited.
        keep_open.then_some(input)
    });
    let output = child.wait_with_output().expect("wait for CGI program");
    let kept = writer.join().expect("stdin writer");
    drop(kept);
    watchdog.finish();
    output
}

/// Kills a process by pid when it outlives its time limit; [`Watchdog::finish`] then fails
/// the test.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: u32,
    limit: Duration,
}

impl Watchdog {
    /// Watches process `pid` for `limit`.
    pub fn start(pid: u32, limit: Duration) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                flag.store(true, Ordering::SeqCst);
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Watchdog {
            done: Some(done),
            fired,
            thread: Some(thread),
            pid,
            limit,
        }
    }

    /// Stops watching (call it once the process has been reaped); panics if the process
    /// had to be killed.
    pub fn finish(mut self) {
        self.stop();
        assert!(
            !self.fired.load(Ordering::SeqCst),
            "process {} did not finish within {:?}: killed",
            self.pid,
            self.limit
        );
    }

    fn stop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}
