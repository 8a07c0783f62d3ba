//! The connections of a [`Client`](super::Client): a pool of kept-alive connections to one
//! FastCGI server. A multiplexed connection is read by one driver task that hands every
//! record to the request it belongs to (FastCGI specification §3.3: records of several
//! requests may interleave on it). A connection that carries one request at a time
//! (php-fpm) is read by that request itself, as nginx does: its reading end is lent to the
//! request and handed back at END_REQUEST, with no task or channel between them; one task
//! per pool closes those that stay idle.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OnceCell, mpsc, watch};
use tokio::time::Instant;

use super::Address;
use crate::fastcgi::record::{
    self, BuildIdHasher, Decoder, EndRequest, MAX_CONNS, MAX_REQS, MPXS_CONNS, NULL_REQUEST_ID,
    Record, RecordType,
};
use crate::panic::log;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// How long a new connection may wait for its first answer before it counts as not taken
/// up by the server (every worker of a php-fpm pool held by a kept connection): from then
/// on, connections whose request ends are closed rather than kept, to free a worker.
const UNTAKEN: Duration = Duration::from_millis(50);

/// What the driver hands to a request.
#[derive(Debug)]
pub(super) enum Event {
    /// A non-empty STDOUT record's content.
    Stdout(Bytes),
    /// END_REQUEST (§5.5).
    End(EndRequest),
}

/// The pool's settings.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) connect_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) multiplex: bool,
    pub(super) max_requests: usize,
    /// How many response records (each at most 64 KiB) may wait for one request's reader.
    pub(super) response_records: usize,
    /// How long the driver of a multiplexed connection waits for room in a request's full
    /// buffer before that request is aborted.
    pub(super) stdout_timeout: Duration,
}

/// Connections to one server.
pub(super) struct Pool {
    address: Address,
    settings: Settings,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Requests per connection: 1, or more when the server multiplexes (probed once).
    capacity: OnceCell<u16>,
    serial: AtomicU64,
    connecting: tokio::sync::Mutex<()>,
    /// Whether the task that closes idle connections read by their requests runs.
    reaping: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("address", &self.address)
            .field("settings", &self.settings)
            .field("capacity", &self.capacity.get())
            .finish_non_exhaustive()
    }
}

/// Why no connection could be had.
#[derive(Debug)]
pub(super) enum ConnectError {
    Timeout(Duration),
    Io(io::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Timeout(after) => write!(f, "no connection within {after:?}"),
            ConnectError::Io(error) => write!(f, "cannot connect: {error}"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    pub(super) fn new(address: Address, settings: Settings) -> Self {
        Pool {
            address,
            settings,
            conns: Mutex::new(Vec::new()),
            capacity: OnceCell::new(),
            serial: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            reaping: AtomicBool::new(false),
        }
    }

    /// How many connections are open (for tests and logs).
    pub(super) fn open_connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Requests per connection.
    pub(super) fn capacity(&self) -> Option<u16> {
        self.capacity.get().copied()
    }

    async fn connect(&self) -> Result<(Reader, Writer), ConnectError> {
        let connecting = async {
            match &self.address {
                Address::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
                    let _ = stream.set_nodelay(true);
                    let (r, w) = stream.into_split();
                    Ok::<(Reader, Writer), io::Error>((Box::new(r), Box::new(w)))
                }
                Address::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    let (r, w) = stream.into_split();
                    Ok::<(Reader, Writer), io::Error>((Box::new(r), Box::new(w)))
                }
            }
        };
        match tokio::time::timeout(self.settings.connect_timeout, connecting).await {
            Ok(Ok(halves)) => Ok(halves),
            Ok(Err(error)) => Err(ConnectError::Io(error)),
            Err(_) => Err(ConnectError::Timeout(self.settings.connect_timeout)),
        }
    }

