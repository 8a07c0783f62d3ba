//! One connection from the web server: its records read and dispatched, its requests run
//! as tasks, their output written by one writer task.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, timeout, timeout_at};
use tower_service::Service;

use super::body::{RequestBody, StdinState};
use super::record::{
    self, BeginRequest, BuildIdHasher, Decoder, EndRequest, MAX_CONNS, MAX_REQS, MPXS_CONNS,
    NULL_REQUEST_ID, ParamsBuffer, ProtocolStatus, Record, RecordType, Role,
};
use super::respond as respond_fcgi;
use super::{Builder, Role as RequestRole};
use crate::error_response::ErrorResponse;
use crate::panic::{catch_unwind, log};
use crate::respond;
use crate::{BoxError, Environ};

/// How much is read from the connection at a time.
const READ_SIZE: usize = 64 * 1024;
/// Output buffers queued for the writer task, across the connection's requests: each at
/// most one record (64 KiB), so at most 1 MiB of output waits per connection.
const WRITE_QUEUE: usize = 16;

/// What a request task reports when it ends.
struct Done {
    id: u16,
    generation: u64,
}

/// A request between its BEGIN_REQUEST and its END_REQUEST.
struct Active {
    generation: u64,
    /// Set by the request's task just before its END_REQUEST goes out: from then on the web
    /// server may reuse the id (FastCGI §3.3) before the task's end is seen here.
    ended: Arc<AtomicBool>,
    keep_conn: bool,
    role: Role,
    phase: Phase,
}

enum Phase {
    /// Collecting PARAMS.
    Params(ParamsBuffer),
    /// Running: STDIN goes to the body (`None` once the body needs no more).
    Running {
        stdin: Option<mpsc::Sender<Bytes>>,
        state: Arc<StdinState>,
        task: AbortHandle,
    },
}

/// STDIN content waiting for room in its request's buffer: the connection reads nothing
/// more until it has room, or until the deadline ends the request.
struct Pending {
    id: u16,
    generation: u64,
    tx: mpsc::Sender<Bytes>,
    content: Bytes,
    deadline: Instant,
}

