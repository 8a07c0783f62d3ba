//! Spooling a request body of unknown length (chunked, HTTP/2) so that `CONTENT_LENGTH` is
//! exact (RFC 3875 §4.2): in memory up to a limit, then in an unlinked temporary file.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::BoxError;

/// The bytes all spooled bodies sharing it may hold at once.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes in use now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes taken from a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Reservation { budget, bytes: 0 }
    }

    /// Takes `n` more bytes; false (and nothing taken) when the budget has not got them.
    fn grow(&mut self, n: u64) -> bool {
        let taken = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.budget.limit)
            });
        if taken.is_ok() {
            self.bytes += n;
        }
        taken.is_ok()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A spooled body, and its share of the spool budget.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub(crate) data: SpooledData,
    pub(crate) len: u64,
    pub(crate) reservation: Reservation,
}

/// Where a spooled body is.
#[derive(Debug)]
pub(crate) enum SpooledData {
    /// Small enough to stay in memory.
    Memory(Vec<Bytes>),
    /// In a temporary file (already unlinked), positioned at its start.
    File(std::fs::File),
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
    /// The spool budget shared with other requests is spent (503).
    Budget,
    /// The body stopped arriving for longer than the idle timeout (408).
    Stalled,
}

/// What spooling needs to know.
#[derive(Debug)]
pub(crate) struct SpoolLimits<'a> {
    /// Bytes kept in memory before a file is used.
    pub(crate) memory: usize,
    /// The longest body.
    pub(crate) max: u64,
    /// The longest wait for the next frame.
    pub(crate) idle: Duration,
    pub(crate) dir: &'a Path,
    pub(crate) budget: &'a Arc<Budget>,
}

/// Reads `body` to its end: up to `limits.memory` bytes are kept in memory, the rest goes
/// to a temporary file in `limits.dir`; more than `limits.max` bytes in all is
/// [`SpoolError::TooLarge`], more than the budget has left [`SpoolError::Budget`]: spooling
/// stops there, before the bytes are stored.
pub(crate) async fn spool<B>(body: B, limits: SpoolLimits<'_>) -> Result<Spooled, SpoolError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len: u64 = 0;
    let mut file: Option<tokio::fs::File> = None;
    let mut reservation = Reservation::new(limits.budget.clone());
    let (memory, max) = (limits.memory, limits.max);
    let dir = limits.dir;
    loop {
        let next = std::future::poll_fn(|cx| crate::panic::poll_frame(body.as_mut(), cx));
        let Some(frame) = tokio::time::timeout(limits.idle, next)
            .await
            .map_err(|_| SpoolError::Stalled)?
        else {
            break;
        };
        let frame = frame.map_err(SpoolError::Body)?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let n = data.remaining() as u64;
        len += n;
        if len > max {
            return Err(SpoolError::TooLarge);
        }
        if !reservation.grow(n) {
            return Err(SpoolError::Budget);
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
    let data = match file {
        None => SpooledData::Memory(chunks),
        Some(mut file) => {
            file.flush().await.map_err(SpoolError::Io)?;
            file.seek(SeekFrom::Start(0))
                .await
                .map_err(SpoolError::Io)?;
            SpooledData::File(file.into_std().await)
        }
    };
    Ok(Spooled {
        data,
        len,
        reservation,
    })
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

    fn limits<'a>(
        memory: usize,
        max: u64,
        dir: &'a Path,
        budget: &'a Arc<Budget>,
    ) -> SpoolLimits<'a> {
        SpoolLimits {
            memory,
            max,
            idle: Duration::from_secs(10),
            dir,
            budget,
        }
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory() {
        let (dir, budget) = (std::env::temp_dir(), Arc::new(Budget::new(100)));
        let spooled = spool(body(&["ab", "cd"]), limits(16, 100, &dir, &budget))
            .await
            .unwrap();
        assert_eq!(spooled.len, 4);
        match &spooled.data {
            SpooledData::Memory(chunks) => assert_eq!(chunks.concat(), b"abcd"),
            other => panic!("{other:?}"),
        }
        assert_eq!(budget.used(), 4);
        drop(spooled);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn larger_bodies_go_to_an_unlinked_file_read_from_its_start() {
        let (dir, budget) = (std::env::temp_dir(), Arc::new(Budget::new(100)));
        let spooled = spool(body(&["abc", "def", "ghi"]), limits(4, 100, &dir, &budget))
            .await
            .unwrap();
        assert_eq!(spooled.len, 9);
        let SpooledData::File(mut file) = spooled.data else {
            panic!("not spooled to a file");
        };
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcdefghi");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let (dir, budget) = (std::env::temp_dir(), Arc::new(Budget::new(100)));
        let result = spool(body(&["abc", "def"]), limits(4, 5, &dir, &budget)).await;
        assert!(matches!(result, Err(SpoolError::TooLarge)), "{result:?}");
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn the_shared_budget_bounds_every_spool_together() {
        let (dir, budget) = (std::env::temp_dir(), Arc::new(Budget::new(8)));
        let first = spool(body(&["abc", "def"]), limits(4, 100, &dir, &budget))
            .await
            .unwrap();
        assert_eq!(budget.used(), 6);
        let second = spool(body(&["ab", "cd"]), limits(4, 100, &dir, &budget)).await;
        assert!(matches!(second, Err(SpoolError::Budget)), "{second:?}");
        assert_eq!(budget.used(), 6);
        drop(first);
        let third = spool(body(&["ab", "cd"]), limits(4, 100, &dir, &budget)).await;
        assert_eq!(third.unwrap().len, 4);
        assert_eq!(budget.used(), 0);
    }
}
