//! [`ShutdownHandle`]: ending every running program when a server stops.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// What the programs of one set of options share: whether a shutdown began, and how many
/// are still supervised.
#[derive(Debug)]
pub(crate) struct Registry {
    stop: watch::Sender<bool>,
    running: AtomicUsize,
    idle: Notify,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            stop: watch::Sender::new(false),
            running: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Whether a shutdown began: no program starts any more.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when a shutdown begins.
    pub(crate) fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }

    /// Counts a supervised program until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(self.clone())
    }
}

/// A supervised program, counted by its [`Registry`] until dropped.
#[derive(Debug)]
pub(crate) struct Running(Arc<Registry>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Ends every program of a [`CgiProgram`](super::CgiProgram) or [`CgiBin`](super::CgiBin)
/// (and their clones, which share it) when a server shuts down. Get one with
/// [`CgiProgram::shutdown_handle`](super::CgiProgram::shutdown_handle),
/// [`CgiBin::shutdown_handle`](super::CgiBin::shutdown_handle) or
/// [`ProgramOptions::shutdown_handle`](super::ProgramOptions::shutdown_handle); it is
/// cheap to clone.
///
/// [`shutdown`](Self::shutdown) is meant for the end of a graceful shutdown: once the
/// server stopped accepting and gave in-flight requests their grace period, it
/// - makes every later request answer 503 without starting a program (requests waiting for
///   a process slot get 503 too);
/// - sends `SIGTERM` to the process group of every running program, then `SIGKILL` after
///   the options' [`grace`](super::ProgramOptions::grace), and reaps them;
/// - a request whose program is ended this way before its head was sent answers 503; after
///   the head, its body ends with an error;
/// - resolves once every program is reaped (about the grace at most).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::ServiceExt;
/// use towergate::host::CgiProgram;
///
/// let program = CgiProgram::new("/bin/true");
/// let shutdown = program.shutdown_handle();
/// // … serve `program` until the server is told to stop, then:
/// shutdown.shutdown().await;
/// assert!(shutdown.is_shut_down());
/// let request = http::Request::get("/").body(String::new()).unwrap();
/// assert_eq!(program.oneshot(request).await.unwrap().status(), 503);
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    registry: Arc<Registry>,
}

impl ShutdownHandle {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        ShutdownHandle { registry }
    }

    /// Ends every running program (`SIGTERM` to its process group, `SIGKILL` after the
    /// grace) and refuses new ones with 503; resolves when every program is reaped.
    pub async fn shutdown(&self) {
        self.registry.stop.send_replace(true);
        loop {
            let idle = self.registry.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.registry.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.registry.is_stopping()
    }

    /// How many programs are running (started and not reaped yet, their leftover process
    /// group members included).
    pub fn running(&self) -> usize {
        self.registry.running.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shut_down", &self.is_shut_down())
            .field("running", &self.running())
            .finish()
    }
}
