//! The bounded set of threads Python code runs on.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many times a thread that finds no job yields its core, looking out for one, before
/// it sleeps (see [`Pool`]).
const LOOK_OUT: usize = 3;

/// The longest a thread that watches the running jobs waits between two looks at their
/// threads' states, and how long a thread seen waiting counts as waiting (see [`Pool`]).
const WATCH: Duration = Duration::from_millis(1);

/// The shortest wait between two looks of a thread that watches the running jobs: when
/// runners are often found waiting (an app whose requests wait briefly, for a quick
/// database query say), the watcher looks this often (see [`Pool`]).
const WATCH_MIN: Duration = Duration::from_micros(50);

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
/// With a limit of runners, a thread starts a job only while fewer than that many of the
/// others run theirs on a CPU (or are ready to): a thread whose job waits, for I/O, a
/// sleep, a lock or the GIL, does not count. Python runs one thread at a time; more
/// threads on the CPU only hand the GIL over among them, at every request. Linux tells a
/// thread's state in `/proc/thread-self/stat` (`R`, or `S` when it waits); a read costs
/// about 5 us, so a state is read again only after [`WATCH`] for a waiting thread, and
/// after a tenth of the watcher's wait (below) for a running one, which may wait soon. A
/// thread that starts a job is on a CPU: it counts as running for that tenth without a
/// read, so that short jobs (most requests) cost no read at all. While the limit holds
/// jobs back, one idle thread watches: it looks again after a while, and starts a job as
/// soon as a runner waits. The while adapts (see [`watch`]): a millisecond ([`WATCH`]) for
/// an app that computes, down to 50 us ([`WATCH_MIN`]) for one whose runners are often
/// found waiting. An app whose requests mostly wait briefly still loses with a limit: one
/// that sleeps 0.2 ms a request served 13–14k requests a second, against 6.3k with a
/// fixed millisecond and 20–24k without a limit.
///
/// Measured with one process (a multi-threaded runtime; interleaved `wrk` rounds, in
/// BENCHMARKS.md, 2026-12-02), a limit of one runner served a Flask hello at 1.12× Granian
/// against 1.0× without it, and an app that sleeps 5 ms a request at the same rate as
/// without it. A plain hello gained once a starting job no longer cost a read (0.34 reads
/// a request before, 0.01 after): 35–39k req/s against 33–34k without the limit, and 32.5
/// us of server CPU a request against Granian's 36.5. With a process per core (one runtime
/// thread each) the limit costs a sixth to a quarter of Flask's throughput: the runtime
/// and the one Python thread then wake each other at every request, 2.0 context switches
/// a request against 1.1.
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
            .field("runners", &self.handle.0.runners)
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
    /// How many threads may run jobs on a CPU at once (`None`: all).
    runners: Option<usize>,
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
    /// Each thread.
    threads: Vec<Runner>,
    /// A thread watches the running jobs, queued jobs being held back by the limit.
    watching: bool,
    /// How long the watcher waits between two looks, from [`WATCH_MIN`] to [`WATCH`]; a
    /// state seen running is trusted for a tenth of it.
    period: Duration,
}

/// A thread of the pool.
#[derive(Default)]
struct Runner {
    /// The thread's record of its state, once the thread has started (with a limit of
    /// runners only).
    stat: Option<cpu::Stat>,
    /// Runs a job.
    busy: bool,
    /// Whether the thread was last seen on a CPU (or ready to be), and when: its record
    /// is not read at every look (a read costs some microseconds).
    seen: Option<(bool, Instant)>,
}

