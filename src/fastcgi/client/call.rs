//! One request through the client: body, environ, records out, head in (FastCGI §6.2, the
//! Responder role; RFC 3875 §4 and §6 for what goes in and comes out).

use std::fmt;
use std::io::SeekFrom;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::pool::{ConnectError, Event, Exchange};
use super::{Client, Script};
use crate::BoxError;
use crate::fastcgi::record::{self, BeginRequest, ProtocolStatus, RecordType, Role};
use crate::host::head::{self, Head, HeadError};
use crate::host::redirect::{Hop, Redirect};
use crate::host::run::{self, TransferEncoding};
use crate::host::slots::NoSlot;
use crate::host::spool::{self, Reservation, SpoolError, SpoolLimits, SpooledData};
use crate::host::{ResponseBody, error_response};
use crate::panic::log;

/// How much of a streamed request body is kept so the request can be sent again when a
/// kept-alive connection turns out to be closed (a server recycling its worker). A body
/// that streamed past it is not retried.
const REPLAY: usize = 64 * 1024;

/// How many times a request goes out again on a fresh connection after a kept-alive one
/// closed before any answer.
const RETRIES: u32 = 3;

/// The request body as it goes out, and what of it can be sent again.
enum Input<B> {
    None,
    /// Chunks already taken (kept for a retry) and the rest of the body, if any.
    Chunks {
        taken: Vec<Bytes>,
        taken_len: usize,
        replayable: bool,
        rest: Option<Pin<Box<B>>>,
        /// The spool space this body holds.
        reservation: Option<Reservation>,
    },
    /// A spooled body in a temporary file, read from its start each time.
    File {
        file: tokio::fs::File,
        /// Its length.
        len: u64,
        reservation: Option<Reservation>,
    },
}

impl<B> Input<B> {
    /// A body streamed as it arrives.
    fn stream(body: B) -> Self {
        Input::Chunks {
            taken: Vec::new(),
            taken_len: 0,
            replayable: true,
            rest: Some(Box::pin(body)),
            reservation: None,
        }
    }

    /// Gives the spool space back: the body is going out whole. Done before the write of its
    /// last bytes, so that the answer, which can only follow them (a server may answer
    /// once it has `CONTENT_LENGTH` bytes, before the end of the stream), finds the space
    /// free. A retry sends the bytes still held without counting them again.
    fn release_spool(&mut self) {
        match self {
            Input::Chunks { reservation, .. } | Input::File { reservation, .. } => {
                *reservation = None;
            }
            Input::None => {}
        }
    }

    fn replayable(&self) -> bool {
        match self {
            Input::None | Input::File { .. } => true,
            Input::Chunks { replayable, .. } => *replayable,
        }
    }
}

struct Failure<'a> {
    client: &'a Client,
    why: &'a dyn fmt::Display,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FastCGI server {}: {}", self.client.address, self.why)
    }
}

/// A log line and `status`; 503 comes with `Retry-After: 1`, as from the CGI host.
fn fail(client: &Client, status: StatusCode, why: &dyn fmt::Display) -> Response<ResponseBody> {
    log(format_args!("{}", Failure { client, why }));
    error_response(status)
}