    /// Asks the server whether it multiplexes (GET_VALUES, §4.1), on a connection of its
    /// own that is closed afterwards (php-fpm closes it itself). A server that does not
    /// answer within the connect timeout, or answers no, gets one request per connection.
    async fn probe(&self) -> Result<u16, ConnectError> {
        if !self.settings.multiplex {
            return Ok(1);
        }
        let (mut reader, mut writer) = self.connect().await?;
        let asking = async {
            let mut pairs = BytesMut::new();
            for name in [MAX_CONNS, MAX_REQS, MPXS_CONNS] {
                record::encode_pair(&mut pairs, name, b"");
            }
            let mut out = BytesMut::new();
            record::encode_record(&mut out, RecordType::GetValues, NULL_REQUEST_ID, &pairs);
            writer.write_all(&out).await?;
            writer.flush().await?;
            let mut buf = BytesMut::with_capacity(1024);
            let mut decoder = Decoder::new();
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) if record.kind == RecordType::GetValuesResult => {
                        return Ok(Some(record.content));
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(_) => return Ok(None),
                }
                if reader.read_buf(&mut buf).await? == 0 {
                    return Ok(None);
                }
            }
        };
        let answer: Result<Option<Bytes>, io::Error> =
            tokio::time::timeout(self.settings.connect_timeout, asking)
                .await
                .unwrap_or(Ok(None));
        let mut mpxs = false;
        let mut max_reqs = None;
        if let Ok(Some(content)) = answer {
            for (name, value) in record::decode_pairs(&content).flatten() {
                let number = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if name.as_ref() == MPXS_CONNS {
                    mpxs = number.is_some_and(|n| n > 0);
                } else if name.as_ref() == MAX_REQS {
                    max_reqs = number;
                }
            }
        }
        let capacity = if mpxs {
            let limit = self.settings.max_requests as u64;
            max_reqs
                .unwrap_or(limit)
                .min(limit)
                .clamp(1, u64::from(u16::MAX)) as u16
        } else {
            1
        };
        tracing::debug!(
            target: "towergate::fastcgi::client",
            "{}: {capacity} request(s) per connection",
            self.address
        );
        Ok(capacity)
    }

    /// A slot for one request on a kept-alive connection with room, or on a new one.
    pub(super) async fn checkout(self: &Arc<Self>) -> Result<Exchange, ConnectError> {
        let capacity = *self.capacity.get_or_try_init(|| self.probe()).await?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        if let Some(exchange) = self.find(serial) {
            return Ok(exchange);
        }
        // Multiplexed connections are opened one at a time: the requests waiting meanwhile
        // share the new one rather than each opening their own.
        let _connecting = match capacity {
            1 => None,
            _ => {
                let guard = self.connecting.lock().await;
                if let Some(exchange) = self.find(serial) {
                    return Ok(exchange);
                }
                Some(guard)
            }
        };
        let (reader, writer) = self.connect().await?;
        let (closed, _) = watch::channel(false);
        let now = Instant::now();
        // One request at a time: the request reads the connection itself.
        let (parked, reader) = match capacity {
            1 => (Some(Direct::new(reader)), None),
            _ => (None, Some(reader)),
        };
        let conn = Arc::new(Conn {
            response_records: self.settings.response_records.max(1),
            writer: tokio::sync::Mutex::new(writer),
            state: Mutex::new(State {
                slots: HashMap::default(),
                served: 0,
                answered: false,
                next_id: 0,
                reusable: true,
                closed: false,
                parked,
                reading: None,
                idle_since: now,
            }),
            closed,
            capacity,
            opened: now,
            pool: Arc::downgrade(self),
        });
        // Registered before anyone else can see it: the slot is this request's.
        let exchange = conn.register(serial);
        let reap = {
            let mut conns = lock(&self.conns);
            conns.push(conn.clone());
            reader.is_none() && !self.reaping.swap(true, Ordering::AcqRel)
        };
        match reader {
            Some(reader) => {
                tokio::spawn(drive(
                    conn.clone(),
                    reader,
                    self.settings.idle_timeout,
                    self.settings.stdout_timeout,
                ));
            }
            None => {
                tokio::spawn(watch_untaken(Arc::downgrade(&conn)));
                if reap {
                    tokio::spawn(reap_idle(Arc::downgrade(self), self.settings.idle_timeout));
                }
            }
        }
        exchange.map_err(|_| ConnectError::Io(io::Error::other("the new connection is not usable")))
    }

    /// Whether another connection carries a request but has had no answer at all for
    /// [`UNTAKEN`] since it opened: a connection the server has not taken up. (A connection
    /// opened a moment ago is not starving yet: counting it closed a kept connection each
    /// time a new one opened, and each of those closes opened another, for good.)
    fn starving(&self, except: &Conn) -> bool {
        lock(&self.conns).iter().any(|conn| {
            if std::ptr::eq(Arc::as_ptr(conn), except) {
                return false;
            }
            let waiting = {
                let state = lock(&conn.state);
                !state.closed && !state.answered && !state.slots.is_empty()
            };
            waiting && conn.opened.elapsed() >= UNTAKEN
        })
    }

    /// Closes one idle connection other than `waiting`, if there is one: php-fpm holds a
    /// worker for each connection kept, so that frees one for a connection it has not
    /// taken up.
    fn free_a_worker(&self, waiting: &Conn) -> bool {
        let idle = lock(&self.conns)
            .iter()
            .find(|conn| {
                !std::ptr::eq(Arc::as_ptr(conn), waiting)
                    && conn.capacity == 1
                    && lock(&conn.state).slots.is_empty()
            })
            .cloned();
        if let Some(idle) = idle {
            tracing::debug!(
                target: "towergate::fastcgi::client",
                "{}: a new connection waits unanswered: closing an idle one",
                self.address
            );
            idle.close();
            return true;
        }
        false
    }

    fn find(&self, serial: u64) -> Option<Exchange> {
        let mut dead = Vec::new();
        let found = lock(&self.conns)
            .iter()
            .find_map(|conn| match conn.register(serial) {
                Ok(exchange) => Some(exchange),
                Err(Taken::Busy) => None,
                Err(Taken::Dead) => {
                    dead.push(conn.clone());
                    None
                }
            });
        for conn in dead {
            conn.close();
        }
        found
    }

    fn remove(&self, conn: &Conn) {
        lock(&self.conns).retain(|c| !std::ptr::eq(Arc::as_ptr(c), conn));
    }
}

