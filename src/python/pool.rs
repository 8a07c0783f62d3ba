//! The bounded set of threads Python code runs on.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// A unit of work for a Python thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of threads taking jobs from one queue: every Python call of a
/// [`WsgiApp`](super::WsgiApp) runs on one of them, never on an async runtime's threads.
///
/// One thread at a time waits at the queue's receiver, the others behind its lock: a job
/// wakes one thread, and a burst of jobs is taken by the threads one after the other rather
/// than by all of them at once. Measured against a condition variable that woke an idle
/// thread for every job: that costs 8 to 10 us more CPU per request under load (more
/// threads awake at once, queueing for the GIL), for the same throughput.
///
/// The threads stop when the last handle to the pool is dropped and the queue is empty.
#[derive(Clone)]
pub(crate) struct Pool {
    tx: Sender<Job>,
    threads: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `threads` threads (at least one), and the interpreter first if it is not
    /// running yet: the threads attach to it.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        pyo3::Python::initialize();
        let threads = threads.max(1);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("towergate-python-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Pool { tx, threads })
    }

    /// How many threads the pool has.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job`; it runs when a thread is free. Returns false when the pool is gone.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.tx.send(Box::new(job)).is_ok()
    }
}

/// A pool thread: takes jobs until the pool is gone.
///
/// The thread attaches to the interpreter once and stays known to it, detached between
/// jobs: each job's `Python::attach` then only takes the GIL. Without this, every job would
/// create and destroy a Python thread state (with its frame stack, mapped and unmapped).
fn work(rx: &Mutex<Receiver<Job>>) {
    pyo3::Python::attach(|py| py.detach(|| take_jobs(rx)));
}

fn take_jobs(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        match job {
            // A panic in a job is the job's to report; the thread serves the next one.
            Ok(job) => drop(catch_unwind(AssertUnwindSafe(job))),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_pool_threads_and_a_panic_does_not_kill_them() {
        let pool = Pool::new(2).unwrap();
        let (tx, rx) = channel();
        pool.spawn(|| panic!("job failed"));
        for _ in 0..4 {
            let tx = tx.clone();
            pool.spawn(move || {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                tx.send(name).unwrap();
            });
        }
        for _ in 0..4 {
            let name = rx.recv().unwrap();
            assert!(name.starts_with("towergate-python-"), "{name}");
        }
        assert_eq!(pool.threads(), 2);
    }

    #[test]
    fn the_threads_finish_the_queue_and_stop_when_the_pool_is_dropped() {
        let pool = Pool::new(1).unwrap();
        let (tx, rx) = channel();
        for i in 0..3 {
            let tx = tx.clone();
            pool.spawn(move || tx.send(i).unwrap());
        }
        drop(tx);
        drop(pool);
        // Every queued job ran, then the thread dropped the jobs' senders and stopped.
        assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_job_that_waits_does_not_hold_up_the_next_one() {
        let pool = Pool::new(2).unwrap();
        let (go_tx, go_rx) = channel::<()>();
        let (done_tx, done_rx) = channel();
        let done = done_tx.clone();
        pool.spawn(move || {
            go_rx.recv().unwrap();
            done.send(1).unwrap();
        });
        pool.spawn(move || {
            done_tx.send(2).unwrap();
            go_tx.send(()).unwrap();
        });
        assert_eq!(done_rx.iter().collect::<Vec<_>>(), [2, 1]);
    }
}
