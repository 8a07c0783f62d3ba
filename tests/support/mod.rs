//! Shared helpers for the integration tests: locating the compiled example binaries and
//! running a CGI program once with a cleared environment.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The directory cargo builds examples into (`target/<profile>/examples`), found from the
/// test binary's own path (`target/<profile>/deps/<test>`).
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory")
        .join("examples")
}

/// The path of a compiled example, building it (with every feature) when it is missing.
/// `bash scripts/test.sh` builds them all first; this keeps `cargo test` alone working.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let path = examples_dir().join(name);
    if !path.exists() {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "--all-features", "--example", name])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --example {name} failed");
        }
    }
    assert!(path.exists(), "example binary {} missing", path.display());
    path
}

/// Runs a CGI program once: a cleared environment holding only `env`, `stdin` written to it
/// (and closed), and its whole output collected.
pub fn run_cgi(program: &std::path::Path, env: &[(&str, &[u8])], stdin: &[u8]) -> Output {
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
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit without reading all of it.
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for CGI program");
    writer.join().expect("stdin writer");
    output
}