/// One request's place on a connection.
#[derive(Debug)]
struct Slot {
    serial: u64,
    /// The request's events (multiplexed connections).
    events: Option<mpsc::Sender<Event>>,
    ended: bool,
    stdin_done: bool,
    abort: Abort,
    /// Set when the request was aborted because its reader left its buffer full: its
    /// response body says so (multiplexed connections).
    overflowed: Option<Arc<AtomicBool>>,
}

/// Where a request's ABORT_REQUEST is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    None,
    /// Being written: the id stays taken until it is out, so that it can never reach the
    /// server after a new request with the same id.
    Writing,
    Sent,
}

impl Slot {
    /// Whether the id is free again: END_REQUEST came, STDIN is done, and no ABORT_REQUEST
    /// for it is still to be written.
    fn is_free(&self) -> bool {
        self.ended && self.stdin_done && self.abort != Abort::Writing
    }
}

#[derive(Debug)]
struct State {
    slots: HashMap<u16, Slot, BuildIdHasher>,
    /// Requests that ended on this connection.
    served: u64,
    /// Whether any answer (STDOUT, END_REQUEST) came on this connection.
    answered: bool,
    /// Where the search for a free request id starts (0-based).
    next_id: u16,
    /// False once a request ended before its STDIN was all sent (the server may still read
    /// its leftover records), or to free a worker: the connection takes no new request.
    reusable: bool,
    closed: bool,
    /// The reading end of a connection that carries one request at a time, while no
    /// request reads it.
    parked: Option<Direct>,
    /// The task of the request reading that connection, while it waits for bytes: woken
    /// when the connection closes.
    reading: Option<Waker>,
    /// Since when the connection carries no request (connections read by their requests).
    idle_since: Instant,
}

