//! A named pipe with no writer, which blocks whoever opens it for reading: a file read
//! stuck for good, as on a hung file system.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// Makes a named pipe at `path` (`mkfifo`).
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}: {status}", path.display());
}

/// Whether a thread of process `pid` is blocked opening a named pipe that has no writer
/// (Linux: the thread waits in the kernel's `wait_for_partner`).
pub fn opening_a_fifo(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
        tasks.flatten().any(|task| {
            std::fs::read_to_string(task.path().join("wchan"))
                .is_ok_and(|wchan| wchan.trim() == "wait_for_partner")
        })
    })
}
