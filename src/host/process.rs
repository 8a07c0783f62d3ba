//! A running program's lifecycle: the supervisor task that reaps it (and ends its process
//! group on a timeout, a stalled request body, a shutdown, when its response is abandoned,
//! or when members of its group outlive it holding its pipes), the task that feeds its
//! standard input, the one that drains its standard error, and [`Output`], the reader of
//! its pipes that stops waiting once the program has exited.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Body;
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use super::shutdown::{Registry, Running};
use super::spool::Reservation;
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

/// Why a program ended, as far as its readers need to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Still running, or exited by itself.
    Natural,
    /// Killed: its time limit expired.
    Timeout,
    /// Killed: its response was abandoned before the end (the client went away).
    Abandoned,
    /// Killed: the request body stopped arriving.
    Stalled,
    /// Killed: the host shut down.
    Shutdown,
}

/// The [`Ending`] of a program, shared by its supervisor and its readers.
#[derive(Clone, Debug)]
pub(crate) struct State(Arc<AtomicU8>);

impl State {
    fn new() -> Self {
        State(Arc::new(AtomicU8::new(0)))
    }

    fn set(&self, ending: Ending) {
        self.0.store(ending as u8, Ordering::Release);
    }

    pub(crate) fn get(&self) -> Ending {
        match self.0.load(Ordering::Acquire) {
            1 => Ending::Timeout,
            2 => Ending::Abandoned,
            3 => Ending::Stalled,
            4 => Ending::Shutdown,
            _ => Ending::Natural,
        }
    }
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

/// What the request's side holds of a supervised program.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) kill: KillSwitch,
    pub(crate) state: State,
    /// Resolves (with an error: the sender is dropped) once the program is reaped and its
    /// process slot freed.
    pub(crate) reaped: oneshot::Receiver<()>,
}

/// What a supervisor needs besides the child.
pub(crate) struct Supervision<'a> {
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Duration,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) reservation: Option<Reservation>,
    pub(crate) registry: &'a Arc<Registry>,
    pub(crate) program: Arc<Path>,
}

/// A supervised program: the handles of its readers and feeder.
pub(crate) struct Supervised {
    pub(crate) control: Control,
    /// For the standard output [`Output`].
    pub(crate) stdout_exited: oneshot::Receiver<()>,
    /// For the standard error [`Output`], and its way to report leftovers.
    pub(crate) stderr: (oneshot::Receiver<()>, oneshot::Sender<()>),
    /// Sent by the feeder when the request body stalls.
    pub(crate) stall: oneshot::Sender<()>,
}

/// Waits for `rx` if it is still there; clears it once it resolved and tells whether a
/// value was sent.
async fn fired(rx: &mut Option<oneshot::Receiver<()>>) -> bool {
    let sent = match rx.as_mut() {
        Some(rx) => rx.await.is_ok(),
        None => std::future::pending().await,
    };
    *rx = None;
    sent
}

