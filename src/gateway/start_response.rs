//! `start_response` and `write` (PEP 3333 "The start_response() Callable", "The write()
//! Callable").

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::body::{Sink, Unsent};
use crate::BoxError;
use crate::headers::is_hop_by_hop;

/// A message from a blocking app's thread: a chunk (and whether it is the last one), or the
/// error that ended the app.
pub(crate) type Msg = Result<(Bytes, bool), BoxError>;

/// A check run on every `start_response` call before the contract's own (the lint layer's).
pub(crate) type Check = Arc<dyn Fn(&[u8], &[(Bytes, Bytes)]) -> Result<(), BoxError> + Send + Sync>;

/// The status and headers an app chose.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// `None` when it is the status code's canonical reason.
    pub(crate) reason: Option<Bytes>,
    pub(crate) headers: HeaderMap,
}

/// The head state of one response: what `start_response` set, what `write()` queued, whether
/// the head is out, and a contract violation that fails the response. Only this module
/// touches it; the app's handles and the engine go through [`Shared`]'s methods.
#[derive(Default)]
struct State {
    /// The head of the last valid `start_response` call.
    head: Option<Head>,
    /// `start_response` was called (validly or not).
    called: bool,
    /// The head was sent, or output is on its way: `start_response` only re-raises now.
    head_sent: bool,
    /// A contract violation the app may have swallowed: the response fails with it.
    poison: Option<String>,
    /// Output of `write()` from an async app, sent before the body's chunks.
    queue: VecDeque<Bytes>,
    /// A blocking app's channel: `write()` sends through it.
    sink: Option<Sink>,
}

/// The head state shared by the app's handles ([`StartResponse`], [`Writer`], a blocking
/// app's thread) and the engine that drives the response.
#[derive(Default)]
pub(crate) struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A blocking app's thread: its `write()` output goes through `sink`; `None` when the
    /// thread is done.
    pub(crate) fn set_sink(&self, sink: Option<Sink>) {
        self.lock().sink = sink;
    }

    /// Output is on its way (a blocking app sent a chunk): `start_response` re-raises now.
    pub(crate) fn mark_output(&self) {
        self.lock().head_sent = true;
    }

    /// For the engine, before the head: fails with a contract violation, else moves the
    /// queued `write()` output to `into`, returning whether there was any.
    pub(crate) fn poll_writes(&self, into: &mut VecDeque<Bytes>) -> Result<bool, ContractError> {
        let mut state = self.lock();
        if let Some(message) = &state.poison {
            return Err(ContractError::new(message.clone()));
        }
        let wrote = !state.queue.is_empty();
        into.extend(state.queue.drain(..));
        Ok(wrote)
    }

    /// For the engine: the status chosen so far, when no `write()` output waits and no
    /// violation fails the response.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        let state = self.lock();
        if state.poison.is_some() || !state.queue.is_empty() {
            return None;
        }
        state.head.as_ref().map(|h| h.status)
    }

    /// For the engine: takes the head to send it (marking it sent), or fails with the
    /// contract violation that makes it unsendable.
    pub(crate) fn take_head(&self) -> Result<Head, ContractError> {
        let mut state = self.lock();
        if let Some(message) = &state.poison {
            return Err(ContractError::new(message.clone()));
        }
        let Some(head) = state.head.take() else {
            return Err(ContractError::new(
                "the app produced its response without calling start_response (write() before start_response())",
            ));
        };
        state.head_sent = true;
        state.queue.clear();
        Ok(head)
    }
}

/// An app broke the gateway contract (PEP 3333): the message says which rule.
///
/// [`StartResponse::start`] returns it; it converts into a [`BoxError`] with `?`. When a
/// check of a [lint](crate::lint) refused the call, [`source`](std::error::Error::source)
/// is the lint's [`Violation`](crate::lint::Violation).
#[derive(Debug)]
pub struct ContractError {
    message: String,
    source: Option<BoxError>,
}

