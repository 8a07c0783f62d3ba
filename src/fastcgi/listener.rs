//! The listening socket: TCP or Unix, given or found on descriptor 0.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A listening socket for [`serve`](super::serve): TCP or Unix.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use towergate::fastcgi::Listener;
///
/// let tcp: Listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?.into();
/// let unix: Listener = tokio::net::UnixListener::bind("/run/app.sock")?.into();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Listener(Kind);

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener(Kind::Tcp(listener))
    }
}

impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        Listener(Kind::Unix(listener))
    }
}

pub(super) type Reader = Pin<Box<dyn AsyncRead + Send>>;
pub(super) type Writer = Pin<Box<dyn AsyncWrite + Send>>;

impl Listener {
    /// Waits for a free connection slot, then for a connection.
    pub(super) async fn accept(
        &self,
        slots: &Arc<Semaphore>,
    ) -> io::Result<(OwnedSemaphorePermit, Reader, Writer)> {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the connection limit was closed"))?;
        match &self.0 {
            Kind::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                // Records are written whole; small responses must not wait for an ACK.
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                Ok((slot, Box::pin(r), Box::pin(w)))
            }
            Kind::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                let (r, w) = stream.into_split();
                Ok((slot, Box::pin(r), Box::pin(w)))
            }
        }
    }
}

/// An accept error that passes (a connection reset before it was accepted, no descriptors
/// or memory for now): logged and retried, not fatal.
pub(super) fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) {
        return true;
    }
    let transient = [
        rustix::io::Errno::MFILE,
        rustix::io::Errno::NFILE,
        rustix::io::Errno::NOBUFS,
        rustix::io::Errno::NOMEM,
        rustix::io::Errno::PROTO,
        rustix::io::Errno::PERM,
    ];
    e.raw_os_error()
        .is_some_and(|code| transient.iter().any(|t| t.raw_os_error() == code))
}

/// Descriptor 0 as a std listener, before the runtime exists.
#[derive(Debug)]
pub(super) enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl StdListener {
    /// The tokio listener (inside a runtime).
    pub(super) fn into_tokio(self) -> io::Result<Listener> {
        Ok(match self {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)?.into()
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                UnixListener::from_std(l)?.into()
            }
        })
    }
}

/// True when descriptor 0 is a listening socket. A connected socket is not: python's
/// `http.server` runs CGI programs with the client's socket as standard input. As php-cgi
/// and Go's `net/http/fcgi` decide: `SO_ACCEPTCONN`, or where that is not supported,
/// `getpeername` failing with `ENOTCONN` on a socket.
pub(super) fn stdin_is_listening() -> bool {
    let stdin = io::stdin();
    let fd = stdin.as_fd();
    match rustix::net::sockopt::socket_acceptconn(fd) {
        Ok(listening) => listening,
        Err(rustix::io::Errno::NOPROTOOPT) => {
            matches!(
                rustix::net::getpeername(fd),
                Err(rustix::io::Errno::NOTCONN)
            )
        }
        Err(_) => false,
    }
}

/// Descriptor 0 as a listener, when it is a listening socket.
pub(super) fn from_stdin() -> io::Result<Option<StdListener>> {
    if !stdin_is_listening() {
        return Ok(None);
    }
    let fd: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?;
    let family = rustix::net::getsockname(&fd)?.address_family();
    Ok(Some(if family == rustix::net::AddressFamily::UNIX {
        StdListener::Unix(fd.into())
    } else {
        StdListener::Tcp(fd.into())
    }))
}