/// Why a connection takes no request now.
#[derive(Debug)]
enum Taken {
    /// Full, closed or spent.
    Busy,
    /// The server closed it (or wrote to it unasked) while it was idle: to be closed.
    Dead,
}

/// The reading end of a connection that its requests read themselves, with what was read
/// of it and not yet decoded.
struct Direct {
    reader: Reader,
    buf: BytesMut,
    decoder: Decoder,
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Direct {
    fn new(reader: Reader) -> Self {
        Direct {
            reader,
            buf: BytesMut::with_capacity(16 * 1024),
            decoder: Decoder::new(),
        }
    }

    /// Reads what the connection has now, into the buffer.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        pin!(self.reader.read_buf(&mut self.buf)).poll(cx)
    }

    /// Whether an idle connection is still open and silent, checked without waiting (no
    /// system call unless the connection became readable: the server closed it, as php-fpm
    /// does when it recycles a worker).
    fn alive(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.poll_read(&mut cx), Poll::Pending)
    }
}

/// One connection.
pub(super) struct Conn {
    writer: tokio::sync::Mutex<Writer>,
    state: Mutex<State>,
    /// True once the connection is closed: its driver and writers stop.
    closed: watch::Sender<bool>,
    capacity: u16,
    /// When the connection was opened (to tell a connection the server has not taken up
    /// from one that is just new).
    opened: Instant,
    /// The size of each request's buffer, in records.
    response_records: usize,
    pool: Weak<Pool>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("state", &*lock(&self.state))
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Conn {
    fn register(self: &Arc<Self>, serial: u64) -> Result<Exchange, Taken> {
        let mut state = lock(&self.state);
        if state.closed || !state.reusable || state.slots.len() >= usize::from(self.capacity) {
            return Err(Taken::Busy);
        }
        let events = if self.capacity == 1 {
            let mut direct = state.parked.take().ok_or(Taken::Busy)?;
            if !direct.alive() {
                return Err(Taken::Dead);
            }
            Events::Direct(Some(direct))
        } else {
            Events::Channel(None)
        };
        // Ids go round (1, 2, …, capacity, 1, …) rather than the lowest free one: an id
        // is not sent again right after its END_REQUEST, while the server may still be
        // tidying it up.
        let capacity = self.capacity;
        let start = state.next_id;
        let Some(id) = (0..capacity)
            .map(|i| ((u32::from(start) + u32::from(i)) % u32::from(capacity)) as u16 + 1)
            .find(|id| !state.slots.contains_key(id))
        else {
            if let Events::Direct(direct) = events {
                state.parked = direct;
            }
            return Err(Taken::Busy);
        };
        state.next_id = id % capacity;
        let (sender, events, overflowed) = match events {
            Events::Channel(_) => {
                let (tx, rx) = mpsc::channel(self.response_records);
                let overflowed = Arc::new(AtomicBool::new(false));
                (Some(tx), Events::Channel(Some(rx)), Some(overflowed))
            }
            direct => (None, direct, None),
        };
        state.slots.insert(
            id,
            Slot {
                serial,
                events: sender,
                ended: false,
                stdin_done: false,
                abort: Abort::None,
                overflowed: overflowed.clone(),
            },
        );
        Ok(Exchange {
            conn: self.clone(),
            id,
            serial,
            reused: state.served > 0,
            events,
            ended: false,
            answered: false,
            overflowed,
        })
    }

    /// Writes `bytes` (whole records), unless the connection is closed.
    pub(super) async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_then(bytes, || {}).await
    }

    /// Writes the last records of request `id` (`serial`)'s STDIN: the request counts as
    /// sent whole from the moment the writer is held, so that its END_REQUEST, which may be
    /// read before this task runs again, frees its slot at once; the next request's records
    /// can only follow these.
    pub(super) async fn write_last(&self, bytes: &[u8], id: u16, serial: u64) -> io::Result<()> {
        self.write_then(bytes, || self.stdin_done(id, serial, true))
            .await
    }