/// Serves one connection until the web server closes it, a request without FCGI_KEEP_CONN
/// ends, a protocol error, or `shutdown` (then in-flight requests finish first).
pub(super) async fn serve<R, W, S, B, E>(
    mut reader: R,
    writer: W,
    service: S,
    options: Arc<Builder<E>>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: ErrorResponse + Send + Sync + 'static,
{
    let (out, out_rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let mut write_task = tokio::spawn(write_loop(writer, out_rx, options.write_timeout));
    let mut conn = Connection {
        service,
        options,
        out,
        requests: HashMap::default(),
        tasks: JoinSet::new(),
        generation: 0,
        reading: true,
        shutting_down: *shutdown.borrow(),
    };
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut decoder = Decoder::new();
    let mut pending: Option<Pending> = None;
    loop {
        // Dispatch every whole record already read, unless one waits for room.
        while conn.reading && pending.is_none() {
            match decoder.decode(&mut buf) {
                Ok(Some(record)) => pending = conn.dispatch(record).await,
                Ok(None) => break,
                Err(e) => {
                    log(format_args!("FastCGI: {e}: closing the connection"));
                    conn.close_now();
                }
            }
        }
        if conn.shutting_down && conn.requests.is_empty() {
            conn.reading = false;
        }
        if !conn.reading && conn.tasks.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(done) = conn.tasks.join_next() => {
                if let Ok(done) = done {
                    conn.finished(done);
                }
            }
            // The writer ends early only when the connection failed.
            _ = &mut write_task => {
                conn.close_now();
                // Cancelled requests are dropped with the connection.
                return;
            }
            sent = {
                let waiting = pending.as_ref().map(|p| (p.tx.clone(), p.deadline));
                async move {
                    match waiting {
                        Some((tx, deadline)) => timeout_at(deadline, tx.reserve_owned()).await,
                        None => std::future::pending().await,
                    }
                }
            } => {
                if let Some(p) = pending.take() {
                    match sent {
                        Ok(Ok(permit)) => drop(permit.send(p.content)),
                        // The body needs no more.
                        Ok(Err(_)) => conn.stop_stdin(p.id),
                        Err(_) => {
                            log(format_args!(
                                "FastCGI: request {} did not read its body for {:?}: ending it",
                                p.id, conn.options.stdin_timeout
                            ));
                            conn.abort(p.id, p.generation).await;
                        }
                    }
                }
            }
            read = reader.read_buf(&mut buf), if conn.reading && pending.is_none() => {
                match read {
                    Ok(0) => {
                        if let Err(e) = decoder.decode_eof(&mut buf) {
                            log(format_args!("FastCGI: {e}: closing the connection"));
                        } else if conn.unanswered() > 0 {
                            log(format_args!(
                                "FastCGI: the web server closed the connection with {} requests unanswered",
                                conn.unanswered()
                            ));
                        }
                        conn.close_now();
                    }
                    Ok(_) => {
                        if buf.capacity() - buf.len() < HEADER_ROOM {
                            buf.reserve(READ_SIZE);
                        }
                    }
                    Err(e) => {
                        log(format_args!("FastCGI: reading the connection failed: {e}"));
                        conn.close_now();
                    }
                }
            }
            _ = shutdown.changed(), if !conn.shutting_down => {
                conn.shutting_down = true;
            }
        }
    }
    drop(pending);
    drop(conn);
    // The writer ends once every sender is gone, after writing what they queued.
    let _ = write_task.await;
}

/// The least room left for a read before the buffer grows.
const HEADER_ROOM: usize = 4 * 1024;

struct Connection<S, E> {
    service: S,
    options: Arc<Builder<E>>,
    out: mpsc::Sender<Bytes>,
    requests: HashMap<u16, Active, BuildIdHasher>,
    tasks: JoinSet<Done>,
    generation: u64,
    reading: bool,
    shutting_down: bool,
}

impl<S, B, E> Connection<S, E>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: ErrorResponse + Send + Sync + 'static,
{
    /// Handles one record; STDIN that finds its request's buffer full comes back to wait.
    async fn dispatch(&mut self, record: Record) -> Option<Pending> {
        let id = record.request_id;
        match record.kind {
            RecordType::GetValues if record.is_management() => {
                self.get_values(&record.content).await;
            }
            RecordType::Other(kind) if record.is_management() => {
                let mut buf = BytesMut::with_capacity(16);
                record::encode_unknown_type(&mut buf, kind);
                self.send(buf.freeze()).await;
            }
            RecordType::BeginRequest if id != NULL_REQUEST_ID => {
                self.begin(id, &record.content).await;
            }
            // An ABORT_REQUEST that crossed the request's END_REQUEST on the wire is
            // ignored: the request is over, and a second END_REQUEST would end the next
            // request the web server starts with this id (FastCGI §3.3, §5.4).
            RecordType::AbortRequest if id != NULL_REQUEST_ID => match self.requests.get(&id) {
                Some(active) if !active.ended.load(Ordering::Acquire) => {
                    let generation = active.generation;
                    self.abort(id, generation).await;
                }
                _ => tracing::debug!(id, "ABORT_REQUEST for a request already ended"),
            },
            RecordType::Params if id != NULL_REQUEST_ID => self.params(id, record.content).await,
            RecordType::Stdin if id != NULL_REQUEST_ID => return self.stdin(id, record.content),
            // The Filter role's second stream: Filter is refused at BEGIN_REQUEST.
            RecordType::Data if self.requests.contains_key(&id) => {}
            kind => log(format_args!(
                "FastCGI: ignoring a {kind:?} record for request {id}, which the web server does not send"
            )),
        }
        None
    }

    async fn begin(&mut self, id: u16, content: &[u8]) {
        let begin = match BeginRequest::parse(content) {
            Ok(begin) => begin,
            Err(e) => {
                log(format_args!("FastCGI: {e}: closing the connection"));
                self.close_now();
                return;
            }
        };
        if let Some(active) = self.requests.get(&id) {
            if !active.ended.load(Ordering::Acquire) {
                log(format_args!(
                    "FastCGI: BEGIN_REQUEST for request {id}, which is in flight: ignored"
                ));
                return;
            }
            self.requests.remove(&id);
        }
        let options = &self.options;
        let refusal = if !matches!(begin.role, Role::Responder | Role::Authorizer) {
            log(format_args!(
                "FastCGI: request {id} has role {:?}, which this application does not play",
                begin.role
            ));
            Some(ProtocolStatus::UnknownRole)
        } else if self.shutting_down {
            Some(ProtocolStatus::Overloaded)
        } else if self.unanswered() >= options.max_requests {
            log(format_args!(
                "FastCGI: request {id} is over the limit of {} requests on one connection",
                options.max_requests
            ));
            Some(if options.max_requests == 1 {
                ProtocolStatus::CantMpxConn
            } else {
                ProtocolStatus::Overloaded
            })
        } else {
            None
        };
        if let Some(status) = refusal {
            self.end(id, 0, status).await;
            if !begin.keep_conn {
                self.reading = false;
            }
            return;
        }
        self.generation += 1;
        self.requests.insert(
            id,
            Active {
                generation: self.generation,
                ended: Arc::default(),
                keep_conn: begin.keep_conn,
                role: begin.role,
                phase: Phase::Params(ParamsBuffer::new(options.max_params)),
            },
        );
    }

    async fn params(&mut self, id: u16, content: Bytes) {
        let Some(active) = self.requests.get_mut(&id) else {
            tracing::debug!(id, "FastCGI: PARAMS for a request not in flight: ignored");
            return;
        };
        let Phase::Params(params) = &mut active.phase else {
            log(format_args!(
                "FastCGI: PARAMS for request {id} after their end: ignored"
            ));
            return;
        };
        if !content.is_empty() {
            if let Err(e) = params.push(&content) {
                log(format_args!("FastCGI: request {id}: {e}"));
                let generation = active.generation;
                let answer = respond_fcgi::simple(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Request Header Fields Too Large\n",
                    false,
                );
                self.answer(id, generation, answer).await;
            }
            return;
        }
        let Phase::Params(params) =
            std::mem::replace(&mut active.phase, Phase::Params(ParamsBuffer::new(0)))
        else {
            return;
        };
        let generation = active.generation;
        let pairs = params.finish();
        let environ = match environ_from_pairs(&pairs) {
            Ok(environ) => environ,
            Err(e) => {
                log(format_args!("FastCGI: request {id}: {e}"));
                let answer = respond_fcgi::simple(StatusCode::BAD_REQUEST, "Bad Request\n", false);
                self.answer(id, generation, answer).await;
                return;
            }
        };
        self.start(id, environ).await;
    }

    /// Builds the request from its environ and starts its task.
    async fn start(&mut self, id: u16, mut environ: Environ) {
        let Some(active) = self.requests.get(&id) else {
            return;
        };
        let generation = active.generation;
        let role = active.role;
        let ended = active.ended.clone();
        let head_only = environ.get("REQUEST_METHOD") == Some(b"HEAD");
        environ.set_run_once(false);
        environ.set_multithread(true);
        environ.set_multiprocess(false);
        // RFC 3875 §4.1.2: exactly CONTENT_LENGTH bytes; none (Apache's chunked bodies):
        // the STDIN stream to its end; empty (nginx on GET): no body. The Authorizer role
        // has no STDIN stream (FastCGI §6.3).
        let to_end = match environ.get("CONTENT_LENGTH") {
            _ if role == Role::Authorizer => false,
            None => true,
            Some(_) => false,
        };
        let request = match environ.into_request() {
            Ok(request) => request,
            Err(e) => {
                log(format_args!("FastCGI: request {id}: bad request: {e}"));
                let answer =
                    respond_fcgi::simple(StatusCode::BAD_REQUEST, "Bad Request\n", head_only);
                self.answer(id, generation, answer).await;
                return;
            }
        };
        let state = Arc::new(StdinState::default());
        let (mut parts, ()) = request.into_parts();
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        // `into_request` checked CONTENT_LENGTH and made it the header.
        let length = match parts.headers.get(http::header::CONTENT_LENGTH) {
            _ if to_end => None,
            Some(v) => Some(v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(0)),
            None => Some(0),
        };
        parts.extensions.insert(match role {
            Role::Authorizer => RequestRole::Authorizer,
            _ => RequestRole::Responder,
        });
        // STDIN goes to the body through a bounded channel, unless there is no body.
        let (body, stdin) = if length == Some(0) {
            (RequestBody::empty(), None)
        } else {
            let capacity = self
                .options
                .request_buffer
                .div_ceil(record::MAX_CONTENT_LEN);
            let (tx, rx) = mpsc::channel(capacity.max(1));
            (RequestBody::stream(rx, length, state.clone()), Some(tx))
        };
        let request = Request::from_parts(parts, body);
        // Boxed: the task holds a pointer, not the whole future, which the spawn would move.
        let task = self.tasks.spawn(Box::pin(run_request(
            self.service.clone(),
            self.options.clone(),
            request,
            id,
            generation,
            head_only,
            self.out.clone(),
            state.clone(),
            ended,
        )));
        if let Some(active) = self.requests.get_mut(&id) {
            active.phase = Phase::Running { stdin, state, task };
        }
    }

    fn stdin(&mut self, id: u16, content: Bytes) -> Option<Pending> {
        let Some(active) = self.requests.get_mut(&id) else {
            tracing::debug!(id, "FastCGI: STDIN for a request not in flight: ignored");
            return None;
        };
        let Phase::Running { stdin, state, .. } = &mut active.phase else {
            log(format_args!(
                "FastCGI: STDIN for request {id} before the end of its PARAMS: ignored"
            ));
            return None;
        };
        if content.is_empty() {
            state.set_complete();
            *stdin = None;
            return None;
        }
        let tx = stdin.as_ref()?;
        match tx.try_send(content) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(content)) => Some(Pending {
                id,
                generation: active.generation,
                tx: tx.clone(),
                content,
                deadline: Instant::now() + self.options.stdin_timeout,
            }),
            // The body needs no more: the rest is dropped.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *stdin = None;
                None
            }
        }
    }

    fn stop_stdin(&mut self, id: u16) {
        if let Some(Active {
            phase: Phase::Running { stdin, .. },
            ..
        }) = self.requests.get_mut(&id)
        {
            *stdin = None;
        }
    }

    async fn get_values(&mut self, content: &Bytes) {
        let options = &self.options;
        let mut reply = BytesMut::new();
        for pair in record::decode_pairs(content) {
            let Ok((name, _)) = pair else {
                log(format_args!(
                    "FastCGI: a GET_VALUES record that does not decode: ignored"
                ));
                return;
            };
            let value = match &name[..] {
                MAX_CONNS => options.max_connections,
                MAX_REQS => options.max_connections.saturating_mul(options.max_requests),
                MPXS_CONNS => usize::from(options.max_requests > 1),
                // §4.1: names the application does not know are left out.
                _ => continue,
            };
            record::encode_pair(&mut reply, &name, value.to_string().as_bytes());
        }
        let mut buf = BytesMut::with_capacity(reply.len() + 16);
        record::encode_record(
            &mut buf,
            RecordType::GetValuesResult,
            NULL_REQUEST_ID,
            &reply,
        );
        self.send(buf.freeze()).await;
    }

    /// A request task ended (it wrote its END_REQUEST).
    fn finished(&mut self, done: Done) {
        if let Some(active) = self.requests.get(&done.id) {
            if active.generation == done.generation {
                if !active.keep_conn {
                    self.reading = false;
                }
                self.requests.remove(&done.id);
            }
        }
    }

    /// Ends a request now: its task and body cancelled, END_REQUEST written (FastCGI §5.4).
    async fn abort(&mut self, id: u16, generation: u64) {
        let Some(active) = self.requests.get(&id) else {
            return;
        };
        // A request whose END_REQUEST is out is over: it gets no second one.
        if active.generation != generation || active.ended.load(Ordering::Acquire) {
            return;
        }
        let keep_conn = active.keep_conn;
        if let Some(Active {
            phase: Phase::Running { task, .. },
            ..
        }) = self.requests.remove(&id)
        {
            task.abort();
        }
        self.end(id, 1, ProtocolStatus::RequestComplete).await;
        if !keep_conn {
            self.reading = false;
        }
    }

    /// Answers a request with a response of the transport's own (before its task starts).
    async fn answer(&mut self, id: u16, generation: u64, answer: respond::Head) {
        let mut head = Vec::new();
        respond_fcgi::encode(&answer, &mut head);
        let mut buf = BytesMut::with_capacity(head.len() + 48);
        record::encode_stream(&mut buf, RecordType::Stdout, id, &head);
        record::encode_end_of_stream(&mut buf, RecordType::Stdout, id);
        self.send(buf.freeze()).await;
        let keep_conn = self.requests.get(&id).is_none_or(|a| a.keep_conn);
        if self
            .requests
            .get(&id)
            .is_some_and(|a| a.generation == generation)
        {
            self.requests.remove(&id);
        }
        self.end(id, 0, ProtocolStatus::RequestComplete).await;
        if !keep_conn {
            self.reading = false;
        }
    }

    async fn end(&mut self, id: u16, app_status: u32, protocol_status: ProtocolStatus) {
        let mut buf = BytesMut::with_capacity(16);
        EndRequest {
            app_status,
            protocol_status,
        }
        .encode(&mut buf, id);
        self.send(buf.freeze()).await;
    }

    async fn send(&mut self, bytes: Bytes) {
        if self.out.send(bytes).await.is_err() {
            self.close_now();
        }
    }

    /// The requests in flight whose END_REQUEST is not written yet.
    fn unanswered(&self) -> usize {
        self.requests
            .values()
            .filter(|a| !a.ended.load(Ordering::Acquire))
            .count()
    }

    /// Stops reading and cancels every request.
    fn close_now(&mut self) {
        self.reading = false;
        self.requests.clear();
        self.tasks.abort_all();
    }
}

