//! The bounded set of threads Python code runs on.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A unit of work for a Python thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of threads taking jobs from one queue: every Python call of a
/// [`WsgiApp`](super::WsgiApp) runs on one of them, never on an async runtime's threads.
///
/// The threads stop when the last handle to the pool is dropped and the queue is empty.
#[derive(Clone)]
pub(crate) struct Pool {
    handle: Arc<Handle>,
}

/// What the pool's handles share: dropping the last one closes the queue.
struct Handle {
    queue: Arc<Queue>,
    threads: usize,
}

/// The jobs, and the threads waiting for one: a queue that idle threads wait on without
/// holding its lock, so that queueing a job wakes at most one thread, and a thread done
/// with a job takes the next without sleeping.
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    closed: bool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.handle.threads)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `threads` threads (at least one), and the interpreter first if it is not
    /// running yet: the threads attach to it.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        pyo3::Python::initialize();
        let threads = threads.max(1);
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
        });
        // Made first: on an error, dropping it stops the threads already started.
        let pool = Pool {
            handle: Arc::new(Handle {
                queue: queue.clone(),
                threads,
            }),
        };
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("towergate-python-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(pool)
    }

    /// How many threads the pool has.
    pub(crate) fn threads(&self) -> usize {
        self.handle.threads
    }

    /// Queues `job`; it runs when a thread is free. Returns false when the pool is gone.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let queue = &self.handle.queue;
        let mut state = queue.lock();
        if state.closed {
            return false;
        }
        state.jobs.push_back(Box::new(job));
        // Threads at work take queued jobs when they are done: wake one only when there
        // are more idle threads than jobs already waiting for them.
        let wake = state.idle >= state.jobs.len();
        drop(state);
        if wake {
            queue.ready.notify_one();
        }
        true
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, waiting for one; `None` once the pool is closed and drained.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.idle += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.idle -= 1;
        }
    }
}

/// A pool thread: takes jobs until the pool is gone.
///
/// The thread attaches to the interpreter once and stays known to it, detached between
/// jobs: each job's `Python::attach` then only takes the GIL. Without this, every job would
/// create and destroy a Python thread state (with its frame stack, mapped and unmapped),
/// and `threading.local` data would not outlive a request.
fn work(queue: &Queue) {
    pyo3::Python::attach(|py| {
        py.detach(|| {
            while let Some(job) = queue.next() {
                // A panic in a job is the job's to report; the thread serves the next one.
                drop(catch_unwind(AssertUnwindSafe(job)));
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

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
