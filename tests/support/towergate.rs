//! A real `towergate serve` process for the CLI and soak tests: started on a free port,
//! its log collected, stopped by its pid, and the processes its CGI programs left behind
//! found by a marker variable in their environment.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::WireResponse;

pub const TOWERGATE: &str = env!("CARGO_BIN_EXE_towergate");

/// How long a test waits for anything (a response, an exit) before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A running `towergate serve DIR ARGS...`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Towergate {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The value of `TG_MARK` given to every program (`--env`).
    pub mark: String,
}

impl Towergate {
    /// Starts `towergate serve dir --addr 127.0.0.1:0 args...` with `RUST_LOG=info` and a
    /// `TG_MARK` variable for every program, and waits for its address.
    pub fn start(dir: &Path, args: &[&str]) -> Towergate {
        Towergate::start_with(dir, args, None)
    }

    /// [`start`](Self::start), with the server's descriptor limit (`RLIMIT_NOFILE`) set
    /// to `fd_limit` when given.
    pub fn start_with(dir: &Path, args: &[&str], fd_limit: Option<u32>) -> Towergate {
        let mut command = match fd_limit {
            Some(limit) => {
                let mut command = Command::new("/bin/sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(TOWERGATE);
                command
            }
            None => Command::new(TOWERGATE),
        };
        command
            .arg("serve")
            .arg(dir)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        Towergate::from_command(command)
    }

    /// Starts `command` (a `towergate serve` with its arguments, listening on a free port),
    /// adding `--env TG_MARK=...` and `RUST_LOG=info`, and waits for its address.
    pub fn from_command(mut command: Command) -> Towergate {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mark = format!(
            "tg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut child = command
            .args(["--env", &format!("TG_MARK={mark}")])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start towergate serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut server = Towergate {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            reader: Some(reader),
            mark,
        };
        let mut stdout = BufReader::new(stdout);
        let mut banner = String::new();
        loop {
            banner.clear();
            if stdout.read_line(&mut banner).unwrap_or(0) == 0 {
                panic!("towergate serve exited before listening:\n{}", server.log());
            }
            if let Some(rest) = banner.split("listening on http://").nth(1) {
                server.addr = rest
                    .trim_end()
                    .trim_end_matches('/')
                    .parse()
                    .unwrap_or_else(|_| panic!("no address in {banner:?}"));
                break;
            }
        }
        // Keep reading stdout so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The log written so far (standard error).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `text`; false after [`LIMIT`].
    pub fn wait_log(&self, text: &str) -> bool {
        eventually(|| self.log().contains(text))
    }

    /// Sends a signal to the server's pid.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal towergate");
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL and a failed test after [`LIMIT`]);
    /// returns the exit status and the whole log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(rustix::process::Signal::TERM);
        let status = self.wait_exit().unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("towergate did not exit after SIGTERM:\n{}", self.log())
        });
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }

    fn wait_exit(&mut self) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The server's open descriptors (`/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// The pids of live processes (not zombies) whose environment holds this server's
    /// `TG_MARK`: its CGI programs and everything they started.
    pub fn programs(&self) -> Vec<u32> {
        marked_processes(&self.mark)
    }
}

impl Drop for Towergate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(rustix::process::Signal::TERM);
            if self.wait_exit().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // Whatever a failed test left running.
        for pid in marked_processes(&self.mark) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Live processes (not zombies) with `TG_MARK=mark` in their environment.
pub fn marked_processes(mark: &str) -> Vec<u32> {
    let needle = format!("TG_MARK={mark}\0");
    processes()
        .filter(|&(pid, state, _)| {
            state != 'Z'
                && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                    environ
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes())
                })
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// The processes (zombies included) whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    processes()
        .filter(|&(_, _, ppid)| ppid == parent)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Every process as `(pid, state, parent pid)`, from `/proc/PID/stat`.
fn processes() -> impl Iterator<Item = (u32, char, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces, so split after the last ')'.
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, state, ppid))
        })
}

/// Polls `done` every 20 ms for at most [`LIMIT`]; returns whether it held.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A connected client with the test's time limit on reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
}

/// Sends `request` on a new connection and reads until the server closes it.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    response
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the whole response, parsed.
pub fn get(addr: SocketAddr, path: &str) -> WireResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    WireResponse::parse(&exchange(addr, request.as_bytes()), false)
}

/// Whether the server closed `stream` (end of file or a reset) before [`LIMIT`]; what it
/// sent before closing is returned too.
pub fn closed_by_server(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
            Err(_) => return (false, got),
        }
    }
}