/// Serves `request` through `client`'s server; `script` overrides where the script is, and
/// `home` gives the service that serves a local redirect when the options name none (made
/// only then, from the client).
pub(super) async fn call<B>(
    client: Client,
    request: Request<B>,
    script: Option<Script>,
    home: impl FnOnce(&Client) -> Redirect + Send,
) -> Response<ResponseBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    // One deadline covers a request and its local redirects, as in the CGI host: a
    // redirected request keeps the deadline of the one it continues.
    let deadline = parts
        .extensions
        .get::<Hop>()
        .and_then(|hop| hop.deadline)
        .unwrap_or_else(|| Instant::now() + client.head_timeout);
    let options = &client.options;

    let permit = match client
        .slots
        .acquire_until(deadline, client.max_waiting)
        .await
    {
        Ok(permit) => permit,
        Err(NoSlot::LineFull(waiting)) => {
            return fail(
                &client,
                StatusCode::SERVICE_UNAVAILABLE,
                &format_args!("the line for a request slot is full ({waiting} waiting)"),
            );
        }
        Err(NoSlot::TimedOut) => {
            return fail(
                &client,
                StatusCode::SERVICE_UNAVAILABLE,
                &"no request slot freed up within the head timeout",
            );
        }
    };

    // The body: declared, known, spooled (php-fpm needs CONTENT_LENGTH, RFC 3875 §4.2) or
    // streamed to the end of STDIN.
    let known = run::known_length(run::declared_length(&parts.headers), &body);
    let mut content_length = None;
    let mut transfer_encoding = TransferEncoding::AsIs;
    let input = if let Some((length, from_hint)) = known {
        if length > options.max_body {
            return fail(
                &client,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format_args!("a body of {length} bytes is over the limit"),
            );
        }
        if from_hint {
            content_length = Some(length);
        }
        if length == 0 {
            Input::None
        } else {
            Input::stream(body)
        }
    } else if !options.spool {
        transfer_encoding = TransferEncoding::Chunked;
        Input::stream(body)
    } else {
        let dir = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let limits = SpoolLimits {
            memory: options.spool_memory,
            max: options.max_body,
            idle: options.body_timeout,
            dir: &dir,
            budget: &options.spool_budget,
        };
        let refused = |status, why: &str| fail(&client, status, &why);
        match tokio::time::timeout_at(deadline, spool::spool(body, limits)).await {
            Ok(Ok(spooled)) => {
                content_length = Some(spooled.len);
                transfer_encoding = TransferEncoding::Remove;
                let reservation = Some(spooled.reservation);
                match spooled.data {
                    SpooledData::Memory(chunks) => Input::Chunks {
                        taken: chunks,
                        taken_len: 0,
                        replayable: true,
                        rest: None,
                        reservation,
                    },
                    SpooledData::File(file) => Input::File {
                        file: tokio::fs::File::from_std(file),
                        len: spooled.len,
                        reservation,
                    },
                }
            }
            Ok(Err(SpoolError::TooLarge)) => {
                return refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is over the limit",
                );
            }
            Ok(Err(SpoolError::Budget)) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the spool space shared by all requests is spent",
                );
            }
            Ok(Err(SpoolError::Stalled)) | Err(_) => {
                return refused(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body stopped arriving",
                );
            }
            Ok(Err(SpoolError::Body(error))) => {
                let why = format!("the request body failed: {error}");
                return refused(StatusCode::BAD_REQUEST, &why);
            }
            Ok(Err(SpoolError::Io(error))) => {
                let why = format!("cannot spool the request body: {error}");
                return refused(StatusCode::INTERNAL_SERVER_ERROR, &why);
            }
        }
    };

    // The meta-variables, exactly as the CGI host builds them (RFC 3875 §4.1), then the
    // script's place and the configured extra parameters.
    let mut environ = run::environ(&client.target, &parts, content_length, transfer_encoding);
    if let Some(script) = &script {
        environ.insert("SCRIPT_NAME", script.name.clone());
        environ.insert("PATH_INFO", script.path_info.clone());
        environ.insert("SCRIPT_FILENAME", script.filename.clone());
        environ.remove("PATH_TRANSLATED");
        if let Some(root) = client.document_root.as_ref() {
            if !script.path_info.is_empty() {
                let mut translated = BytesMut::from(&root[..]);
                translated.extend_from_slice(&script.path_info);
                environ.insert("PATH_TRANSLATED", translated.freeze());
            }
        }
    } else if let Some(filename) = &client.script_filename {
        environ.insert("SCRIPT_FILENAME", filename.clone());
    } else {
        environ.remove("SCRIPT_FILENAME");
    }
    for (name, value) in client.params.iter() {
        environ.insert(name.clone(), value.clone());
    }
    // Sized once: growing it pair by pair cost a few reallocations and copies a request.
    let size = environ
        .iter()
        .map(|(name, value)| record::pair_len(name, value))
        .sum();
    let mut params = BytesMut::with_capacity(size);
    for (name, value) in environ.iter() {
        record::encode_pair(&mut params, name, value);
    }
    drop(environ);
    let params = params.freeze();

    // Out and back, on a fresh connection again when a kept-alive one was closed under us.
    let no_body = matches!(input, Input::None);
    let mut input = input;
    let mut attempt = 0;
    let (exchange, head, rest) = loop {
        attempt += 1;
        let exchange = match tokio::time::timeout_at(deadline, client.pool.checkout()).await {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(error @ ConnectError::Timeout(_))) => {
                return fail(&client, StatusCode::GATEWAY_TIMEOUT, &error);
            }
            Ok(Err(error)) => return fail(&client, StatusCode::BAD_GATEWAY, &error),
            Err(_) => {
                return fail(
                    &client,
                    StatusCode::GATEWAY_TIMEOUT,
                    &"no connection within the head timeout",
                );
            }
        };
        let reused = exchange.reused;
        let feed = feed(
            exchange.conn.clone(),
            exchange.id,
            exchange.serial,
            params.clone(),
            input,
        );
        let feeding = if no_body {
            // BEGIN_REQUEST, PARAMS and the empty STDIN in one write, here: no task to
            // spawn and wake for a request without a body (most of them).
            match tokio::time::timeout_at(deadline, feed).await {
                Ok(fed) => Feeding::Done(fed),
                Err(_) => {
                    // Cut off mid-write: what went out is no record boundary.
                    exchange.conn.close();
                    return fail(
                        &client,
                        StatusCode::GATEWAY_TIMEOUT,
                        &"the request could not be sent within the head timeout",
                    );
                }
            }
        } else {
            // A body goes out beside the reading of the head: the server may answer
            // before it has read all of it.
            Feeding::Running(tokio::spawn(feed))
        };
        let mut exchange = exchange;
        let reading = read_head(&mut exchange, &options.limits);
        match tokio::time::timeout_at(deadline, reading).await {
            Ok(Ok((head, rest))) => break (exchange, head, rest),
            Ok(Err(failure @ (HeadFailure::Closed | HeadFailure::ClosedEarly))) => {
                drop(exchange);
                // The feeder stops at once on a closed connection and gives the body back.
                let back = match feeding {
                    Feeding::Done(fed) => fed,
                    Feeding::Running(task) => match task.await {
                        Ok(fed) => fed,
                        Err(_) => return fail(&client, StatusCode::BAD_GATEWAY, &failure),
                    },
                };
                if let Some(error) = &back.failed {
                    // The request body broke off (the client's doing): what went out was
                    // not sent whole, and is never sent again.
                    return fail(
                        &client,
                        StatusCode::BAD_REQUEST,
                        &format_args!("the request body failed: {error}"),
                    );
                }
                if !matches!(failure, HeadFailure::Closed) || !reused || attempt > RETRIES {
                    return fail(&client, StatusCode::BAD_GATEWAY, &failure);
                }
                if !back.input.replayable() {
                    // Part of the body went out and is gone: sending the rest alone would
                    // pass a truncated body off as whole.
                    return fail(
                        &client,
                        StatusCode::BAD_GATEWAY,
                        &format_args!(
                            "a kept-alive connection closed before any answer, after more of the \
                             streamed request body ({REPLAY} bytes kept) than can be sent again"
                        ),
                    );
                }
                tracing::debug!(
                    target: "towergate::fastcgi::client",
                    "{}: a kept-alive connection closed before any answer: sending again",
                    client.address
                );
                input = back.input;
                continue;
            }
            Ok(Err(failure)) => {
                let status = match failure {
                    HeadFailure::Refused(ProtocolStatus::Overloaded) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    _ => StatusCode::BAD_GATEWAY,
                };
                return fail(&client, status, &failure);
            }
            Err(_) => {
                return fail(
                    &client,
                    StatusCode::GATEWAY_TIMEOUT,
                    &format_args!("no response head within {:?}", client.head_timeout),
                );
            }
        }
    };

    // The head (RFC 3875 §6), as the CGI host reads a program's.
    let (status, reason, headers, content_length) = match head::parse_cgi(&head, &options.limits) {
        Ok(Head::Response {
            status,
            reason,
            headers,
            content_length,
        }) => (status, reason, headers, content_length),
        Ok(Head::LocalRedirect(location)) => {
            // As the CGI host does: the first response is read to its end and its slot
            // freed before the redirect is served (through `home` or the configured
            // service, a GET under the same deadline).
            drain(exchange, deadline).await;
            drop(permit);
            return run::local_redirect(
                parts,
                location,
                options,
                || home(&client),
                Path::new("FastCGI"),
                Some(deadline),
            )
            .await;
        }
        Err(error) => {
            let why = format_args!("{error}");
            return fail(&client, StatusCode::BAD_GATEWAY, &why);
        }
    };
    let (mut response, with_body) = run::response_head(&parts.method, status, reason, headers);
    if !with_body {
        // The body is read to its end behind the response, holding the request's slot, so
        // that the connection serves the next request (the CGI host discards a program's
        // output the same way).
        let mut exchange = exchange;
        if !ready_body(&mut exchange, rest).1 {
            tokio::spawn(async move {
                drain(exchange, deadline).await;
                drop(permit);
            });
        }
        return response;
    }
    let mut exchange = exchange;
    let (first, ended) = ready_body(&mut exchange, rest);
    if ended && content_length.is_none_or(|length| length == first.len() as u64) {
        // The whole response is here (php-fpm writes a small one at once): a body of
        // known length, and the connection and the slot are free before it is written.
        drop(exchange);
        drop(permit);
        *response.body_mut() = ResponseBody::full(first);
        return response;
    }
    *response.body_mut() = ResponseBody::boxed(Stdout {
        remaining: content_length,
        first: Some(first).filter(|r| !r.is_empty()),
        exchange: Some(exchange).filter(|_| !ended),
        ended,
        _permit: permit,
    });
    response
}