async fn expired(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Starts the task that owns `child` until it is reaped and its process group is done
/// with. While the program runs, it ends its process group (`SIGTERM`, the grace, then
/// `SIGKILL`, whatever the leader did) when the deadline passes, the returned
/// [`KillSwitch`] is dropped armed, the request body stalls or the host shuts down. Once the
/// program exited, members of its group that still hold its standard output or error (the
/// readers report it) get the same. The permit (a process slot) and the spool
/// reservation are released when the program is reaped.
pub(crate) fn supervise(mut child: Child, how: Supervision<'_>) -> Supervised {
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let (stall_tx, stall_rx) = oneshot::channel::<()>();
    let (stdout_exit_tx, stdout_exit_rx) = oneshot::channel::<()>();
    let (stderr_exit_tx, stderr_exit_rx) = oneshot::channel::<()>();
    let (stderr_left_tx, stderr_left_rx) = oneshot::channel::<()>();
    let (reaped_tx, reaped_rx) = oneshot::channel::<()>();
    let state = State::new();
    let running = how.registry.enter();
    let stopping = how.registry.stopping();
    let Supervision {
        deadline,
        grace,
        permit,
        reservation,
        program,
        ..
    } = how;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    let task_state = state.clone();
    tokio::spawn(async move {
        let _running: Running = running;
        let mut stopping = std::pin::pin!(stopping);
        let mut kill_rx = Some(kill_rx);
        let mut stall_rx = Some(stall_rx);
        // While the leader runs.
        let ending = loop {
            tokio::select! {
                status = child.wait() => {
                    if let Ok(status) = status {
                        tracing::trace!(program = %program.display(), %status, "CGI program exited");
                    }
                    break None;
                }
                // A branch whose pattern fails is off for the rest of the select: `fired`
                // always completes, and its value is checked in the branch.
                sent = fired(&mut kill_rx) => if sent { break Some(Ending::Abandoned) },
                sent = fired(&mut stall_rx) => if sent { break Some(Ending::Stalled) },
                () = expired(deadline) => break Some(Ending::Timeout),
                () = &mut stopping => break Some(Ending::Shutdown),
            }
        };
        if let Some(ending) = ending {
            task_state.set(ending);
            tracing::debug!(program = %program.display(), "killing the CGI program: {}", match ending {
                Ending::Timeout => "its time limit expired",
                Ending::Stalled => "the request body stalled",
                Ending::Shutdown => "the host is shutting down",
                _ => "its response was abandoned (client gone)",
            });
            terminate(&mut child, group, grace).await;
            return;
        }
        // The leader exited by itself: it is reaped, its slot and spool are free, and its
        // readers stop waiting for an end of file (the exit senders are dropped).
        drop((
            permit,
            reservation,
            reaped_tx,
            stdout_exit_tx,
            stderr_exit_tx,
        ));
        let mut stderr_left_rx = Some(stderr_left_rx);
        let leftovers = loop {
            if kill_rx.is_none() && stderr_left_rx.is_none() {
                break false;
            }
            tokio::select! {
                sent = fired(&mut kill_rx) => if sent { break true },
                sent = fired(&mut stderr_left_rx) => if sent { break true },
                () = expired(deadline) => {
                    task_state.set(Ending::Timeout);
                    break true;
                }
                () = &mut stopping => {
                    task_state.set(Ending::Shutdown);
                    break true;
                }
            }
        };
        if let Some(group) = group.filter(|_| leftovers) {
            if test_kill_process_group(group).is_ok() {
                tracing::debug!(
                    program = %program.display(),
                    "the CGI program exited; ending the members of its process group that kept its pipes"
                );
                let _ = kill_process_group(group, Signal::TERM);
                end_group(group, Instant::now() + grace).await;
            }
        }
    });
    Supervised {
        control: Control {
            kill: KillSwitch(Some(kill_tx)),
            state,
            reaped: reaped_rx,
        },
        stdout_exited: stdout_exit_rx,
        stderr: (stderr_exit_rx, stderr_left_tx),
        stall: stall_tx,
    }
}

/// `SIGTERM` to the program's process group; `grace` for the leader to exit and the group
/// to empty; then `SIGKILL` to whatever is left. Reaps the leader.
async fn terminate(child: &mut Child, group: Option<Pid>, grace: Duration) {
    let end = Instant::now() + grace;
    if let Some(group) = group {
        let _ = kill_process_group(group, Signal::TERM);
        if tokio::time::timeout_at(end, child.wait()).await.is_ok() {
            // The leader is reaped: members still in the group keep its id theirs.
            end_group(group, end).await;
            return;
        }
        // The leader is not reaped yet, so the group id is still this group's.
        let _ = kill_process_group(group, Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Waits until the process group is empty or `end` passes, then sends `SIGKILL` to what
/// is left. The group's id stays reserved while any member lives, so a signal reaches
/// only this group.
async fn end_group(group: Pid, end: Instant) {
    while test_kill_process_group(group).is_ok() {
        if Instant::now() >= end {
            let _ = kill_process_group(group, Signal::KILL);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How much is read from a pipe after its program exited, before the rest is left to the
/// members of its group that still write to it: more than a grown pipe holds.
const MAX_DRAIN: usize = LARGE_PIPE_SIZE + DEFAULT_PIPE_SIZE;

/// A program's standard output or error: reads wait for data while the program runs;
/// once it has exited, what is left in the pipe is read without waiting, and then the
/// pipe counts as ended even if members of its process group still hold it open
/// ([`held`](Self::held) tells).
#[derive(Debug)]
pub(crate) struct Output<P> {
    pipe: P,
    exited: Option<oneshot::Receiver<()>>,
    draining: bool,
    drained: usize,
    held: bool,
}

impl<P> Output<P> {
    pub(crate) fn new(pipe: P, exited: oneshot::Receiver<()>) -> Self {
        Output {
            pipe,
            exited: Some(exited),
            draining: false,
            drained: 0,
            held: false,
        }
    }

    /// Whether the pipe was ended by the program's exit while others still held it.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// The pipe itself.
    pub(crate) fn pipe(&self) -> &P {
        &self.pipe
    }
}

impl<P: AsyncRead + AsFd + Unpin> AsyncRead for Output<P> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.draining {
            if let Poll::Ready(result) = Pin::new(&mut this.pipe).poll_read(cx, buf) {
                // Data, the end, or an error: as the pipe says.
                return Poll::Ready(result);
            }
            match this.exited.as_mut() {
                Some(exited) => {
                    let _ = ready!(Pin::new(exited).poll(cx));
                }
                None => return Poll::Pending,
            }
            this.exited = None;
            this.draining = true;
        }
        // The program has exited: what it wrote is in the pipe already.
        if this.held || this.drained >= MAX_DRAIN {
            this.held = true;
            return Poll::Ready(Ok(()));
        }
        let room = buf.initialize_unfilled();
        let room_len = room.len().min(MAX_DRAIN - this.drained);
        loop {
            match rustix::io::read(this.pipe.as_fd(), &mut room[..room_len]) {
                Ok(n) => {
                    this.drained += n;
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {
                    this.held = true;
                    return Poll::Ready(Ok(()));
                }
                Err(error) => return Poll::Ready(Err(error.into())),
            }
        }
    }
}

use std::future::Future as _;

/// Copies `first`, then `body`, to the program's standard input, then closes it. Stops
/// quietly when the program stops reading (it need not read its input, RFC 3875 §4.2) or
/// the body fails; when no frame arrives for `idle`, reports a stall on `stall`.
pub(crate) fn feed<B>(
    mut stdin: ChildStdin,
    first: Vec<Bytes>,
    body: Option<B>,
    idle: Duration,
    stall: oneshot::Sender<()>,
) where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::spawn(async move {
        for chunk in first {
            if stdin.write_all(&chunk).await.is_err() {
                return;
            }
        }
        if let Some(body) = body {
            let mut body = std::pin::pin!(body);
            loop {
                let next = std::future::poll_fn(|cx| crate::panic::poll_frame(body.as_mut(), cx));
                let frame = match tokio::time::timeout(idle, next).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        let _ = stall.send(());
                        return;
                    }
                };
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
        }
        let _ = stdin.shutdown().await;
    });
}

/// Longest standard-error line logged as one record; the rest of a longer line is cut.
const MAX_STDERR_LINE: usize = 4096;

/// Reads the program's standard error to its end (or to the program's exit, telling
/// `leftover` when others still hold the pipe), one log record per line, so the program
/// never blocks on a full pipe.
pub(crate) fn drain_stderr<P>(stderr: Output<P>, leftover: oneshot::Sender<()>, program: Arc<Path>)
where
    P: AsyncRead + AsFd + Unpin + Send + 'static,
{
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
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches(['\n', '\r']);
                    if !text.is_empty() {
                        log_stderr(&program, text);
                    }
                }
            }
        }
        if reader.get_ref().held() {
            let _ = leftover.send(());
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
/// a local redirect, output past its `Content-Length`); past it the program is ended.
const MAX_DISCARD: u64 = 16 << 20;

/// Reads and discards what is left of the program's output (RFC 3875 §4.3.3, §6.4), then
/// lets it exit; a program that writes more than [`MAX_DISCARD`], or leaves members of its
/// group holding the pipe, is ended.
pub(crate) async fn discard<P>(mut stdout: Output<P>, mut kill: KillSwitch)
where
    P: AsyncRead + AsFd + Unpin + Send + 'static,
{
    let mut sink = tokio::io::sink();
    let copied = tokio::io::copy(&mut (&mut stdout).take(MAX_DISCARD), &mut sink).await;
    if matches!(copied, Ok(n) if n < MAX_DISCARD) && !stdout.held() {
        kill.disarm();
    }
}

/// Ends a program whose output is not wanted any more (a local redirect, RFC 3875 §6.2.2):
/// its output is read and discarded, and it has `grace` to exit; then it is ended. Returns
/// once it is reaped (its process slot freed).
pub(crate) async fn finish<P>(mut stdout: Output<P>, mut control: Control, grace: Duration)
where
    P: AsyncRead + AsFd + Unpin + Send + 'static,
{
    let end = Instant::now() + grace;
    let mut sink = tokio::io::sink();
    let drained = tokio::time::timeout_at(
        end,
        tokio::io::copy(&mut (&mut stdout).take(MAX_DISCARD), &mut sink),
    )
    .await;
    let reaped = tokio::time::timeout_at(end, &mut control.reaped)
        .await
        .is_ok();
    if reaped && matches!(drained, Ok(Ok(n)) if n < MAX_DISCARD) && !stdout.held() {
        control.kill.disarm();
    }
    // Armed, the switch ends the program (or the rest of its group) when dropped.
    drop(control.kill);
    if !reaped {
        let _ = control.reaped.await;
    }
}

/// [`discard`] on a task of its own.
pub(crate) fn spawn_discard<P>(stdout: Output<P>, kill: KillSwitch)
where
    P: AsyncRead + AsFd + Unpin + Send + 'static,
{
    tokio::spawn(discard(stdout, kill));
}
