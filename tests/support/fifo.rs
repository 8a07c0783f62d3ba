//! Pipes that block for good: a named pipe with no writer, which blocks whoever opens it
//! for reading (a file read stuck as on a hung file system), and a pipe no one reads; and
//! what a process's threads are (their names, where they wait), from `/proc`.
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
    waits_in(pid, |wchan| wchan == "wait_for_partner")
}

/// Whether a thread of process `pid` is blocked writing to a full pipe (Linux: the thread
/// waits in the kernel's `pipe_write`, `anon_pipe_write` in recent kernels).
pub fn writing_to_a_full_pipe(pid: u32) -> bool {
    waits_in(pid, |wchan| wchan.ends_with("pipe_write"))
}

/// Whether a thread of process `pid` is in a timed sleep (Python's `time.sleep`: the
/// thread waits in the kernel's `hrtimer_nanosleep` or `do_nanosleep`).
pub fn sleeping(pid: u32) -> bool {
    waits_in(pid, |wchan| wchan.contains("nanosleep"))
}

/// The names of the threads of process `pid` (cut to 15 bytes by the kernel), sorted.
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names = per_thread(pid, "comm");
    names.sort_unstable();
    names
}

/// Whether a thread of process `pid` sleeps in a kernel function that `is` accepts.
fn waits_in(pid: u32, is: impl Fn(&str) -> bool) -> bool {
    per_thread(pid, "wchan").iter().any(|wchan| is(wchan))
}

/// The file `name` of each thread of process `pid` (`/proc/PID/task/TID/NAME`), trimmed;
/// none once the process is gone.
pub fn per_thread(pid: u32, name: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join(name)).ok())
        .map(|text| text.trim().to_owned())
        .collect()
}