impl Runner {
    /// Whether the thread runs a job on a CPU (or is ready to); `found_waiting` is set
    /// when its record was read and showed it waiting. A state seen running is trusted for
    /// a tenth of `period` (the thread may wait soon), one seen waiting for a [`WATCH`].
    fn running(&mut self, now: Instant, period: Duration, found_waiting: &mut bool) -> bool {
        if !self.busy {
            return false;
        }
        match self.seen {
            Some((running, at))
                if now.saturating_duration_since(at)
                    < if running { period / 10 } else { WATCH } =>
            {
                running
            }
            _ => {
                let running = self.stat.as_ref().is_some_and(cpu::Stat::running);
                self.seen = Some((running, now));
                *found_waiting |= !running;
                running
            }
        }
    }
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
    fn new(threads: usize) -> Self {
        State {
            jobs: VecDeque::new(),
            idle: 0,
            looking: 0,
            waking: false,
            closed: false,
            threads: (0..threads).map(|_| Runner::default()).collect(),
            watching: false,
            period: WATCH,
        }
    }

    /// Whether to wake an idle thread for the queued jobs (and notes that one is woken): to
    /// run one, or to watch the running ones when the limit of runners holds jobs back.
    fn wake_one(&mut self, runners: Option<usize>) -> bool {
        let wake = !self.jobs.is_empty()
            && self.idle > 0
            && !self.waking
            && self.looking == 0
            && (!self.watching || self.may_start(runners));
        self.waking |= wake;
        wake
    }

    /// A look of the thread that watches: whether a thread may start a job, the wait until
    /// the next look adapted to what it found (see [`watch`]).
    fn look(&mut self, runners: Option<usize>) -> bool {
        let mut found_waiting = false;
        let may_start = self.may_start_noting(runners, &mut found_waiting);
        if !may_start {
            self.period = (self.period + WATCH_MIN).min(WATCH);
        } else if found_waiting {
            self.period = (self.period / 2).max(WATCH_MIN);
        }
        may_start
    }

    /// Whether a thread may start a job: fewer than `runners` threads run jobs on a CPU
    /// (or are ready to). A thread whose job waits (for I/O, a sleep, a lock or the GIL)
    /// does not count.
    fn may_start(&mut self, runners: Option<usize>) -> bool {
        self.may_start_noting(runners, &mut false)
    }

