//! The bounded set of threads Python code runs on.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// A unit of work for a Python thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of threads taking jobs from one queue: every Python call of a
/// [`WsgiApp`](super::WsgiApp) runs on one of them, never on an async runtime's threads.
///
/// A thread that finishes a job takes the next queued one at once, without sleeping. An
/// idle thread is woken only when a job finds no thread free, and only one at a time: the
/// woken thread wakes the next if more jobs wait. A burst of jobs is so taken by the
/// threads one after the other rather than by all of them at once, which would queue them
/// for the GIL. Measured under load (a hello app, two `towergate wsgi` workers): a
/// condition variable woken for every job cost 8 to 10 us more CPU per request; one thread
/// waiting at a channel with the others behind its lock (a hand-over of the lock and of the
/// channel for every job) made 0.52 futex calls and 0.38 context switches a request,
/// against 0.36–0.42 and 0.29–0.34 here. An idle thread that watched for the next job
/// (yielding its core) before it slept made both worse (0.63–0.71, 0.58–0.68).
///
/// The threads stop when the last handle to the pool is dropped and the queue is empty.
#[derive(Clone)]
pub(crate) struct Pool {
    handle: Arc<Handle>,
    threads: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// What the pool's handles and threads share.
struct Shared {
    state: Mutex<State>,
    /// Signalled for an idle thread: a job came, or the pool closed.
    available: Condvar,
}

struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// A thread was woken and has not taken a job yet: no other is woken meanwhile.
    waking: bool,
    /// Every handle is gone: the threads finish the queue and stop.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Whether to wake an idle thread for the queued jobs (and notes that one is woken).
    fn wake_one(&mut self) -> bool {
        let wake = !self.jobs.is_empty() && self.idle > 0 && !self.waking;
        self.waking |= wake;
        wake
    }
}

/// Closes the pool when the last [`Pool`] clone is dropped.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.available.notify_all();
    }
}

impl Pool {
    /// Starts `threads` threads (at least one), and the interpreter first if it is not
    /// running yet: the threads attach to it.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        pyo3::Python::initialize();
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                waking: false,
                closed: false,
            }),
            available: Condvar::new(),
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("towergate-python-{i}"))
                .spawn(move || work(&shared))?;
        }
        Ok(Pool {
            handle: Arc::new(Handle(shared)),
            threads,
        })
    }

    /// How many threads the pool has.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job`; it runs when a thread is free.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let shared = &self.handle.0;
        let mut state = shared.lock();
        state.jobs.push_back(Box::new(job));
        let wake = state.wake_one();
        drop(state);
        if wake {
            shared.available.notify_one();
        }
    }
}

/// A pool thread: takes jobs until the pool is closed and its queue empty.
///
/// The thread attaches to the interpreter once and stays known to it, detached between
/// jobs: each job's `Python::attach` then only takes the GIL. Without this, every job would
/// create and destroy a Python thread state (with its frame stack, mapped and unmapped).
fn work(shared: &Shared) {
    pyo3::Python::attach(|py| py.detach(|| take_jobs(shared)));
}

fn take_jobs(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.jobs.pop_front() {
            // More jobs wait: pass them on to one more thread.
            let wake = state.wake_one();
            drop(state);
            if wake {
                shared.available.notify_one();
            }
            // A panic in a job is the job's to report; the thread serves the next one.
            drop(catch_unwind(AssertUnwindSafe(job)));
            state = shared.lock();
            continue;
        }
        if state.closed {
            return;
        }
        state.idle += 1;
        state = shared
            .available
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.idle -= 1;
        state.waking = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn jobs_queued_from_many_threads_all_run_with_no_wake_up_lost() {
        let pool = Pool::new(3).unwrap();
        let (tx, rx) = channel();
        let submitters: Vec<_> = (0..4)
            .map(|s| {
                let (pool, tx) = (pool.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let tx = tx.clone();
                        // Short jobs, some with a pause: idle threads, busy ones, and
                        // queued jobs all happen.
                        pool.spawn(move || {
                            if i % 50 == 0 {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            tx.send(s * 1000 + i).unwrap();
                        });
                    }
                })
            })
            .collect();
        for submitter in submitters {
            submitter.join().unwrap();
        }
        let mut ran: Vec<usize> = (0..2000)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(30))
                    .expect("a job never ran")
            })
            .collect();
        ran.sort_unstable();
        let expected: Vec<usize> = (0..4)
            .flat_map(|s| (0..500).map(move |i| s * 1000 + i))
            .collect();
        assert_eq!(ran, expected);
    }

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