    async fn write_then(&self, bytes: &[u8], held: impl FnOnce()) -> io::Result<()> {
        let mut closed = self.closed.subscribe();
        if *closed.borrow() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let writing = async {
            let mut writer = self.writer.lock().await;
            held();
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        tokio::select! {
            // The write first: most are done at once, with no watch on the connection.
            biased;
            result = writing => {
                if result.is_err() {
                    self.close();
                }
                result
            }
            _ = closed.wait_for(|c| *c) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// A future that completes when the connection closes.
    pub(super) fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Whether the request `id` (`serial`) ended: its STDIN need not be sent on.
    pub(super) fn ended(&self, id: u16, serial: u64) -> bool {
        let state = lock(&self.state);
        state
            .slots
            .get(&id)
            .is_none_or(|s| s.serial != serial || s.ended)
    }

    /// The request's STDIN was all sent (`complete`), or its sending stopped. A request
    /// that ended with its STDIN cut short leaves the connection unusable: the server may
    /// still read what was sent of it.
    pub(super) fn stdin_done(&self, id: u16, serial: u64, complete: bool) {
        // Asked only about a request that ended already (most STDIN streams end first): it
        // looks at every connection of the pool.
        let ended = lock(&self.state).slots.get(&id).is_some_and(|s| s.ended);
        let starving = ended && complete && self.starving();
        let mut state = lock(&self.state);
        if let Some(slot) = state.slots.get_mut(&id).filter(|s| s.serial == serial) {
            slot.stdin_done = true;
            let (ended, free) = (slot.ended, slot.is_free());
            if ended && (!complete || starving) {
                state.reusable = false;
            }
            if free {
                state.slots.remove(&id);
            }
        }
        self.close_if_spent(state);
    }

    /// Closes the connection: the driver stops, every waiting request sees the end of its
    /// events, and the pool forgets it.
    pub(super) fn close(&self) {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            state.closed = true;
            state.slots.clear();
            state.parked = None;
            if let Some(reading) = state.reading.take() {
                reading.wake();
            }
        }
        self.closed.send_replace(true);
        if let Some(pool) = self.pool.upgrade() {
            pool.remove(self);
        }
    }

    /// Closes a connection that will take no new request once its last one is done.
    fn close_if_spent(&self, state: MutexGuard<'_, State>) {
        let spent = !state.reusable && state.slots.is_empty() && !state.closed;
        drop(state);
        if spent {
            self.close();
        }
    }

    /// Hands `record` to its request; an event that finds its request's buffer full comes
    /// back, to wait for room.
    fn dispatch(&self, record: Record) -> Option<Pending> {
        let id = record.request_id;
        let (events, serial, event) = match record.kind {
            RecordType::Stdout if record.content.is_empty() => return None,
            RecordType::Stdout => {
                let mut state = lock(&self.state);
                state.answered = true;
                let slot = state.slots.get(&id)?;
                // A reader that went away abandoned its request: the rest is dropped.
                let events = slot.events.clone()?;
                (events, slot.serial, Event::Stdout(record.content))
            }
            RecordType::Stderr => {
                log_stderr(&record.content);
                return None;
            }
            RecordType::EndRequest => {
                let Some(end) = end_request(&record.content) else {
                    self.close();
                    return None;
                };
                let (events, serial) = self.end(id, None)?;
                (events?, serial, Event::End(end))
            }
            _ => return None,
        };
        match events.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(event)) => Some(Pending {
                id,
                serial,
                events,
                event,
            }),
        }
    }

    /// END_REQUEST came for request `id`: its slot is freed (or will be once its STDIN is
    /// sent), and a connection read by its requests gets its reading end `parked` back
    /// first, for the next one. Gives the request's events and serial.
    fn end(&self, id: u16, parked: Option<Direct>) -> Option<(Option<mpsc::Sender<Event>>, u64)> {
        let starving = self.starving();
        let mut state = lock(&self.state);
        state.answered = true;
        if parked.is_some() && !state.closed {
            state.parked = parked;
            state.reading = None;
            state.idle_since = Instant::now();
        }
        let slot = state.slots.get_mut(&id)?;
        slot.ended = true;
        let events = slot.events.take();
        let serial = slot.serial;
        // Otherwise the STDIN sender (or the ABORT_REQUEST's writer) frees the slot when it
        // is done (its last write may have returned a moment ago).
        let free = slot.is_free();
        state.served += 1;
        if starving {
            state.reusable = false;
        }
        if free {
            state.slots.remove(&id);
        }
        self.close_if_spent(state);
        Some((events, serial))
    }