/// The most response body taken at once behind the head, to see whether it is whole.
const READY_BODY: usize = 64 * 1024;

/// The response body that is already here behind the head (`rest`), without waiting, up to
/// [`READY_BODY`] bytes: the bytes, and whether END_REQUEST came too.
fn ready_body(exchange: &mut Exchange, rest: Bytes) -> (Bytes, bool) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut body = rest;
    let mut joined: Option<BytesMut> = None;
    while body.len() + joined.as_ref().map_or(0, BytesMut::len) <= READY_BODY {
        match exchange.poll_next(&mut cx) {
            Poll::Ready(Some(Event::Stdout(data))) => {
                joined
                    .get_or_insert_with(|| BytesMut::from(std::mem::take(&mut body)))
                    .extend_from_slice(&data);
            }
            Poll::Ready(Some(Event::End(_))) => {
                return (joined.map_or(body, BytesMut::freeze), true);
            }
            // A closed connection is seen again by the body, which fails.
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    (joined.map_or(body, BytesMut::freeze), false)
}

/// Why no head came back.
#[derive(Debug)]
enum HeadFailure {
    /// The connection closed before any record of the request arrived.
    Closed,
    /// The connection closed after part of the head.
    ClosedEarly,
    /// END_REQUEST with a status other than REQUEST_COMPLETE (§5.5).
    Refused(ProtocolStatus),
    Head(HeadError),
}

impl fmt::Display for HeadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadFailure::Closed => f.write_str("the connection closed before any answer"),
            HeadFailure::ClosedEarly => {
                f.write_str("the connection closed before the end of the header block")
            }
            HeadFailure::Refused(status) => {
                write!(f, "the request was refused ({status:?}, FastCGI §5.5)")
            }
            HeadFailure::Head(error) => fmt::Display::fmt(error, f),
        }
    }
}

