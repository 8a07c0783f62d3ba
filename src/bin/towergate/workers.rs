//! `towergate wsgi --workers N`: N processes serving one address, so that an app bound by
//! Python's GIL uses more than one core (the model of gunicorn and Granian).
//!
//! The parent binds the address and runs no Python. It starts N copies of its own
//! executable with the same arguments plus `--worker-of PARENT`, each with the parent's
//! socket as its descriptor 0: bound with `SO_REUSEPORT`, never listening, it holds the
//! address. Each worker imports the app, builds its runtime and listens on the same address
//! with a socket of its own (`SO_REUSEPORT`): Linux spreads new connections evenly over
//! the workers' sockets by a hash of their addresses (other systems may not balance them).
//! (One socket shared by every worker lets whichever runs first take a whole burst of
//! connections: measured, 67 of 72 went to one worker, which halves the throughput of a
//! GIL-bound app.) Every worker has `wsgi.multiprocess` true. A worker says it is ready
//! with one line on its standard output; the parent passes everything else a worker prints
//! there on to its own.
//!
//! - A worker that exits before it is ready (a broken import: its error is on standard
//!   error) makes the parent stop the others and exit with failure, unless a signal
//!   stopped or killed it (SIGTERM, SIGINT, SIGKILL: an operator, systemd, the
//!   out-of-memory killer); it is then replaced, as below.
//! - A worker that exits later (a crash, a kill) is logged and replaced. The connections it
//!   had, and those waiting in its listen queue, are lost. Workers that die in a row
//!   within [`STEADY`] of their start are replaced after a delay that doubles from
//!   [`FIRST_DELAY`] up to [`MAX_DELAY`] (the first is replaced at once): an app that
//!   crashes on every request, or soon after its import, does not keep a core busy
//!   importing it again and again. A worker that lived longer resets the delay.
//! - On SIGTERM or Ctrl-C the parent sends SIGTERM to every worker, which shuts down as one
//!   server does (`--grace` for the requests in flight); a worker still importing the app
//!   ends at once. A worker still running `--grace` plus 10 s later is killed (SIGKILL).
//!   Every worker is reaped before the parent exits.
//! - A worker whose parent dies gets SIGTERM (Linux's parent-death signal), and so shuts
//!   down gracefully too.
//! - With `--pin-workers` (Linux), worker `i` binds itself to the `i`-th of the CPUs the
//!   parent may run on (modulo their number) before it starts a thread, and its
//!   replacement to the same CPU: a worker's runtime thread and Python threads then share
//!   one core and never move. On this project's 2-core VM (KVM), where waking a thread on
//!   the other core costs an interrupt to the host, pinning the two workers of a Flask
//!   hello served 1.01–1.38× as much as the same server unpinned (`bench/compare.sh`
//!   measures both).

use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::server::{self, ServerArgs};

/// The line a worker prints on its standard output once its app is imported and it
/// serves.
pub(crate) const READY: &str = "towergate: worker ready";

/// How long a stopped worker may take past the grace before it is killed.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// A worker that dies sooner than this after its start counts as a quick death.
const STEADY: Duration = Duration::from_secs(10);

/// The delay before replacing the second of quick deaths in a row.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The longest delay before replacing a worker.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The longest line passed on from a worker's standard output; a longer one is passed on
/// in pieces.
const MAX_LINE: u64 = 64 * 1024;