impl ContractError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ContractError {
            message: message.into(),
            source: None,
        }
    }

    /// A refusal by another check (a lint), keeping it as the source.
    fn wrap(error: BoxError) -> Self {
        ContractError {
            message: error.to_string(),
            source: Some(error),
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ContractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The `start_response` an app calls to choose its status and headers (PEP 3333 "The
/// start_response() Callable").
///
/// Call [`start`](Self::start) once, before the first chunk of the body is produced (it may
/// be called while the body is produced, as long as it precedes the first chunk). It checks
/// what PEP 3333 requires and returns an error, naming the rule, when the call breaks it:
///
/// - the status is `NNN Reason`: three digits, one space, a reason phrase without control
///   characters (the reason may be empty, the space may not);
/// - header names are tokens (RFC 9110 §5.1), values have no control characters other than
///   horizontal tab (so no CR or LF), and no header is hop-by-hop (`Connection`,
///   `Transfer-Encoding`, … see [`is_hop_by_hop`]): the server owns the connection;
/// - a second call is an error, unless it passes the error that made the app change its mind
///   ([`start_with_error`](Self::start_with_error), `exc_info`): before the head is sent that
///   replaces the status and headers, after it the call returns the error back (re-raises).
///
/// A broken rule also fails the response, even if the app ignores the error: the client gets
/// the error response (500) if the head was not sent yet.
///
/// The head is sent when the first non-empty chunk is ready (from [`Writer::write`] or the
/// body), or when the body ends empty.
///
/// ```
/// use towergate::gateway::StartResponse;
///
/// let start_response = StartResponse::detached();
/// let err = start_response.start("20 OK", [("Content-Type", "text/plain")]).unwrap_err();
/// assert_eq!(err.to_string(), "start_response: the status must begin with a three-digit code: \"20 OK\"");
///
/// let start_response = StartResponse::detached();
/// let err = start_response.start("200 OK", [("Connection", "close")]).unwrap_err();
/// assert_eq!(err.to_string(), "start_response: hop-by-hop header \"Connection: close\" not allowed");
///
/// let start_response = StartResponse::detached();
/// start_response.start("200 OK", [("Content-Type", "text/plain")]).unwrap();
/// let err = start_response.start("200 OK", [("Content-Type", "text/plain")]).unwrap_err();
/// assert_eq!(err.to_string(), "start_response: called twice without an error (headers already set)");
/// ```
#[derive(Clone)]
pub struct StartResponse {
    shared: Arc<Shared>,
    check: Option<Check>,
}

impl fmt::Debug for StartResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("StartResponse")
            .field("called", &state.called)
            .field("head_sent", &state.head_sent)
            .finish_non_exhaustive()
    }
}

impl StartResponse {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        StartResponse {
            shared,
            check: None,
        }
    }

    /// A `start_response` not connected to any server, for testing an app's calls.
    pub fn detached() -> Self {
        StartResponse::new(Arc::default())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Adds a check run before the contract's own on every call.
    pub(crate) fn with_check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// Returns true once `start_response` was called (validly or not).
    pub fn is_called(&self) -> bool {
        self.shared.lock().called
    }

    /// Returns true once the head was sent (PEP 3333's `headers_sent`).
    pub fn is_head_sent(&self) -> bool {
        self.shared.lock().head_sent
    }

    /// `start_response(status, headers)`: sets the status and the headers, and returns the
    /// [`Writer`] for imperative output. See the type's docs for the rules; a broken one is a
    /// [`ContractError`] naming it.
    pub fn start<I, N, V>(
        &self,
        status: impl AsRef<[u8]>,
        headers: I,
    ) -> Result<Writer, ContractError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.call(status.as_ref(), headers, None)
            .map_err(|e| match e.downcast::<ContractError>() {
                Ok(contract) => *contract,
                Err(other) => ContractError::wrap(other),
            })
    }

    /// `start_response(status, headers, exc_info)`: the app failed with `error` and sends a
    /// different response instead. Before the head is sent this replaces the status and
    /// headers; after, it returns `error` back (the output is already on its way, PEP 3333:
    /// "must raise").
    pub fn start_with_error<I, N, V>(
        &self,
        status: impl AsRef<[u8]>,
        headers: I,
        error: BoxError,
    ) -> Result<Writer, BoxError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.call(status.as_ref(), headers, Some(error))
    }

    fn call<I, N, V>(
        &self,
        status: &[u8],
        headers: I,
        error: Option<BoxError>,
    ) -> Result<Writer, BoxError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        // Parsed before taking the lock (it runs the caller's iterator), so that the state
        // is locked once; a call refused below discards the result.
        let result = self.parse(status, headers);
        let mut state = self.shared.lock();
        match error {
            Some(error) if state.head_sent => return Err(error),
            Some(_) => {}
            None if state.called => {
                let message = "start_response: called twice without an error (headers already set)";
                state.poison = Some(message.into());
                return Err(ContractError::new(message).into());
            }
            None => {}
        }
        state.called = true;
        match result {
            Ok(head) => {
                state.head = Some(head);
                state.poison = None;
                Ok(Writer {
                    shared: self.shared.clone(),
                })
            }
            Err(e) => {
                state.poison = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn parse<I, N, V>(&self, status: &[u8], headers: I) -> Result<Head, BoxError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if let Some(check) = &self.check {
            let raw: Vec<(Bytes, Bytes)> = headers
                .into_iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_ref()),
                        Bytes::copy_from_slice(v.as_ref()),
                    )
                })
                .collect();
            check(status, &raw).map_err(|e| BoxError::from(ContractError::wrap(e)))?;
            return parse_head(status, raw.iter().map(|(n, v)| (n, v)));
        }
        parse_head(status, headers)
    }
}

