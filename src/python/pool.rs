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
/// thread is woken only for a job that no thread looking out, and none woken already,
/// will take: a burst of jobs wakes as many threads as it has jobs, at once.
///
/// Waking them one at a time instead (the woken thread woke the next if more jobs waited)
/// left the cores idle while the chain of wake-ups went on: with two `towergate wsgi`
/// workers on a plain hello, the machine (servers and `wrk`) was busy 1.89–1.94 of its 2
/// cores against 1.97–1.98 waking them at once. One at a time served the hello at 1.01×
/// Granian and a Flask hello at 0.93×; at once, 1.10× and 1.05× (medians of 8 and 5
/// interleaved rounds; BENCHMARKS.md, 2026-12-02, fifth session).
///
/// Measured under load (a hello app, two `towergate wsgi` workers, each with one runtime
/// thread): without the look-out, most requests cost a futex wake and a context switch
/// (0.53 futex calls and 0.58 context switches a request, against 0.08–0.10 and 0.27–0.29
/// with it), and throughput fell by a sixth. A condition variable woken for every job cost
/// 8 to 10 us more CPU per request; one thread waiting at a channel with the others behind
/// its lock made more futex calls and context switches.
///
/// # Keeping the GIL
///
/// With `keep_gil`, jobs are taken under the GIL: a thread that finishes a job goes on
/// with the next queued one without letting go of it, and a thread with no GIL takes a job
/// only once it holds the GIL. While jobs are queued, one idle thread waits for the GIL,
/// without a job; it gets the GIL as soon as the thread running jobs waits (for I/O, a
/// sleep, a lock, or C code that lets go of the GIL), or when Python makes it let go
/// (`sys.getswitchinterval()`, 5 ms), and takes the queue over. So an app that computes
/// runs its requests one after the other on one thread, with no GIL hand-over between them,
/// and an app whose requests wait has as many threads running as it needs, at once. A job
/// runs attached to the interpreter: one that waits for something must detach first
/// (`py.detach`), or no other job runs meanwhile.
///
/// Without it, every thread that takes a job then waits for the GIL with it, and the GIL
/// changes hands between jobs, as in Granian and gunicorn's threads.
///
/// Measured with one process (a multi-threaded runtime; interleaved `wrk` rounds in
/// BENCHMARKS.md, 2026-12-02), keeping the GIL served a Flask hello at 9.8k requests a
/// second against 7.2k without (Granian: 7.8k), a plain hello at 45.7k against 39.6k
/// (43.3k), and an app that sleeps 0.2 ms a request at 21k against 19–21k. With a process
/// per core (one current-thread runtime each) it served Flask at 14.0k against 17.3k: the
/// CLI keeps the GIL only with one process.
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
            .field("keep_gil", &self.handle.0.keep_gil)
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
    /// Jobs are taken under the GIL, kept from one to the next (see [`Pool`]).
    keep_gil: bool,
}

struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads looking out for a job before they wait: they take a queued job by themselves.
    looking: usize,
    /// Threads woken that have not taken a job yet: each will take one.
    woken: usize,
    /// Every handle is gone: the threads finish the queue and stop.
    closed: bool,
    /// A thread waits for the GIL to take the queued jobs (with `keep_gil`): no other is
    /// woken meanwhile.
    gate: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a job was queued or taken: publishes the length of the queue to the threads
    /// looking out, lets go of the lock, and wakes an idle thread if jobs wait with none to
    /// take them.
    fn publish(&self, mut state: MutexGuard<'_, State>) {
        self.queued.store(state.jobs.len(), Ordering::Release);
        let wake = state.wake_one(self.keep_gil);
        drop(state);
        if wake {
            self.available.notify_one();
        }
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

    /// Takes the next queued job, if any, and lets go of the lock; wakes one more thread
    /// when more jobs wait.
    fn take(&self, mut state: MutexGuard<'_, State>) -> Option<Job> {
        let job = state.jobs.pop_front()?;
        self.publish(state);
        Some(job)
    }
}

