//! Where a response's bytes go: the seed's `_write` / `_flush` pair.

use std::fs::File;
use std::io;

/// Where a handler writes the response bytes: wsgiref's `_write` and `_flush`.
///
/// Implemented for `Vec<u8>` (in memory, for tests) and [`WriteTransport`] (any
/// [`io::Write`]).
pub trait Transport {
    /// Writes all of `data` (`_write`).
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Pushes what was written to the client (`_flush`). Called after the head and after
    /// every chunk, so streamed output reaches the client chunk by chunk.
    fn flush(&mut self) -> io::Result<()>;

    /// Sends `len` bytes of `file` from its current position, efficiently if the transport
    /// can (wsgiref's `sendfile()` hook). Returns false, having written nothing, when it
    /// cannot: the handler then reads the file block by block. Defaults to false.
    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        let _ = (file, len);
        Ok(false)
    }
}

impl Transport for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        (**self).write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        (**self).send_file(file, len)
    }
}

/// A [`Transport`] over any [`io::Write`]. Files are sent with [`io::copy`], which on Linux
/// moves the bytes in the kernel (`sendfile`, `splice`, `copy_file_range`) when the writer is
/// a file, pipe or socket (or a `BufWriter` around one).
#[derive(Debug)]
pub struct WriteTransport<W> {
    inner: W,
}

impl<W: io::Write> WriteTransport<W> {
    /// Writes to `inner`.
    pub fn new(inner: W) -> Self {
        WriteTransport { inner }
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: io::Write> Transport for WriteTransport<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<bool> {
        use io::Read;
        let copied = io::copy(&mut file.take(len), &mut self.inner)?;
        if copied < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {} bytes early", len - copied),
            ));
        }
        self.inner.flush()?;
        Ok(true)
    }
}

/// Returns true for an error that means the client went away: not the app's fault, not
/// logged (wsgiref ignores `BrokenPipeError`, `ConnectionResetError`,
/// `ConnectionAbortedError`).
pub(crate) fn is_disconnect(error: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted
    )
}
