//! The bounded set of threads Python code runs on.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// How many times a thread that finds no job yields its core, looking out for one, before
/// it sleeps (see [`Pool`]).
const LOOK_OUT: usize = 3;

/// A unit of work for a Python thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of threads taking jobs from one queue: every Python call of a
/// [`WsgiApp`](super::WsgiApp) runs on one of them, never on an async runtime's threads.
///
/// A thread that finishes a job takes the next queued one at once, without sleeping. A
/// thread that finds the queue empty first looks out for a job: it yields its core up to
/// [`LOOK_OUT`] times, watching the length of the queue, and only then sleeps. An idle
/// thread is woken only when a job finds no thread free or looking out, and only one at a
/// time: the woken thread wakes the next if more jobs wait. A burst of jobs is so taken by
/// the threads one after the other rather than by all of them at once, which would queue
/// them for the GIL.
///
/// Measured under load (a hello app, two `towergate wsgi` workers, each with one runtime
/// thread): without the look-out, most requests cost a futex wake and a context switch
/// (0.53 futex calls and 0.58 context switches a request, against 0.08–0.10 and 0.27–0.29
/// with it), and throughput fell by a sixth (0.85× Granian against 1.02×). With a
/// multi-threaded runtime (one process) it changes nothing measurable. A condition variable
/// woken for every job cost 8 to 10 us more CPU per request; one thread waiting at a
/// channel with the others behind its lock made more futex calls and context switches.
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
    /// The length of the queue, for threads looking out without the lock.
    queued: AtomicUsize,
}

struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads looking out for a job before they wait: they take a queued job by themselves.
    looking: usize,
    /// A thread was woken and has not taken a job yet: no other is woken meanwhile.
    waking: bool,
    /// Every handle is gone: the threads finish the queue and stop.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the length of the queue to the threads looking out.
    fn count(&self, state: &State) {
        self.queued.store(state.jobs.len(), Ordering::Release);
    }

    /// Yields the core until a job is queued, at most [`LOOK_OUT`] times.
    fn look_out(&self) {
        for _ in 0..LOOK_OUT {
            if self.queued.load(Ordering::Acquire) > 0 {
                return;
            }
            std::thread::yield_now();
        }
    }
}

impl State {
    /// Whether to wake an idle thread for the queued jobs (and notes that one is woken).
    fn wake_one(&mut self) -> bool {
        let wake = !self.jobs.is_empty() && self.idle > 0 && !self.waking && self.looking == 0;
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
                looking: 0,
                waking: false,
                closed: false,
            }),
            available: Condvar::new(),
            queued: AtomicUsize::new(0),
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
        self.spawn_within(job, None);
    }

    /// Queues `job` unless it would make more than `limit` jobs wait with no thread free
    /// for them (`None`: no limit); false when it was refused (and dropped).
    pub(crate) fn spawn_within(
        &self,
        job: impl FnOnce() + Send + 'static,
        limit: Option<usize>,
    ) -> bool {
        let shared = &self.handle.0;
        let mut state = shared.lock();
        // Idle threads and those looking out take a queued job each.
        let free = state.idle + state.looking;
        if limit.is_some_and(|limit| state.jobs.len() >= limit.saturating_add(free)) {
            return false;
        }
        state.jobs.push_back(Box::new(job));
        shared.count(&state);
        let wake = state.wake_one();
        drop(state);
        if wake {
            shared.available.notify_one();
        }
        true
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
            shared.count(&state);
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
        // No job: look out for one before sleeping. A job queued meanwhile wakes no one (nor
        // does the pool's closing): this thread sees it here.
        state.looking += 1;
        drop(state);
        shared.look_out();
        state = shared.lock();
        state.looking -= 1;
        if !state.jobs.is_empty() || state.closed {
            continue;
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
    fn the_threads_stop_when_the_pool_is_dropped_whatever_they_were_doing() {
        // Dropped at once, after a burst, or once idle: threads running, looking out for a
        // job or asleep all see the pool close.
        for round in 0..300 {
            let pool = Pool::new(3).unwrap();
            for _ in 0..round % 4 {
                pool.spawn(|| ());
            }
            if round % 3 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Every thread holds the shared state until it stops.
            let shared = Arc::downgrade(&pool.handle.0);
            drop(pool);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while shared.strong_count() > 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: a thread did not stop"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    #[test]
    fn past_the_limit_of_waiting_jobs_a_job_is_refused() {
        let pool = Pool::new(1).unwrap();
        let (started_tx, started_rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        let (done_tx, done_rx) = channel();
        pool.spawn(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        // The thread is busy: jobs now wait, two at most.
        started_rx.recv().unwrap();
        for i in 0..3 {
            let done = done_tx.clone();
            let queued = pool.spawn_within(move || done.send(i).unwrap(), Some(2));
            assert_eq!(queued, i < 2, "job {i}");
        }
        // Jobs with no limit are always queued.
        let done = done_tx.clone();
        pool.spawn(move || done.send(9).unwrap());
        go_tx.send(()).unwrap();
        let ran: Vec<_> = (0..3).map(|_| done_rx.recv().unwrap()).collect();
        assert_eq!(ran, [0, 1, 9]);
        // A free thread takes a job at once: it does not wait, so even a limit of 0 lets
        // it in.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = done_tx.clone();
            if pool.spawn_within(move || done.send(10).unwrap(), Some(0)) {
                break;
            }
            // Refused while the thread finishes the last job.
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never became free"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(30)), Ok(10));
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