    /// [`may_start`](Self::may_start), setting `found_waiting` when a busy thread's record
    /// was read and showed it waiting.
    fn may_start_noting(&mut self, runners: Option<usize>, found_waiting: &mut bool) -> bool {
        runners.is_none_or(|runners| {
            let now = Instant::now();
            let period = self.period;
            let mut running = self
                .threads
                .iter_mut()
                .filter_map(|t| t.running(now, period, found_waiting).then_some(()));
            running.nth(runners - 1).is_none()
        })
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
    /// running yet: the threads attach to it. At most `runners` of them (at least one;
    /// `None`: all) run jobs on a CPU at once, the others waiting for I/O or the GIL;
    /// without a record of the threads' states (other systems than Linux), all of them do.
    pub(crate) fn new(threads: usize, runners: Option<usize>) -> std::io::Result<Self> {
        pyo3::Python::initialize();
        let threads = threads.max(1);
        // Without a record of the threads' states, waiting ones cannot be told.
        let runners = runners
            .filter(|_| cpu::stat().is_some())
            .map(|runners| runners.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(threads)),
            available: Condvar::new(),
            queued: AtomicUsize::new(0),
            runners,
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("towergate-python-{i}"))
                .spawn(move || work(&shared, i))?;
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

    /// How many threads may run jobs on a CPU at once (`None`: all).
    pub(crate) fn runners(&self) -> Option<usize> {
        self.handle.0.runners
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
        let wake = state.wake_one(shared.runners);
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
fn work(shared: &Shared, me: usize) {
    if shared.runners.is_some() {
        let stat = cpu::stat();
        shared.lock().threads[me].stat = stat;
    }
    pyo3::Python::attach(|py| py.detach(|| take_jobs(shared, me)));
}

fn take_jobs(shared: &Shared, me: usize) {
    let runners = shared.runners;
    let mut state = shared.lock();
    loop {
        let may_start = state.closed || state.may_start(runners);
        if let Some(job) = may_start.then(|| state.jobs.pop_front()).flatten() {
            shared.count(&state);
            // This thread is on a CPU now: no need to read its record for a while.
            let seen = runners.map(|_| (true, Instant::now()));
            (state.threads[me].busy, state.threads[me].seen) = (true, seen);
            // More jobs wait: pass them on to one more thread.
            let wake = state.wake_one(runners);
            drop(state);
            if wake {
                shared.available.notify_one();
            }
            // A panic in a job is the job's to report; the thread serves the next one.
            drop(catch_unwind(AssertUnwindSafe(job)));
            state = shared.lock();
            state.threads[me].busy = false;
            continue;
        }
        if state.closed && state.jobs.is_empty() {
            return;
        }
        if !state.jobs.is_empty() && !state.watching {
            state = watch(shared, state);
            continue;
        }
        if state.jobs.is_empty() {
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
        state.waking = false;
    }
}

/// Watches the running jobs while the limit of runners holds queued jobs back, until a
/// thread may start one (one of them waits), the queue empties or the pool closes.
///
/// The wait between two looks adapts: a look that finds a runner waiting came late, and
/// halves it (down to [`WATCH_MIN`]); a look that finds the runners running held jobs back
/// rightly, and lengthens it by [`WATCH_MIN`] (up to [`WATCH`]). An app that computes keeps
/// the watcher to a look a millisecond; one whose requests wait briefly gets looks every
/// 50 us, so that its waits overlap.
fn watch<'a>(shared: &'a Shared, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    state.watching = true;
    while !state.closed && !state.jobs.is_empty() && !state.look(shared.runners) {
        let period = state.period;
        state = shared
            .available
            .wait_timeout(state, period)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        state.waking = false;
    }
    state.watching = false;
    state
}

/// Whether a thread is on a CPU or waiting for one, read from Linux's
/// `/proc/thread-self/stat`.
mod cpu {
    use std::fs::File;

    /// A thread's record of its state.
    pub(super) struct Stat(File);

    /// The calling thread's record; `None` where there is none (no procfs, or not Linux).
    pub(super) fn stat() -> Option<Stat> {
        File::open("/proc/thread-self/stat").ok().map(Stat)
    }

    impl Stat {
        /// Whether the thread runs or is ready to (`R`), rather than waits for something
        /// (for I/O, a sleep, a lock or the GIL). False when the record cannot be read.
        pub(super) fn running(&self) -> bool {
            #[cfg(unix)]
            use std::os::unix::fs::FileExt;
            // The state follows the thread's name, which is in parentheses.
            let mut buf = [0; 64];
            #[cfg(unix)]
            let len = self.0.read_at(&mut buf, 0).unwrap_or(0);
            #[cfg(not(unix))]
            let len = 0;
            let after_name = buf[..len].iter().rposition(|&b| b == b')');
            after_name.is_some_and(|end| buf.get(end + 2) == Some(&b'R'))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn jobs_queued_from_many_threads_all_run_with_no_wake_up_lost() {
        for runners in [None, Some(1)] {
            jobs_queued_from_many_threads_all_run(runners);
        }
    }

    fn jobs_queued_from_many_threads_all_run(runners: Option<usize>) {
        let pool = Pool::new(3, runners).unwrap();
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
        let pool = Pool::new(2, None).unwrap();
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
        let pool = Pool::new(1, None).unwrap();
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
            // Every other round with a limit of one runner, which holds the jobs back.
            let pool = Pool::new(3, (round % 2 == 1).then_some(1)).unwrap();
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
        let pool = Pool::new(1, None).unwrap();
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
        let pool = Pool::new(2, None).unwrap();
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

    #[test]
    fn with_a_limit_of_one_runner_a_job_waits_while_another_runs_on_the_cpu() {
        if cpu::stat().is_none() {
            return; // not Linux: no limit
        }
        let pool = Pool::new(2, Some(1)).unwrap();
        assert_eq!(pool.runners(), Some(1));
        let second = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel();
        let seen = second.clone();
        let first_tx = tx.clone();
        pool.spawn(move || {
            // On the CPU for 300 ms, unless the second job starts meanwhile.
            let start = std::time::Instant::now();
            while !seen.load(Ordering::SeqCst) && start.elapsed() < Duration::from_millis(300) {
                std::hint::spin_loop();
            }
            first_tx
                .send(("first", seen.load(Ordering::SeqCst)))
                .unwrap();
        });
        pool.spawn(move || {
            second.store(true, Ordering::SeqCst);
            tx.send(("second", true)).unwrap();
        });
        let order: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        assert_eq!(order, [("first", false), ("second", true)]);

        // Without a limit the second job starts at once, on the other thread.
        let pool = Pool::new(2, None).unwrap();
        assert_eq!(pool.runners(), None);
        let second = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel();
        let seen = second.clone();
        pool.spawn(move || {
            let start = std::time::Instant::now();
            while !seen.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                std::hint::spin_loop();
            }
            tx.send(seen.load(Ordering::SeqCst)).unwrap();
        });
        pool.spawn(move || second.store(true, Ordering::SeqCst));
        assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(true));
    }

    #[test]
    fn with_a_limit_of_one_runner_a_job_that_waits_lets_the_next_one_start() {
        // The first job waits for the second: were the waiting thread counted as a runner,
        // the second would never start.
        let pool = Pool::new(2, Some(1)).unwrap();
        let (go_tx, go_rx) = channel::<()>();
        let (done_tx, done_rx) = channel();
        let done = done_tx.clone();
        pool.spawn(move || {
            let went = go_rx.recv_timeout(Duration::from_secs(30)).is_ok();
            done.send(("first", went)).unwrap();
        });
        pool.spawn(move || {
            go_tx.send(()).unwrap();
            done_tx.send(("second", true)).unwrap();
        });
        let mut done: Vec<_> = (0..2).map(|_| done_rx.recv().unwrap()).collect();
        done.sort_unstable();
        assert_eq!(done, [("first", true), ("second", true)]);
        // 0 counts as 1.
        assert_eq!(Pool::new(1, Some(0)).unwrap().runners(), Some(1));
    }

    #[test]
    fn the_watcher_looks_sooner_after_finding_a_runner_waiting_and_later_after_finding_it_running()
    {
        let Some(_) = cpu::stat() else {
            return; // No record of threads' states here: the limit is off.
        };
        // A thread that waits (blocked on a channel), with its record.
        let (stat_tx, stat_rx) = channel();
        let (end_tx, end_rx) = channel::<()>();
        let waiter = std::thread::spawn(move || {
            stat_tx.send(cpu::stat().unwrap()).unwrap();
            let _ = end_rx.recv();
        });
        let stat = stat_rx.recv().unwrap();
        let start = Instant::now();
        while stat.running() && start.elapsed() < Duration::from_secs(30) {
            std::thread::yield_now();
        }
        let mut state = State::new(1);
        state.threads[0] = Runner {
            stat: Some(stat),
            busy: true,
            seen: None,
        };
        // The runner waits: a job may start, and the next look comes sooner.
        assert!(state.look(Some(1)));
        assert_eq!(state.period, WATCH / 2);
        assert!(state.look(Some(1)));
        assert_eq!(
            state.period,
            WATCH / 2,
            "a state read once is trusted a while"
        );
        // A runner seen running (it has just started a job) holds jobs back, and the next
        // look comes later, up to WATCH.
        state.threads[0].seen = Some((true, Instant::now()));
        assert!(!state.look(Some(1)));
        assert_eq!(state.period, WATCH / 2 + WATCH_MIN);
        for _ in 0..100 {
            state.threads[0].seen = Some((true, Instant::now()));
            state.look(Some(1));
        }
        assert_eq!(state.period, WATCH);
        // Found waiting again and again: down to WATCH_MIN.
        for _ in 0..100 {
            state.threads[0].seen = None;
            assert!(state.look(Some(1)));
        }
        assert_eq!(state.period, WATCH_MIN);
        drop(end_tx);
        waiter.join().unwrap();
    }
}