impl State {
    /// Whether to wake an idle thread for the queued jobs (and notes that one is woken):
    /// for a job that no thread looking out or woken already will take; with `keep_gil`,
    /// only while no thread waits for the GIL to take them, and one at a time (it waits
    /// for the GIL for all of them).
    fn wake_one(&mut self, keep_gil: bool) -> bool {
        let takers = self.looking + self.woken;
        // (`idle` counts the woken threads until they run.)
        let wake = self.idle > self.woken
            && if keep_gil {
                !self.jobs.is_empty() && takers == 0 && !self.gate
            } else {
                self.jobs.len() > takers
            };
        self.woken += usize::from(wake);
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
    /// running yet: the threads attach to it. With `keep_gil`, jobs are taken under the
    /// GIL, kept from one to the next (see [`Pool`]).
    pub(crate) fn new(threads: usize, keep_gil: bool) -> std::io::Result<Self> {
        pyo3::Python::initialize();
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                looking: 0,
                woken: 0,
                closed: false,
                gate: false,
            }),
            available: Condvar::new(),
            queued: AtomicUsize::new(0),
            keep_gil,
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

    /// Whether jobs are taken under the GIL, kept from one to the next.
    pub(crate) fn keeps_gil(&self) -> bool {
        self.handle.0.keep_gil
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
        shared.publish(state);
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
        if !state.jobs.is_empty() {
            if !shared.keep_gil {
                if let Some(job) = shared.take(state) {
                    run(job);
                }
                state = shared.lock();
                continue;
            }
            if !state.gate {
                // Wait for the GIL, then take jobs until none is queued, keeping it.
                state.gate = true;
                drop(state);
                pyo3::Python::attach(|_| {
                    let mut state = shared.lock();
                    state.gate = false;
                    while let Some(job) = shared.take(state) {
                        run(job);
                        state = shared.lock();
                    }
                });
                state = shared.lock();
                continue;
            }
            // Another thread waits for the GIL to take them: sleep.
        } else if state.closed {
            // The others may sleep while this thread finished the queue.
            shared.available.notify_all();
            return;
        } else {
            // No job: look out for one before sleeping. A job queued meanwhile wakes no
            // one (nor does the pool's closing): this thread sees it here.
            state.looking += 1;
            drop(state);
            shared.look_out();
            state = shared.lock();
            state.looking -= 1;
            if !state.jobs.is_empty() || state.closed {
                continue;
            }
        }
        state.idle += 1;
        state = shared
            .available
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.idle -= 1;
        // (Saturating: a thread also returns from its wait when the pool closes, or
        // spuriously, without having been counted.)
        state.woken = state.woken.saturating_sub(1);
    }
}