fn contract(message: String) -> BoxError {
    ContractError::new(format!("start_response: {message}")).into()
}

/// Checks a status and headers against PEP 3333 and builds the head.
pub(crate) fn parse_head<I, N, V>(status: &[u8], headers: I) -> Result<Head, BoxError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let shown = || String::from_utf8_lossy(status).into_owned();
    if status.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(contract(format!(
            "control characters are not allowed in the status: {:?}",
            shown()
        )));
    }
    let code = status.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit));
    let Some(code) = code else {
        return Err(contract(format!(
            "the status must begin with a three-digit code: {:?}",
            shown()
        )));
    };
    if status.get(3) != Some(&b' ') {
        return Err(contract(format!(
            "the status must have a space after the code: {:?}",
            shown()
        )));
    }
    let status_code = StatusCode::from_bytes(code)
        .map_err(|_| contract(format!("the status code must be 100 to 999: {:?}", shown())))?;
    let reason = match &status[4..] {
        raw if status_code.canonical_reason().map(str::as_bytes) == Some(raw) => None,
        raw => Some(Bytes::copy_from_slice(raw)),
    };

    let headers = headers.into_iter();
    // Room for the `Content-Length` a server may add.
    let mut map = HeaderMap::with_capacity(headers.size_hint().0 + 1);
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        let shown_name = || String::from_utf8_lossy(name);
        // `HeaderName` takes exactly the RFC 9110 tokens, and `HeaderValue` refuses exactly
        // the control characters but tab: their checks are the contract's.
        let Ok(header) = HeaderName::from_bytes(name) else {
            return Err(contract(format!(
                "header name {:?} is not a token",
                shown_name()
            )));
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return Err(contract(format!(
                "control characters are not allowed in the value of header {:?}",
                shown_name()
            )));
        };
        if is_hop_by_hop(header.as_str()) {
            return Err(contract(format!(
                "hop-by-hop header \"{}: {}\" not allowed",
                shown_name(),
                String::from_utf8_lossy(value.as_bytes())
            )));
        }
        map.append(header, value);
    }
    Ok(Head {
        status: status_code,
        reason,
        headers: map,
    })
}