    /// How long a connection read by its requests has been idle (zero while in use), and
    /// whether it is still open; closed ones need no reaping.
    fn idle_for(&self) -> Option<Duration> {
        let mut state = lock(&self.state);
        if state.closed {
            return None;
        }
        if !state.slots.is_empty() {
            return Some(Duration::ZERO);
        }
        let since = state.idle_since;
        match state.parked.as_mut().map(Direct::alive) {
            // Closed by the server while idle: gone at once.
            Some(false) => Some(Duration::MAX),
            Some(true) => Some(since.elapsed()),
            None => Some(Duration::ZERO),
        }
    }

    /// The reader of request `id` (`serial`) left its buffer full for `waited` while other
    /// requests share the connection: the request is aborted (§5.4), its body fails, and
    /// what still comes for it is dropped, so that the others are not held up any longer.
    fn overflow(self: &Arc<Self>, id: u16, serial: u64, waited: Duration) {
        let mut state = lock(&self.state);
        let Some(slot) = state.slots.get_mut(&id).filter(|s| s.serial == serial) else {
            return;
        };
        slot.events = None;
        if let Some(overflowed) = &slot.overflowed {
            overflowed.store(true, Ordering::Release);
        }
        let abort = !slot.ended && slot.abort == Abort::None;
        drop(state);
        log(format_args!(
            "FastCGI client: request {id}'s response was not read for {waited:?} while its \
             buffer was full: aborting it so that the other requests on its connection go on"
        ));
        if abort {
            self.send_abort(id, serial);
        }
    }

    /// Writes ABORT_REQUEST for request `id` (`serial`) behind the records already queued;
    /// the id stays taken until it is out.
    fn send_abort(self: &Arc<Self>, id: u16, serial: u64) {
        {
            let mut state = lock(&self.state);
            let Some(slot) = state.slots.get_mut(&id).filter(|s| s.serial == serial) else {
                return;
            };
            if slot.abort != Abort::None {
                return;
            }
            slot.abort = Abort::Writing;
        }
        let conn = self.clone();
        tokio::spawn(async move {
            let mut abort = BytesMut::new();
            record::encode_record(&mut abort, RecordType::AbortRequest, id, &[]);
            let _ = conn.write(&abort).await;
            let mut state = lock(&conn.state);
            if let Some(slot) = state.slots.get_mut(&id).filter(|s| s.serial == serial) {
                slot.abort = Abort::Sent;
                if slot.is_free() {
                    state.slots.remove(&id);
                }
            }
            conn.close_if_spent(state);
        });
    }

    /// The request `id` (`serial`) was given up before its END_REQUEST: on a multiplexed
    /// connection it is aborted (§5.4) and its records discarded until it ends; otherwise
    /// the connection closes (the server may still be writing its response).
    fn abandon(self: &Arc<Self>, id: u16, serial: u64) {
        let mut state = lock(&self.state);
        let Some(slot) = state.slots.get_mut(&id).filter(|s| s.serial == serial) else {
            return;
        };
        if slot.ended {
            return;
        }
        slot.events = None;
        drop(state);
        if self.capacity == 1 {
            self.close();
            return;
        }
        self.send_abort(id, serial);
    }

    /// Whether this connection, once its request is done, is to close rather than be kept:
    /// a server without multiplexing (php-fpm) gives each connection a worker of its own
    /// until the connection closes, so while a new connection of the pool waits unanswered
    /// (in the listen queue, every worker held by a kept connection), closing this one
    /// frees a worker for it.
    fn starving(&self) -> bool {
        self.capacity == 1 && self.pool.upgrade().is_some_and(|pool| pool.starving(self))
    }