/// Reads STDOUT up to and including the blank line that ends the head; returns the head and
/// what came after it.
async fn read_head(
    exchange: &mut Exchange,
    limits: &head::Limits,
) -> Result<(Bytes, Bytes), HeadFailure> {
    let mut buf = BytesMut::new();
    let mut any = false;
    loop {
        match exchange.next().await {
            None if !any => return Err(HeadFailure::Closed),
            None => return Err(HeadFailure::ClosedEarly),
            Some(Event::End(end)) => {
                if end.protocol_status != ProtocolStatus::RequestComplete {
                    return Err(HeadFailure::Refused(end.protocol_status));
                }
                return Err(HeadFailure::Head(if buf.is_empty() {
                    HeadError::NoOutput
                } else {
                    HeadError::Unterminated
                }));
            }
            Some(Event::Stdout(data)) => {
                any = true;
                if buf.is_empty() {
                    buf = BytesMut::from(data);
                } else {
                    buf.extend_from_slice(&data);
                }
                if let Some(end) = head::find_end(&buf, limits).map_err(HeadFailure::Head)? {
                    let head = buf.split_to(end).freeze();
                    return Ok((head, buf.freeze()));
                }
            }
        }
    }
}

/// Reads a response nobody wants to its END_REQUEST (a HEAD, a local redirect), so that its
/// connection serves the next request; gives up at `deadline`.
async fn drain(mut exchange: Exchange, deadline: Instant) {
    let draining = async {
        while let Some(event) = exchange.next().await {
            if matches!(event, Event::End(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, draining).await;
}

/// The STDIN stream of one attempt: sent already, or being sent by a task of its own.
enum Feeding<B> {
    Done(Fed<B>),
    Running(tokio::task::JoinHandle<Fed<B>>),
}

/// What a feeder gives back: the input, for a retry when it can be sent again, and the
/// request body's own error, if it failed.
struct Fed<B> {
    input: Input<B>,
    failed: Option<BoxError>,
}

/// Why the STDIN stream stopped short.
enum Stop {
    /// The connection closed or a write failed.
    Connection(BoxError),
    /// The request body failed: the input can never be sent whole.
    Body(BoxError),
}

impl From<std::io::Error> for Stop {
    fn from(error: std::io::Error) -> Self {
        Stop::Connection(error.into())
    }
}

/// Sends BEGIN_REQUEST, the PARAMS stream and the STDIN stream of request `id` (§5.1 to
/// §5.3), each STDIN record as the body produces it. Stops when the connection closes or the
/// request ends first. Gives the input back, for a retry when it can be sent again.
async fn feed<B>(
    conn: std::sync::Arc<super::pool::Conn>,
    id: u16,
    serial: u64,
    params: Bytes,
    mut input: Input<B>,
) -> Fed<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut out = BytesMut::with_capacity(64 + params.len() + params.len() / 8);
    BeginRequest {
        role: Role::Responder,
        keep_conn: true,
    }
    .encode(&mut out, id);
    record::encode_stream(&mut out, RecordType::Params, id, &params);
    record::encode_end_of_stream(&mut out, RecordType::Params, id);
    let result = send_input(&conn, id, serial, &mut out, &mut input).await;
    let complete = matches!(result, Ok(true));
    let mut failed = None;
    if let Err(stop) = result {
        let error = match stop {
            Stop::Connection(error) => error,
            Stop::Body(error) => {
                // Never sent again: a retry would send what was kept as if it were all.
                if let Input::Chunks {
                    replayable, taken, ..
                } = &mut input
                {
                    *replayable = false;
                    taken.clear();
                }
                failed.insert(error).to_string().into()
            }
        };
        tracing::debug!(
            target: "towergate::fastcgi::client",
            "request body not sent whole: {error}"
        );
        if !conn.ended(id, serial) {
            // The server waits for the rest of a body that will not come: the connection
            // is of no more use.
            conn.close();
        }
    }
    if !complete {
        conn.stdin_done(id, serial, false);
    }
    Fed { input, failed }
}

async fn send_input<B>(
    conn: &super::pool::Conn,
    id: u16,
    serial: u64,
    out: &mut BytesMut,
    input: &mut Input<B>,
) -> Result<bool, Stop>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    match input {
        Input::None => {}
        Input::Chunks {
            taken,
            taken_len,
            replayable,
            rest,
            reservation,
        } => {
            for (i, chunk) in taken.iter().enumerate() {
                record::encode_stream(out, RecordType::Stdin, id, chunk);
                if out.len() >= 64 * 1024 {
                    if i + 1 == taken.len() && rest.is_none() {
                        // The last bytes of a spooled body (see `Input::release_spool`).
                        *reservation = None;
                    }
                    conn.write(out).await?;
                    out.clear();
                }
            }
            if let Some(body) = rest {
                let mut closed = conn.closed();
                loop {
                    if !out.is_empty() {
                        conn.write(out).await?;
                        out.clear();
                    }
                    if conn.ended(id, serial) {
                        return Ok(false);
                    }
                    let frame = tokio::select! {
                        frame = std::future::poll_fn(|cx| crate::panic::poll_frame(body.as_mut(), cx)) => frame,
                        _ = closed.wait_for(|c| *c) => {
                            return Err(Stop::Connection("the connection closed".into()));
                        }
                    };
                    let Some(frame) = frame else { break };
                    let Ok(mut data) = frame.map_err(Stop::Body)?.into_data() else {
                        continue;
                    };
                    let data = data.copy_to_bytes(data.remaining());
                    record::encode_stream(out, RecordType::Stdin, id, &data);
                    if *replayable {
                        *taken_len += data.len();
                        if *taken_len > REPLAY {
                            *replayable = false;
                            taken.clear();
                        } else {
                            taken.push(data);
                        }
                    }
                }
                // Everything is in `taken` now: a retry sends it all from there.
                *rest = None;
            }
        }
        Input::File {
            file,
            len,
            reservation,
        } => {
            file.seek(SeekFrom::Start(0)).await?;
            let mut read = 0;
            loop {
                if out.len() < 64 * 1024 {
                    let mut chunk = BytesMut::with_capacity(64 * 1024);
                    if file.read_buf(&mut chunk).await? == 0 {
                        break;
                    }
                    read += chunk.len() as u64;
                    record::encode_stream(out, RecordType::Stdin, id, &chunk);
                }
                if read >= *len {
                    // The last bytes of a spooled body (see `Input::release_spool`).
                    *reservation = None;
                }
                conn.write(out).await?;
                out.clear();
                if conn.ended(id, serial) {
                    return Ok(false);
                }
            }
        }
    }
    input.release_spool();
    record::encode_end_of_stream(out, RecordType::Stdin, id);
    conn.write_last(out, id, serial).await?;
    out.clear();
    Ok(true)
}

/// The response body: STDOUT records as they arrive, to END_REQUEST (§5.3, §5.5). A body
/// that ends before the end of the connection's records, or that differs from its
/// `Content-Length`, ends with an error.
struct Stdout {
    /// What the `Content-Length` field says is left.
    remaining: Option<u64>,
    first: Option<Bytes>,
    exchange: Option<Exchange>,
    /// END_REQUEST came already, before `first` was yielded.
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

impl Stdout {
    fn data(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(remaining) = &mut self.remaining {
            match remaining.checked_sub(data.len() as u64) {
                Some(left) => *remaining = left,
                None => {
                    self.exchange = None;
                    return Poll::Ready(Some(Err(
                        "the FastCGI response is longer than its Content-Length".into(),
                    )));
                }
            }
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// END_REQUEST: the end of the body, short of its `Content-Length` or not.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.exchange = None;
        self.ended = false;
        if self.remaining.is_some_and(|r| r > 0) {
            return Poll::Ready(Some(Err(
                "the FastCGI response is shorter than its Content-Length".into(),
            )));
        }
        Poll::Ready(None)
    }
}

impl Body for Stdout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return self.data(first);
        }
        let Some(exchange) = self.exchange.as_mut() else {
            if self.ended {
                return self.end();
            }
            return Poll::Ready(None);
        };
        match std::task::ready!(exchange.poll_next(cx)) {
            Some(Event::Stdout(data)) => self.data(data),
            Some(Event::End(_)) => self.end(),
            None => {
                let overflowed = exchange.overflowed();
                self.exchange = None;
                Poll::Ready(Some(Err(if overflowed {
                    "the FastCGI request was aborted: its response was not read while it held up \
                     the other requests on its connection"
                        .into()
                } else {
                    "the FastCGI connection closed before the end of the response".into()
                })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.exchange.is_none() && !self.ended
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        // `remaining` still counts `first`, which is taken from it as it is yielded.
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}