/// The `write` callable `start_response` returns (PEP 3333 "The write() Callable"):
/// imperative output that precedes the chunks of the returned body.
///
/// A blocking app's writes are sent as they are made (the call waits while the client is
/// slow: backpressure), each waiting at most the app's send timeout
/// ([`BlockingAppFn::send_timeout`](super::BlockingAppFn::send_timeout)). An async app's writes are queued and sent before its body, when the
/// app's future has completed; an async app that streams should return a streaming body
/// instead. Writing after the head was sent by an async app is an error.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Writes `data` as if it were a chunk of the body.
    ///
    /// Fails when the client went away or took no output for the send timeout (a blocking
    /// app should stop then: the response is cut), or, for an async app, when the head was
    /// sent already.
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), BoxError> {
        let data = data.into();
        let sink = {
            let mut state = self.shared.lock();
            match &state.sink {
                Some(sink) => {
                    let sink = sink.clone();
                    if !data.is_empty() {
                        // Output is on its way: start_response re-raises now.
                        state.head_sent = true;
                    }
                    sink
                }
                None if state.head_sent => {
                    return Err(ContractError::new(
                        "write() after the head was sent: an async app's write() output must precede its body",
                    )
                    .into());
                }
                None => {
                    if !data.is_empty() {
                        state.queue.push_back(data);
                    }
                    return Ok(());
                }
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        sink.send(Ok((data, false)))
            .map_err(|(unsent, _)| match unsent {
                Unsent::Stalled => format!(
                    "write(): the client took no output for {:?}",
                    sink.timeout()
                )
                .into(),
                Unsent::Full | Unsent::Gone => BoxError::from("write(): the client went away"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: &str, headers: &[(&str, &str)]) -> String {
        StartResponse::detached()
            .start(status, headers.iter().copied())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn status_needs_a_space_after_the_code() {
        assert_eq!(
            err("200OK", &[]),
            "start_response: the status must have a space after the code: \"200OK\""
        );
        assert_eq!(
            err("200", &[]),
            "start_response: the status must have a space after the code: \"200\""
        );
    }

    #[test]
    fn status_with_a_line_break_is_rejected() {
        assert_eq!(
            err("200 OK\r\n", &[]),
            "start_response: control characters are not allowed in the status: \"200 OK\\r\\n\""
        );
    }

    #[test]
    fn header_values_with_newlines_are_rejected() {
        assert_eq!(
            err("200 OK", &[("X-A", "a\nb")]),
            "start_response: control characters are not allowed in the value of header \"X-A\""
        );
        assert_eq!(
            err("200 OK", &[("X A", "a")]),
            "start_response: header name \"X A\" is not a token"
        );
    }

    #[test]
    fn reason_is_kept_and_headers_stay_repeated() {
        let start = StartResponse::detached();
        start
            .start(
                "599 Odd Thing",
                [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            )
            .unwrap();
        let state = start.shared.lock();
        let head = state.head.as_ref().unwrap();
        assert_eq!(head.status.as_u16(), 599);
        assert_eq!(head.reason.as_deref(), Some(&b"Odd Thing"[..]));
        assert_eq!(head.headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn error_call_replaces_the_head_before_it_is_sent_and_reraises_after() {
        let start = StartResponse::detached();
        start.start("200 OK", [("A", "1")]).unwrap();
        start
            .start_with_error("503 Service Unavailable", [("B", "2")], "boom".into())
            .unwrap();
        assert_eq!(start.shared.lock().head.as_ref().unwrap().status, 503);
        start.shared.lock().head_sent = true;
        let back = start
            .start_with_error("500 Oops", [("B", "2")], "boom".into())
            .unwrap_err();
        assert_eq!(back.to_string(), "boom");
    }

    #[test]
    fn swallowed_violation_poisons_the_response() {
        let start = StartResponse::detached();
        let _ = start.start("2000 OK", [("A", "1")]);
        assert!(start.shared.lock().poison.is_some());
    }
}
