//! Slots with a bounded line: the host's process slots and the FastCGI client's request
//! slots.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The default of how many requests may wait for a slot: 1024.
pub(crate) const DEFAULT_MAX_WAITING: usize = 1024;

/// A number of slots, taken first come, first served, and the count of requests waiting
/// for one, which each wait limits: a waiting request holds memory (its head, its stream, a
/// few KiB), and an HTTP/2 client can send hundreds at once on each connection.
///
/// Clones share the slots and the line.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// Why no slot was taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// As many requests as allowed wait already.
    LineFull(usize),
    /// None freed up in time.
    TimedOut,
}

impl Slots {
    pub(crate) fn new(slots: usize) -> Self {
        Slots {
            semaphore: Arc::new(Semaphore::new(slots)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A free slot, or one that frees up by `deadline`, unless `max` requests wait already.
    pub(crate) async fn acquire_until(
        &self,
        deadline: Instant,
        max: usize,
    ) -> Result<OwnedSemaphorePermit, NoSlot> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = Waiting::enter(&self.waiting, max).ok_or(NoSlot::LineFull(max))?;
        match tokio::time::timeout_at(deadline, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(NoSlot::TimedOut),
        }
    }
}

/// Counts a request in the line until dropped (it took a slot, timed out or went away).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Waiting(count))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn past_the_line_a_request_is_refused_and_the_line_frees_up() {
        let slots = Slots::new(1);
        let far = Instant::now() + Duration::from_secs(60);
        let held = slots.acquire_until(far, 2).await.unwrap();
        // Two wait; the third is refused at once.
        let first = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire_until(far, 2).await.map(drop) }
        });
        let second = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire_until(far, 2).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(slots.waiting.load(Ordering::Acquire), 2);
        assert_eq!(
            slots.acquire_until(far, 2).await.map(drop),
            Err(NoSlot::LineFull(2))
        );
        // The slot goes to those waiting, in turn.
        drop(held);
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(second.await.unwrap(), Ok(()));
        assert_eq!(slots.waiting.load(Ordering::Acquire), 0);
        // A wait that times out leaves the line.
        let held = slots.acquire_until(far, 2).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(
            slots.acquire_until(soon, 2).await.map(drop),
            Err(NoSlot::TimedOut)
        );
        assert_eq!(slots.waiting.load(Ordering::Acquire), 0);
        // With no line at all, only a free slot is taken.
        assert_eq!(
            slots.acquire_until(far, 0).await.map(drop),
            Err(NoSlot::LineFull(0))
        );
        drop(held);
        assert!(slots.acquire_until(far, 0).await.is_ok());
    }
}
