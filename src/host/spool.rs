//! Spooling a request body of unknown length (chunked, HTTP/2) so that `CONTENT_LENGTH` is
//! exact (RFC 3875 §4.2): in memory up to a limit, then in an unlinked temporary file.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::BoxError;

/// A spooled body.
#[derive(Debug)]
pub(crate) enum Spooled {
    /// Small enough to stay in memory.
    Memory(Vec<Bytes>, u64),
    /// In a temporary file (already unlinked), positioned at its start.
    File(std::fs::File, u64),
}

impl Spooled {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Spooled::Memory(_, len) | Spooled::File(_, len) => *len,
        }
    }
}

/// Why spooling failed.
#[derive(Debug)]
pub(crate) enum SpoolError {
    /// The body is longer than the limit (413).
    TooLarge,
    /// The body failed (400).
    Body(BoxError),
    /// The temporary file could not be written (500).
    Io(std::io::Error),
}

/// Reads `body` to its end: up to `memory` bytes are kept in memory, the rest goes to a
/// temporary file in `dir`; more than `max` bytes in all is [`SpoolError::TooLarge`].
pub(crate) async fn spool<B>(
    body: B,
    memory: usize,
    max: u64,
    dir: &Path,
) -> Result<Spooled, SpoolError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len: u64 = 0;
    let mut file: Option<tokio::fs::File> = None;
    while let Some(frame) =
        std::future::poll_fn(|cx| crate::panic::poll_frame(body.as_mut(), cx)).await
    {
        let frame = frame.map_err(SpoolError::Body)?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let n = data.remaining() as u64;
        len += n;
        if len > max {
            return Err(SpoolError::TooLarge);
        }
        let bytes = data.copy_to_bytes(data.remaining());
        match &mut file {
            Some(file) => file.write_all(&bytes).await.map_err(SpoolError::Io)?,
            None if len <= memory as u64 => chunks.push(bytes),
            None => {
                let mut new = temp_file(dir).await.map_err(SpoolError::Io)?;
                for chunk in chunks.drain(..) {
                    new.write_all(&chunk).await.map_err(SpoolError::Io)?;
                }
                new.write_all(&bytes).await.map_err(SpoolError::Io)?;
                file = Some(new);
            }
        }
    }
    match file {
        None => Ok(Spooled::Memory(chunks, len)),
        Some(mut file) => {
            file.flush().await.map_err(SpoolError::Io)?;
            file.seek(SeekFrom::Start(0))
                .await
                .map_err(SpoolError::Io)?;
            Ok(Spooled::File(file.into_std().await, len))
        }
    }
}

/// A new temporary file in `dir`, unlinked at once so that nothing is left behind.
async fn temp_file(dir: &Path) -> std::io::Result<tokio::fs::File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let name = format!(
            ".towergate-spool-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => {
                tokio::fs::remove_file(&path).await?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn body(chunks: &[&'static str]) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        struct Chunks(std::collections::VecDeque<Bytes>);
        impl Body for Chunks {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
                std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
            }
        }
        Chunks(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory() {
        let dir = std::env::temp_dir();
        match spool(body(&["ab", "cd"]), 16, 100, &dir).await.unwrap() {
            Spooled::Memory(chunks, len) => {
                assert_eq!(len, 4);
                assert_eq!(chunks.concat(), b"abcd");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn larger_bodies_go_to_an_unlinked_file_read_from_its_start() {
        let dir = std::env::temp_dir();
        let spooled = spool(body(&["abc", "def", "ghi"]), 4, 100, &dir)
            .await
            .unwrap();
        assert_eq!(spooled.len(), 9);
        let Spooled::File(mut file, _) = spooled else {
            panic!("not spooled to a file");
        };
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcdefghi");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let dir = std::env::temp_dir();
        let result = spool(body(&["abc", "def"]), 4, 5, &dir).await;
        assert!(matches!(result, Err(SpoolError::TooLarge)), "{result:?}");
    }
}