/// Binds `server.addr`, then starts `workers` workers on it and watches them until SIGTERM
/// or Ctrl-C.
pub(crate) fn supervise(
    target: &str,
    server: &ServerArgs,
    mount: Option<&str>,
    workers: u16,
    pin: bool,
) -> ExitCode {
    let (socket, local) = match reuseport_socket(server.addr).and_then(|socket| {
        let local = local_addr(&socket)?;
        Ok((socket, local))
    }) {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("towergate wsgi: cannot listen on {}: {error}", server.addr);
            return ExitCode::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("towergate wsgi: cannot find its own executable to start workers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cpus = if pin {
        match allowed_cpus() {
            Ok(cpus) => cpus,
            Err(error) => {
                eprintln!("towergate wsgi: --pin-workers: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Vec::new()
    };
    let Some(runtime) = crate::runtime(false) else {
        return ExitCode::FAILURE;
    };
    // The same arguments, with `--worker-of PID` after the subcommand (before any `--`).
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let at = args.len().min(1);
    args.splice(
        at..at,
        [
            OsString::from("--worker-of"),
            OsString::from(std::process::id().to_string()),
        ],
    );
    println!("towergate: listening on http://{local}/");
    let spawner = Arc::new(Spawner {
        exe,
        args,
        socket,
        grace: server.grace,
        cpus,
    });
    let pinned = if spawner.cpus.is_empty() {
        String::new()
    } else {
        let cpus: Vec<String> = (0..usize::from(workers))
            .filter_map(|slot| spawner.cpu(slot))
            .map(|cpu| cpu.to_string())
            .collect();
        format!(" pinned to CPUs {}", cpus.join(", "))
    };
    println!(
        "towergate: serving {target} at http://{local}{}/ with {workers} workers{pinned}",
        mount.unwrap_or_default()
    );
    let ok = runtime.block_on(watch_workers(spawner, workers));
    // A write of a worker's output to ours, blocked on a pipe no one reads, must not hold
    // the exit.
    crate::shut_down(runtime);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `count` workers, replacing those that die, until a signal; true when every worker
/// became ready and stopped cleanly.
async fn watch_workers(spawner: Arc<Spawner>, count: u16) -> bool {
    let mut signal = std::pin::pin!(server::shutdown_signal());
    let (stop, stopping) = watch::channel(false);
    let mut running = JoinSet::new();
    for slot in 0..usize::from(count) {
        running.spawn(run_worker(
            spawner.clone(),
            stopping.clone(),
            Duration::ZERO,
            slot,
        ));
    }
    let mut backoff = Backoff::default();
    let mut ok = true;
    loop {
        tokio::select! {
            // A signal sent to every process at once (systemd's stop) reaches the parent
            // as its workers die: the parent's comes first.
            biased;
            () = &mut signal => break,
            Some(joined) = running.join_next() => {
                let Ok(ended) = joined else {
                    ok = false;
                    break;
                };
                if !ended.ready && !ended.killed() {
                    eprintln!(
                        "towergate wsgi: a worker {} before it was ready: stopping",
                        ended.describe()
                    );
                    ok = false;
                    break;
                }
                let delay = backoff.delay(ended.lived);
                let when = if delay.is_zero() {
                    String::new()
                } else {
                    format!(" in {delay:?}")
                };
                let before = if ended.ready { "" } else { " before it was ready" };
                tracing::warn!(
                    target: "towergate::server",
                    "worker {}{before}: starting another{when}",
                    ended.describe()
                );
                running.spawn(run_worker(spawner.clone(), stopping.clone(), delay, ended.slot));
            }
        }
    }
    let _ = stop.send(true);
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(ended) if matches!(ended.status, Ok(status) if status.success()) => {}
            // Stopped before it was ready (a signal while it imported the app): it never
            // served, and nothing failed.
            Ok(ended) if ended.stopped && !ended.ready && ended.status.is_ok() => {}
            // Not ready: its import failed as the one that stopped the rest did, and said so.
            Ok(ended) if !ended.ready => ok = false,
            Ok(ended) => {
                tracing::warn!(target: "towergate::server", "worker {}", ended.describe());
                ok = false;
            }
            Err(_) => ok = false,
        }
    }
    ok
}

/// The delays before replacing workers that die soon after their start (see the
/// [module docs](self)).
#[derive(Debug, Default)]
struct Backoff {
    /// Quick deaths in a row.
    quick: u32,
}

impl Backoff {
    /// The delay before replacing a worker that died `lived` after its start.
    fn delay(&mut self, lived: Duration) -> Duration {
        if lived >= STEADY {
            self.quick = 0;
            return Duration::ZERO;
        }
        self.quick = self.quick.saturating_add(1);
        match self.quick {
            1 => Duration::ZERO,
            n => FIRST_DELAY
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_DELAY),
        }
    }
}

/// What starts a worker.
#[derive(Debug)]
struct Spawner {
    exe: PathBuf,
    args: Vec<OsString>,
    /// The address's socket: bound, not listening.
    socket: OwnedFd,
    grace: Duration,
    /// The CPUs the workers are bound to in turn (`--pin-workers`); empty: not bound.
    cpus: Vec<usize>,
}

impl Spawner {
    /// The CPU of the worker in `slot`, if workers are bound to CPUs.
    fn cpu(&self, slot: usize) -> Option<usize> {
        (!self.cpus.is_empty()).then(|| self.cpus[slot % self.cpus.len()])
    }

    /// Starts the worker of `slot` (the `slot`-th of those started at first, or one that
    /// replaces it).
    fn spawn(&self, slot: usize) -> io::Result<Child> {
        let mut args = self.args.clone();
        if let Some(cpu) = self.cpu(slot) {
            // After `--worker-of PID`, which the option requires.
            let at = args.len().min(3);
            args.splice(
                at..at,
                [
                    OsString::from("--worker-cpu"),
                    OsString::from(cpu.to_string()),
                ],
            );
        }
        Command::new(&self.exe)
            .args(&args)
            .stdin(Stdio::from(self.socket.try_clone()?))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    }
}

/// How a worker's life ended.
#[derive(Debug)]
struct Ended {
    /// Its place among the workers (see [`Spawner::spawn`]).
    slot: usize,
    pid: Option<u32>,
    /// It printed [`READY`].
    ready: bool,
    /// It was told to stop (or never started, told to stop first).
    stopped: bool,
    status: io::Result<ExitStatus>,
    /// From its start to its exit.
    lived: Duration,
}

impl Ended {
    /// Whether a signal that stops or kills a process ended it (SIGTERM, SIGINT, SIGKILL):
    /// someone stopped it, it did not fail by itself.
    fn killed(&self) -> bool {
        use rustix::process::Signal;
        use std::os::unix::process::ExitStatusExt;
        let signal = self.status.as_ref().ok().and_then(ExitStatusExt::signal);
        [Signal::TERM, Signal::INT, Signal::KILL]
            .iter()
            .any(|s| Some(s.as_raw()) == signal)
    }

    /// `PID exited (STATUS)`, for the log.
    fn describe(&self) -> String {
        let pid = self.pid.map_or_else(String::new, |pid| format!("{pid} "));
        match &self.status {
            Ok(status) => format!("{pid}exited ({status})"),
            Err(error) => format!("{pid}could not be started or waited for: {error}"),
        }
    }
}

/// One worker's life: started after `delay`, its output passed on, waited for; stopped on
/// `stopping` (SIGTERM, then SIGKILL past the grace and a margin).
async fn run_worker(
    spawner: Arc<Spawner>,
    mut stopping: watch::Receiver<bool>,
    delay: Duration,
    slot: usize,
) -> Ended {
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
                return Ended {
                    slot,
                    pid: None,
                    ready: false,
                    stopped: true,
                    status: Ok(ExitStatus::default()),
                    lived: Duration::ZERO,
                };
            }
        }
    }
    let started = Instant::now();
    let mut child = match spawner.spawn(slot) {
        Ok(child) => child,
        Err(error) => {
            return Ended {
                slot,
                pid: None,
                ready: false,
                stopped: false,
                status: Err(error),
                lived: started.elapsed(),
            };
        }
    };
    let pid = child.id();
    let ready = Arc::new(AtomicBool::new(false));
    let output = child
        .stdout
        .take()
        .map(|stdout| tokio::spawn(pass_on(stdout, ready.clone())));
    let (status, stopped) = tokio::select! {
        biased;
        status = child.wait() => (status, false),
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            (stop(&mut child, spawner.grace).await, true)
        }
    };
    let lived = started.elapsed();
    // The ready line was written before the exit; the end of the output follows the exit,
    // unless a process the app started holds the pipe.
    if let Some(output) = output {
        let _ = tokio::time::timeout(Duration::from_secs(1), output).await;
    }
    Ended {
        slot,
        pid,
        ready: ready.load(Ordering::Relaxed),
        stopped,
        status,
        lived,
    }
}