/// Runs `job`: a panic in it is the job's to report; the thread serves the next one.
fn run(job: Job) {
    drop(catch_unwind(AssertUnwindSafe(job)));
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn jobs_queued_from_many_threads_all_run_with_no_wake_up_lost() {
        for keep_gil in [false, true] {
            jobs_queued_from_many_threads_all_run(keep_gil);
        }
    }

    fn jobs_queued_from_many_threads_all_run(keep_gil: bool) {
        let pool = Pool::new(3, keep_gil).unwrap();
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
                                // As the app's jobs do, it waits with the GIL let go.
                                pyo3::Python::attach(|py| {
                                    py.detach(|| std::thread::sleep(Duration::from_millis(1)))
                                });
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
        for keep_gil in [false, true] {
            jobs_run_on_the_pool_threads_and_a_panic_does_not_kill_them_with(keep_gil);
        }
    }

    fn jobs_run_on_the_pool_threads_and_a_panic_does_not_kill_them_with(keep_gil: bool) {
        let pool = Pool::new(2, keep_gil).unwrap();
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
        for keep_gil in [false, true] {
            let pool = Pool::new(1, keep_gil).unwrap();
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
    }

    #[test]
    fn the_threads_stop_when_the_pool_is_dropped_whatever_they_were_doing() {
        // Dropped at once, after a burst, or once idle: threads running, looking out for a
        // job or asleep all see the pool close.
        for round in 0..300 {
            // Every other round keeping the GIL: threads then also wait for the GIL.
            let pool = Pool::new(3, round % 2 == 1).unwrap();
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
        let pool = Pool::new(1, false).unwrap();
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
        for keep_gil in [false, true] {
            let pool = Pool::new(2, keep_gil).unwrap();
            let (go_tx, go_rx) = channel::<()>();
            let (done_tx, done_rx) = channel();
            let done = done_tx.clone();
            pool.spawn(move || {
                // As the app's jobs do, it waits with the GIL let go.
                let went = pyo3::Python::attach(|py| {
                    py.detach(move || go_rx.recv_timeout(Duration::from_secs(30)).is_ok())
                });
                done.send(("first", went)).unwrap();
            });
            pool.spawn(move || {
                done_tx.send(("second", true)).unwrap();
                go_tx.send(()).unwrap();
            });
            let done: Vec<_> = done_rx.iter().collect();
            assert_eq!(done, [("second", true), ("first", true)], "{keep_gil}");
        }
    }

    /// The name of the calling thread.
    fn name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    /// Spins (in Rust, on a CPU) until `flag` is set, 30 s at most; gives whether it was.
    fn spin_until(flag: &std::sync::atomic::AtomicBool) -> bool {
        let start = std::time::Instant::now();
        while !flag.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
            std::hint::spin_loop();
        }
        flag.load(Ordering::SeqCst)
    }

    #[test]
    fn keeping_the_gil_the_thread_that_runs_a_job_runs_the_queued_ones_after_it() {
        // The other thread waits for the GIL meanwhile, which the first keeps.
        let pool = Pool::new(2, true).unwrap();
        assert!(pool.keeps_gil());
        let queued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel();
        let (first_tx, seen) = (tx.clone(), queued.clone());
        pool.spawn(move || {
            first_tx.send(name()).unwrap();
            spin_until(&seen);
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        for _ in 0..2 {
            let tx = tx.clone();
            pool.spawn(move || tx.send(name()).unwrap());
        }
        queued.store(true, Ordering::SeqCst);
        for _ in 0..2 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), first);
        }
    }

    #[test]
    fn without_keeping_the_gil_a_queued_job_starts_at_once_on_a_free_thread() {
        let pool = Pool::new(2, false).unwrap();
        assert!(!pool.keeps_gil());
        let second_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel();
        let (first_tx, seen) = (tx.clone(), second_ran.clone());
        pool.spawn(move || {
            let first = name();
            first_tx.send((first, spin_until(&seen))).unwrap();
        });
        pool.spawn(move || {
            let second = name();
            second_ran.store(true, Ordering::SeqCst);
            tx.send((second, true)).unwrap();
        });
        let (second, _) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let (first, saw_second) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(saw_second, "the second job ran while the first was running");
        assert_ne!(first, second);
    }

    /// The state of a pool whose `idle` threads all sleep, with `looking` looking out.
    fn sleeping(idle: usize, looking: usize) -> State {
        State {
            jobs: VecDeque::new(),
            idle,
            looking,
            woken: 0,
            closed: false,
            gate: false,
        }
    }

    /// Queues a job as `spawn_within` does; returns whether a thread is woken for it.
    fn queue(state: &mut State, keep_gil: bool) -> bool {
        state.jobs.push_back(Box::new(|| {}));
        state.wake_one(keep_gil)
    }

    #[test]
    fn without_keeping_the_gil_a_burst_wakes_a_thread_for_each_job_no_other_will_take() {
        let mut state = sleeping(3, 1);
        // The first job is the looking thread's; the next three wake a thread each, at
        // once (not one after the other); a fifth finds every sleeping thread woken.
        let woken: Vec<bool> = (0..4).map(|_| queue(&mut state, false)).collect();
        assert_eq!(woken, [false, true, true, true]);
        assert_eq!(state.woken, 3);
        assert!(!queue(&mut state, false), "no thread left to wake");
        // A woken thread takes its job: nothing to wake, every sleeping one is woken.
        state.idle -= 1;
        state.woken -= 1;
        state.jobs.pop_front();
        assert!(!state.wake_one(false));
    }

    #[test]
    fn keeping_the_gil_a_burst_wakes_one_thread_to_wait_for_the_gil() {
        let mut state = sleeping(3, 0);
        let woken: Vec<bool> = (0..3).map(|_| queue(&mut state, true)).collect();
        assert_eq!(woken, [true, false, false]);
        // Woken, it waits for the GIL for all of them: still no other is woken.
        state.idle -= 1;
        state.woken -= 1;
        state.gate = true;
        assert!(!queue(&mut state, true));
        // Nor is one while a thread looks out.
        let mut state = sleeping(3, 1);
        assert!(!queue(&mut state, true));
    }
}