/// The environ of a PARAMS stream: a repeated name keeps its first place and its last value,
/// as [`Environ::from_vars`] has it, in linear time however many pairs the web server sends.
///
/// A web server sends a few dozen distinct names, rarely a repeated one: a 256-bit filter of
/// the names seen sends only a possible repeat to a scan of the environ (at most
/// [`FEW_NAMES`] long), with no table to allocate and no name hashed twice. Past that many
/// names, a hash map keeps the time linear.
pub(super) fn environ_from_pairs(pairs: &Bytes) -> Result<Environ, record::PairsError> {
    let mut environ = Environ::with_capacity(32);
    let mut seen = [0u64; 4];
    for pair in record::decode_pairs(pairs) {
        let (name, value) = pair?;
        let bit = name_bit(&name);
        let (word, mask) = (usize::from(bit / 64), 1u64 << (bit % 64));
        if seen[word] & mask == 0 {
            if environ.len() == FEW_NAMES {
                return environ_from_many_pairs(pairs);
            }
            seen[word] |= mask;
            environ.push_unchecked(name, value);
        } else {
            environ.insert(name, value);
        }
    }
    environ.guess_url_scheme();
    Ok(environ)
}

/// How many distinct names [`environ_from_pairs`] takes before it turns to a hash map.
const FEW_NAMES: usize = 64;