/// SIGTERM, then SIGKILL if the worker still runs `grace` plus [`STOP_MARGIN`] later.
async fn stop(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(pid) = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(grace + STOP_MARGIN, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::warn!(
                target: "towergate::server",
                "worker {} still running {:?} after SIGTERM: killing it",
                child.id().unwrap_or_default(),
                grace + STOP_MARGIN
            );
            child.kill().await?;
            child.wait().await
        }
    }
}

/// Passes a worker's standard output on to ours, line by line, and notes its ready line.
/// Once ours fails, the worker's is still read (and dropped): a worker never blocks on it.
async fn pass_on(stdout: ChildStdout, ready: Arc<AtomicBool>) {
    let mut reader = BufReader::new(stdout);
    let mut out = Some(tokio::io::stdout());
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.strip_suffix(b"\n") == Some(READY.as_bytes()) {
            ready.store(true, Ordering::Relaxed);
            continue;
        }
        if let Some(writer) = &mut out {
            if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() {
                out = None;
            }
        }
    }
}

/// The CPUs this process may run on, in order.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allowed_cpus() -> io::Result<Vec<usize>> {
    use rustix::thread::CpuSet;
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allowed_cpus() -> io::Result<Vec<usize>> {
    Err(io::Error::other(PIN_UNSUPPORTED))
}