    fn is_idle(&self) -> bool {
        lock(&self.state).slots.is_empty()
    }
}

/// An END_REQUEST record's body (§5.5); one of another size is logged, and its connection
/// is to be closed.
fn end_request(content: &[u8]) -> Option<EndRequest> {
    let end = EndRequest::parse(content).ok();
    if end.is_none() {
        tracing::warn!(
            target: "towergate::fastcgi::client",
            "an END_REQUEST record of {} bytes, not 8: closing the connection",
            content.len()
        );
    }
    end
}

/// Logs what a FastCGI application wrote to its STDERR stream (§5.3), line by line: it is
/// the application's log, not a failure.
fn log_stderr(content: &[u8]) {
    for line in content.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = String::from_utf8_lossy(line);
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(target: "towergate::fastcgi::stderr", "{}", line.trim_end());
        } else {
            eprintln!("towergate: FastCGI stderr: {}", line.trim_end());
        }
    }
}

/// An event waiting for room in its request's buffer: the driver reads nothing more
/// meanwhile.
struct Pending {
    id: u16,
    serial: u64,
    events: mpsc::Sender<Event>,
    event: Event,
}

/// Reads `conn` until it closes: records go to their requests; an idle connection is
/// closed after `idle`. A request whose buffer stays full for `stdout_timeout` on a
/// multiplexed connection is aborted (a connection that carries one request waits for its
/// reader as long as it takes: nobody else is held up).
async fn drive(conn: Arc<Conn>, mut reader: Reader, idle: Duration, stdout_timeout: Duration) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut decoder = Decoder::new();
    let mut closed = conn.closed();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(record)) => {
                let Some(pending) = conn.dispatch(record) else {
                    continue;
                };
                let Pending {
                    id,
                    serial,
                    events,
                    event,
                } = pending;
                let deadline = (conn.capacity > 1).then(|| Instant::now() + stdout_timeout);
                let room = async {
                    match deadline {
                        Some(deadline) => tokio::time::timeout_at(deadline, events.reserve())
                            .await
                            .map_err(drop),
                        None => Ok(events.reserve().await),
                    }
                };
                tokio::select! {
                    room = room => match room {
                        Ok(Ok(permit)) => permit.send(event),
                        // The reader went away: its request was abandoned.
                        Ok(Err(_)) => {}
                        Err(()) => conn.overflow(id, serial, stdout_timeout),
                    },
                    _ = closed.wait_for(|c| *c) => break,
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(
                    target: "towergate::fastcgi::client",
                    "the FastCGI server sent an invalid record ({error}): closing the connection"
                );
                break;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        // Nothing read for `idle` and no request in flight: the connection is closed (one
        // that has just become idle may go early: the next request opens another).
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = closed.wait_for(|c| *c) => break,
            () = tokio::time::sleep(idle) => {
                if conn.is_idle() {
                    break;
                }
            }
        }
    }
    conn.close();
}

/// Watches a new connection that carries one request at a time: once it has waited
/// unanswered for [`UNTAKEN`] (php-fpm has not taken it up: every worker is held by a kept
/// connection), one idle connection is closed to free a worker, as soon as there is one
/// (those in use close when their request ends, see `Pool::starving`). One each: php-fpm's
/// listen queue is first come, first served, and a slow first request costs the pool one
/// connection at most.
async fn watch_untaken(conn: Weak<Conn>) {
    loop {
        tokio::time::sleep(UNTAKEN).await;
        let Some(conn) = conn.upgrade() else { return };
        let waiting = {
            let state = lock(&conn.state);
            !state.closed && !state.answered && !state.slots.is_empty()
        };
        let Some(pool) = conn.pool.upgrade().filter(|_| waiting) else {
            return;
        };
        if pool.free_a_worker(&conn) {
            return;
        }
    }
}