/// The filter bit of a meta-variable name: its length and last eight bytes (where names
/// that share a prefix, `HTTP_` or `SERVER_`, differ), multiplied, then the top eight bits.
fn name_bit(name: &[u8]) -> u8 {
    let tail = match name.last_chunk::<8>() {
        Some(tail) => u64::from_le_bytes(*tail),
        None => name.iter().fold(0, |word, &b| (word << 8) | u64::from(b)),
    };
    ((tail ^ name.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// [`environ_from_pairs`] for a stream of many names.
#[cold]
fn environ_from_many_pairs(pairs: &Bytes) -> Result<Environ, record::PairsError> {
    let mut index: HashMap<Bytes, usize> = HashMap::new();
    let mut vars: Vec<(Bytes, Bytes)> = Vec::new();
    for pair in record::decode_pairs(pairs) {
        let (name, value) = pair?;
        match index.entry(name) {
            Entry::Occupied(seen) => {
                if let Some(slot) = vars.get_mut(*seen.get()) {
                    slot.1 = value;
                }
            }
            Entry::Vacant(new) => {
                let name = new.key().clone();
                new.insert(vars.len());
                vars.push((name, value));
            }
        }
    }
    let mut environ = Environ::with_capacity(vars.len());
    for (name, value) in vars {
        environ.push_unchecked(name, value);
    }
    environ.guess_url_scheme();
    Ok(environ)
}

/// Runs one request: the service called, its response written as STDOUT records, then
/// END_REQUEST.
#[allow(clippy::too_many_arguments)]
async fn run_request<S, B, E>(
    mut service: S,
    options: Arc<Builder<E>>,
    request: Request<RequestBody>,
    id: u16,
    generation: u64,
    head_only: bool,
    out: mpsc::Sender<Bytes>,
    state: Arc<StdinState>,
    ended: Arc<AtomicBool>,
) -> Done
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: ErrorResponse + Send + Sync + 'static,
{
    let done = Done { id, generation };
    // Errors become `BoxError` at once: the service's own error type need not be `Send`.
    let ready = poll_fn(|cx| service.poll_ready(cx).map_err(Into::into));
    let response = match catch_unwind(ready).await.and_then(|ready| ready) {
        Ok(()) => {
            let call = service.call(request);
            catch_unwind(async { call.await.map_err(Into::into) })
                .await
                .and_then(|response| response)
        }
        Err(e) => Err(e),
    };
    let started = match response {
        Ok(response) => respond_fcgi::start(response, head_only).await,
        Err(e) => Err(e),
    };
    let (head, mut rest) = match started {
        // A body shorter than CONTENT_LENGTH makes the request malformed (RFC 3875 §4.2).
        _ if state.is_short() => {
            log(format_args!(
                "FastCGI: request {id}: the request body was malformed: answering 400"
            ));
            let head = respond_fcgi::simple(StatusCode::BAD_REQUEST, "Bad Request\n", head_only);
            (head, None)
        }
        Ok((head, chunks)) => (head, Some(chunks)),
        Err(e) => {
            log(format_args!("FastCGI: request {id}: service error: {e}"));
            (
                respond_fcgi::error_head(&options.error_response, &e, head_only),
                None,
            )
        }
    };
    let mut text = Vec::with_capacity(256);
    respond_fcgi::encode(&head, &mut text);
    let mut buf = BytesMut::with_capacity(text.len() + 64);
    let mut app_status = 0;
    let whole = rest.as_ref().is_none_or(|chunks| chunks.is_end());
    if whole && text.len() <= record::MAX_CONTENT_LEN {
        // A whole small response goes out in one write with its END_REQUEST.
        record::encode_record(&mut buf, RecordType::Stdout, id, &text);
    } else {
        // A longer one as it is produced, the head with the first chunk.
        if send_stdout(&out, id, &text).await.is_err() {
            return done;
        }
        if let Some(rest) = rest.as_mut() {
            loop {
                match rest.next_chunk().await {
                    Some(Ok(chunk)) => {
                        if send_stdout(&out, id, &chunk).await.is_err() {
                            return done;
                        }
                    }
                    Some(Err(e)) => {
                        log(format_args!(
                            "FastCGI: request {id}: response body failed after the head was sent: {e}"
                        ));
                        app_status = 1;
                        break;
                    }
                    None => break,
                }
            }
        }
    }
    record::encode_end_of_stream(&mut buf, RecordType::Stdout, id);
    EndRequest {
        app_status,
        protocol_status: ProtocolStatus::RequestComplete,
    }
    .encode(&mut buf, id);
    ended.store(true, Ordering::Release);
    let _ = out.send(buf.freeze()).await;
    done
}

/// Queues `data` as STDOUT records, one record (at most 64 KiB) per buffer, so that the
/// writer's queue holds at most [`WRITE_QUEUE`] records whatever the size of the service's
/// chunks.
async fn send_stdout(out: &mpsc::Sender<Bytes>, id: u16, data: &[u8]) -> Result<(), ()> {
    for piece in data.chunks(record::MAX_CONTENT_LEN) {
        let mut buf = BytesMut::with_capacity(piece.len() + record::HEADER_LEN + 8);
        record::encode_record(&mut buf, RecordType::Stdout, id, piece);
        out.send(buf.freeze()).await.map_err(drop)?;
    }
    Ok(())
}

/// Writes the queued output, each buffer whole, so that a cancelled request never leaves
/// half a record. A write that makes no progress for `deadline` (a web server that stopped
/// reading) ends the connection.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    deadline: Duration,
) {
    while let Some(bytes) = rx.recv().await {
        match timeout(deadline, writer.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("FastCGI: writing to the web server failed: {e}");
                return;
            }
            Err(_) => {
                log(format_args!(
                    "FastCGI: the web server read nothing for {deadline:?}: closing the connection"
                ));
                return;
            }
        }
    }
    let _ = timeout(deadline, writer.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn a_repeated_param_keeps_its_first_place_and_its_last_value() {
        let mut buf = BytesMut::new();
        for (name, value) in [("A", "1"), ("HTTPS", "on"), ("A", "3")] {
            record::encode_pair(&mut buf, name.as_bytes(), value.as_bytes());
        }
        let environ = environ_from_pairs(&buf.freeze()).unwrap();
        let pairs: Vec<_> = environ.iter().collect();
        assert_eq!(pairs, [(&b"A"[..], &b"3"[..]), (b"HTTPS", b"on")]);
        assert_eq!(environ.url_scheme(), &http::uri::Scheme::HTTPS);
    }

    #[test]
    fn repeats_filter_collisions_and_many_names_give_what_from_vars_gives() {
        // Two distinct names with the same filter bit: the second is a new name all the same.
        let names: Vec<String> = (0..300).map(|i| format!("N{i}")).collect();
        let (a, b) = names
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                let b = names[..i]
                    .iter()
                    .find(|b| name_bit(b.as_bytes()) == name_bit(a.as_bytes()))?;
                Some((b.clone(), a.clone()))
            })
            .unwrap();
        let mut streams = vec![vec![
            (a.clone(), "1".to_owned()),
            (b.clone(), "2".to_owned()),
            (a, "3".to_owned()),
        ]];
        // Around the switch to the hash map, with repeats before and after it.
        for count in [63, 64, 65, 200] {
            let mut pairs = Vec::new();
            for i in 0..count {
                pairs.push((names[i].clone(), format!("v{i}")));
                if i % 7 == 6 {
                    pairs.push((names[i / 2].clone(), format!("again{i}")));
                }
            }
            streams.push(pairs);
        }
        for pairs in streams {
            let mut buf = BytesMut::new();
            for (name, value) in &pairs {
                record::encode_pair(&mut buf, name.as_bytes(), value.as_bytes());
            }
            let environ = environ_from_pairs(&buf.freeze()).unwrap();
            let want = Environ::from_vars(pairs.clone());
            let got: Vec<_> = environ.iter().collect();
            assert_eq!(
                got,
                want.iter().collect::<Vec<_>>(),
                "{} pairs",
                pairs.len()
            );
        }
    }

    /// A connection whose request 1 has written its END_REQUEST, before the serve loop has
    /// seen its task end (the window in which the web server may already reuse the id), and
    /// the receiving end of its output.
    type Answer = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;
    type TestService = tower::util::ServiceFn<fn(Request<RequestBody>) -> Answer>;

    fn answer(_: Request<RequestBody>) -> Answer {
        std::future::ready(Ok(Response::new(String::from("ok"))))
    }

    fn connection_with_an_ended_request(
        max_requests: usize,
    ) -> (
        Connection<TestService, crate::error_response::DefaultErrorResponse>,
        mpsc::Receiver<Bytes>,
    ) {
        let (out, out_rx) = mpsc::channel(16);
        let service: TestService = tower::service_fn(answer as fn(_) -> _);
        let mut conn = Connection {
            service,
            options: Arc::new(Builder::new().max_requests(max_requests)),
            out,
            requests: HashMap::default(),
            tasks: JoinSet::new(),
            generation: 1,
            reading: true,
            shutting_down: false,
        };
        conn.requests.insert(
            1,
            Active {
                generation: 1,
                ended: Arc::new(AtomicBool::new(true)),
                keep_conn: true,
                role: Role::Responder,
                phase: Phase::Params(ParamsBuffer::new(0)),
            },
        );
        (conn, out_rx)
    }

    fn decoded(kind: RecordType, id: u16, content: &[u8]) -> Record {
        let mut buf = BytesMut::new();
        record::encode_record(&mut buf, kind, id, content);
        Decoder::new().decode(&mut buf).unwrap().unwrap()
    }

    #[tokio::test]
    async fn an_abort_that_crossed_the_end_request_gets_no_second_end_request() {
        let (mut conn, mut out) = connection_with_an_ended_request(8);
        let pending = conn
            .dispatch(decoded(RecordType::AbortRequest, 1, b""))
            .await;
        assert!(pending.is_none());
        assert!(out.try_recv().is_err(), "a second END_REQUEST was sent");
    }

    #[tokio::test]
    async fn a_request_after_an_end_request_is_not_over_the_per_connection_limit() {
        let (mut conn, mut out) = connection_with_an_ended_request(1);
        let mut begin = BytesMut::new();
        BeginRequest {
            role: Role::Responder,
            keep_conn: true,
        }
        .encode(&mut begin, 2);
        let begin = Decoder::new().decode(&mut begin).unwrap().unwrap();
        conn.dispatch(begin).await;
        assert!(out.try_recv().is_err(), "request 2 was refused");
        assert!(conn.requests.contains_key(&2));
    }
}