/// Why `--pin-workers` fails elsewhere than on Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const PIN_UNSUPPORTED: &str = "binding workers to CPUs is supported on Linux only";

/// Binds the calling thread, and so the threads it starts later, to `cpu`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    use rustix::thread::CpuSet;
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::other(format!(
            "CPUs go up to {}",
            CpuSet::MAX_CPU - 1
        )));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pin_to(_cpu: usize) -> io::Result<()> {
    Err(io::Error::other(PIN_UNSUPPORTED))
}

/// How many connections may wait in a worker's listen queue.
const BACKLOG: i32 = 1024;

/// A TCP socket bound to `addr` with `SO_REUSEADDR` and `SO_REUSEPORT` (close-on-exec).
fn reuseport_socket(addr: SocketAddr) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    Ok(socket)
}

/// The IP address and port a socket is bound to.
fn local_addr(socket: impl AsFd) -> io::Result<SocketAddr> {
    SocketAddr::try_from(rustix::net::getsockname(socket)?)
        .map_err(|_| io::Error::other("not an IP socket"))
}

/// A worker's listener: a socket of its own, listening on the address of the parent's
/// socket (descriptor 0, which is then replaced by `/dev/null`). Asks for SIGTERM when the
/// parent `parent` dies.
pub(crate) fn worker_listener(parent: u32) -> io::Result<TcpListener> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
        // The parent may have died before the signal was asked for.
        if rustix::process::getppid().map(|pid| pid.as_raw_pid()) != Some(parent as i32) {
            return Err(io::Error::other(format!(
                "--worker-of {parent}: not the parent of this process (it may be gone)"
            )));
        }
    }
    let stdin = io::stdin();
    let addr = rustix::net::sockopt::socket_reuseport(stdin.as_fd())
        .is_ok_and(|reuseport| reuseport)
        .then(|| local_addr(stdin.as_fd()).ok())
        .flatten()
        .ok_or_else(|| {
            io::Error::other(
                "--worker-of: descriptor 0 is not the address socket of `towergate wsgi --workers` (the option is for the workers it starts)",
            )
        })?;
    let socket = reuseport_socket(addr)?;
    rustix::net::listen(&socket, BACKLOG)?;
    rustix::stdio::dup2_stdin(std::fs::File::open("/dev/null")?)?;
    Ok(TcpListener::from(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_deaths_in_a_row_delay_the_next_worker_more_each_time_up_to_the_limit() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(300);
        let delays: Vec<Duration> = (0..10).map(|_| backoff.delay(quick)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            delays,
            [
                Duration::ZERO,
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                MAX_DELAY,
                MAX_DELAY
            ]
        );
        // A worker that lived past STEADY is replaced at once, and starts a new count.
        assert_eq!(backoff.delay(STEADY), Duration::ZERO);
        assert_eq!(backoff.delay(quick), Duration::ZERO);
        assert_eq!(backoff.delay(quick), ms(100));
        // Far more quick deaths than doublings: no overflow.
        for _ in 0..100 {
            backoff.delay(quick);
        }
        assert_eq!(backoff.delay(Duration::ZERO), MAX_DELAY);
    }
}
