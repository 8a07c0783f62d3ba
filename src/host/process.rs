//! A running program's lifecycle: the supervisor task that reaps it (and kills it on a
//! timeout or when its response is abandoned), the task that feeds its standard input, and
//! the one that drains its standard error.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use http_body::Body;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::BoxError;

/// A pipe's capacity when Linux creates it (16 pages).
pub(crate) const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// The capacity a pipe to or from a program is grown to once a transfer larger than
/// [`DEFAULT_PIPE_SIZE`] is seen, so that each side moves more per wakeup (1 GiB echoed
/// through a program went from about 0.6 to 0.75–1.1 GiB/s on a loaded 2-core machine). 1 MiB is
/// Linux's default `fs.pipe-max-size` for unprivileged users. Pipes count against the
/// per-user `fs.pipe-user-pages-soft` (64 MiB by default): past it (32 programs moving
/// large bodies both ways at once) the kernel refuses to grow further pipes, which then
/// keep their default size.
pub(crate) const LARGE_PIPE_SIZE: usize = 1024 * 1024;

/// Grows `pipe` to [`LARGE_PIPE_SIZE`] where the system allows (Linux `F_SETPIPE_SZ`);
/// a refusal leaves it as it was.
pub(crate) fn grow_pipe(pipe: impl AsFd) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::pipe::fcntl_setpipe_size(pipe, LARGE_PIPE_SIZE);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = pipe;
}

/// Kills the program when dropped, unless [`disarm`](Self::disarm)ed first (its output was
/// read to the end). Held by whoever reads the program's standard output.
#[derive(Debug)]
pub(crate) struct KillSwitch(Option<oneshot::Sender<()>>);

impl KillSwitch {
    /// The output was read to its end: let the program exit by itself.
    pub(crate) fn disarm(&mut self) {
        // Dropping the sender without sending tells the supervisor "no kill".
        self.0.take();
    }
}

impl Drop for KillSwitch {
    fn drop(&mut self) {
        if let Some(kill) = self.0.take() {
            let _ = kill.send(());
        }
    }
}

/// Starts the task that owns `child` until it is reaped. It kills the program's process
/// group (`SIGTERM`, `grace`, then `SIGKILL`) when the deadline passes or when the returned
/// [`KillSwitch`] is dropped armed. `permit` (a process slot) is released once the program
/// is reaped.
pub(crate) fn supervise(
    mut child: Child,
    deadline: Option<Instant>,
    grace: Duration,
    permit: Option<OwnedSemaphorePermit>,
    program: Arc<Path>,
) -> KillSwitch {
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _permit = permit;
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            status = child.wait() => {
                if let Ok(status) = status {
                    tracing::trace!(program = %program.display(), %status, "CGI program exited");
                }
                return;
            }
            Ok(()) = kill_rx => "its response was abandoned (client gone)",
            () = expired => "its time limit expired",
        };
        tracing::debug!(program = %program.display(), "killing the CGI program: {why}");
        terminate(&mut child, grace).await;
    });
    KillSwitch(Some(kill_tx))
}

/// `SIGTERM` to the program's process group, `grace` to exit, then `SIGKILL`; reaps it.
async fn terminate(child: &mut Child, grace: Duration) {
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            // Reaped: its group id may be reused from now on, so no more signals to it.
            return;
        }
        // The leader is not reaped yet, so the group id is still this group's.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Copies `body` to the program's standard input, then closes it. Stops quietly when the
/// program stops reading (it need not read its input, RFC 3875 §4.2) or the body fails.
pub(crate) fn feed<B>(mut stdin: ChildStdin, body: B)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        loop {
            let frame =
                std::future::poll_fn(|cx| crate::panic::poll_frame(body.as_mut(), cx)).await;
            match frame {
                None => break,
                Some(Err(error)) => {
                    tracing::debug!("request body failed while feeding a CGI program: {error}");
                    break;
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            match stdin.write(data.chunk()).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => data.advance(n),
                            }
                        }
                    }
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
}

/// Writes spooled chunks to the program's standard input, then closes it.
pub(crate) fn feed_chunks(mut stdin: ChildStdin, chunks: Vec<bytes::Bytes>) {
    tokio::spawn(async move {
        for chunk in chunks {
            if stdin.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = stdin.shutdown().await;
    });
}

/// Longest standard-error line logged as one record; the rest of a longer line is cut.
const MAX_STDERR_LINE: usize = 4096;

/// Reads the program's standard error to its end, one log record per line, so the program
/// never blocks on a full pipe.
pub(crate) fn drain_stderr(stderr: impl AsyncRead + Unpin + Send + 'static, program: Arc<Path>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_STDERR_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches(['\n', '\r']);
                    if !text.is_empty() {
                        log_stderr(&program, text);
                    }
                }
            }
        }
    });
}

fn log_stderr(program: &Path, line: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!(target: "towergate::host::stderr", program = %program.display(), "{line}");
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{}: {line}", program.display());
    }
}

/// Most output read and thrown away from a program whose body is not sent (HEAD, 204, 304,
/// a local redirect); past it the pipe is closed.
const MAX_DISCARD: u64 = 16 << 20;

/// Reads and discards what is left of the program's output (RFC 3875 §4.3.3, §6.4), then
/// lets it exit.
pub(crate) fn discard(stdout: impl AsyncRead + Unpin + Send + 'static, mut kill: KillSwitch) {
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let copied = tokio::io::copy(&mut stdout.take(MAX_DISCARD), &mut sink).await;
        if matches!(copied, Ok(n) if n < MAX_DISCARD) {
            kill.disarm();
        }
    });
}