/// Closes the connections read by their requests (no driver watches them) once they have
/// been idle for `idle`, or at once when the server closed them; runs while the pool has
/// connections.
async fn reap_idle(pool: Weak<Pool>, idle: Duration) {
    let period = (idle / 2).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let conns = {
            let conns = lock(&pool.conns);
            if conns.is_empty() {
                // Under the lock that a new connection is added under: it starts another.
                pool.reaping.store(false, Ordering::Release);
                return;
            }
            conns.clone()
        };
        for conn in conns {
            if conn.capacity == 1 && conn.idle_for().is_some_and(|i| i >= idle) {
                conn.close();
            }
        }
    }
}

/// Where a request's records come from.
#[derive(Debug)]
enum Events {
    /// From the driver of a multiplexed connection (`None` only while registering).
    Channel(Option<mpsc::Receiver<Event>>),
    /// Read by the request itself, until its END_REQUEST hands the reading end back.
    Direct(Option<Direct>),
}

/// One request's place on a connection: its id and the events of its response. Dropping
/// it before the END_REQUEST abandons the request.
#[derive(Debug)]
pub(super) struct Exchange {
    pub(super) conn: Arc<Conn>,
    pub(super) id: u16,
    pub(super) serial: u64,
    /// The connection served requests before: a close before any answer may be the server
    /// recycling it, and the request can be retried.
    pub(super) reused: bool,
    events: Events,
    ended: bool,
    /// Whether the connection was told of an answer (connections read by their requests).
    answered: bool,
    overflowed: Option<Arc<AtomicBool>>,
}

impl Exchange {
    /// Whether the request was aborted because its reader left its buffer full.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
            .as_ref()
            .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// The next event; `None` when the connection closed first.
    pub(super) async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls the next event (for the response body).
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let event = match &mut self.events {
            Events::Channel(Some(events)) => std::task::ready!(events.poll_recv(cx)),
            Events::Channel(None) => None,
            Events::Direct(_) => std::task::ready!(self.poll_direct(cx)),
        };
        if matches!(event, Some(Event::End(_))) {
            self.ended = true;
        }
        Poll::Ready(event)
    }

    /// Reads the connection for the next event of this request (the only one on it): STDERR
    /// is logged, records of other ids and management records are dropped, and at
    /// END_REQUEST the reading end goes back to the connection.
    fn poll_direct(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let Events::Direct(slot) = &mut self.events else {
            return Poll::Ready(None);
        };
        let Some(direct) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match direct.decoder.decode(&mut direct.buf) {
                Ok(Some(record)) if record.request_id != self.id => continue,
                Ok(Some(record)) => match record.kind {
                    RecordType::Stdout if record.content.is_empty() => continue,
                    RecordType::Stdout => {
                        if !self.answered {
                            self.answered = true;
                            lock(&self.conn.state).answered = true;
                        }
                        return Poll::Ready(Some(Event::Stdout(record.content)));
                    }
                    RecordType::Stderr => {
                        log_stderr(&record.content);
                        continue;
                    }
                    RecordType::EndRequest => {
                        let Some(end) = end_request(&record.content) else {
                            *slot = None;
                            self.conn.close();
                            return Poll::Ready(None);
                        };
                        // Handed back before the slot is freed: the next request finds it.
                        self.conn.end(self.id, slot.take());
                        return Poll::Ready(Some(Event::End(end)));
                    }
                    _ => continue,
                },
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(
                        target: "towergate::fastcgi::client",
                        "the FastCGI server sent an invalid record ({error}): closing the connection"
                    );
                    *slot = None;
                    self.conn.close();
                    return Poll::Ready(None);
                }
            }
            match direct.poll_read(cx) {
                Poll::Ready(Ok(0) | Err(_)) => {
                    *slot = None;
                    self.conn.close();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => {
                    // Closed from elsewhere (a failed write of the request) wakes it.
                    let mut state = lock(&self.conn.state);
                    if state.closed {
                        return Poll::Ready(None);
                    }
                    match &state.reading {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => state.reading = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.abandon(self.id, self.serial);
        }
    }
}
