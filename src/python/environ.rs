//! The `environ` dict (PEP 3333 "environ Variables") and its streams, `wsgi.input` and
//! `wsgi.errors` ("Input and Error Streams").

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::file::FileWrapper;
use crate::Environ;
use crate::environ::{Errors, Input, block_on};

/// A native string from bytes (PEP 3333 "A Note On String Types"): each byte is the code
/// point of the same value (latin-1), so the app gets back the exact bytes with
/// `value.encode("latin-1")`.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => PyString::new(py, text),
        _ => {
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            PyString::new(py, &text)
        }
    }
}

/// The bytes of a native string: every character must be latin-1 (U+0000 to U+00FF).
pub(crate) fn from_latin1<'a>(value: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    let text = value
        .cast::<PyString>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be of type str (got {})",
                value.repr().map_or_else(|_| "?".into(), |r| r.to_string())
            ))
        })?
        .to_str()?;
    if text.is_ascii() {
        // Python's own buffer: no copy.
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<Vec<u8>, _>>()
        .map(Cow::Owned)
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must contain latin-1 characters only (PEP 3333): {text:?}"
            ))
        })
}

/// The meta-variables most requests have, each with whether its value tends to repeat
/// from one request to the next (the server's name and port, the method, the client's
/// address...) and whether nearly every request has it (see [`template`]).
///
/// Their names are made once as native strings, and so is the last value of those whose
/// value repeats. A string taken from here is not made again and keeps the hash Python
/// computed for it, so putting it in the environ dict costs little. One slot per name and
/// Python thread: the memory is bounded whatever clients send. In the order
/// [`EnvironBuilder`](crate::environ::EnvironBuilder) writes them: a name is looked for
/// first where the previous one was found, plus one.
const KNOWN: [(&str, bool, bool); 30] = [
    ("SERVER_SOFTWARE", true, true),
    ("SERVER_NAME", true, true),
    ("GATEWAY_INTERFACE", true, true),
    ("SERVER_PROTOCOL", true, true),
    ("SERVER_PORT", true, true),
    ("REQUEST_METHOD", true, true),
    ("PATH_TRANSLATED", false, false),
    ("PATH_INFO", false, true),
    ("SCRIPT_NAME", true, true),
    ("QUERY_STRING", false, true),
    ("REMOTE_HOST", true, true),
    ("REMOTE_ADDR", true, true),
    ("REMOTE_PORT", false, true),
    ("AUTH_TYPE", true, false),
    ("REMOTE_USER", false, false),
    ("CONTENT_TYPE", true, false),
    ("CONTENT_LENGTH", false, false),
    ("REQUEST_URI", false, true),
    ("HTTPS", true, false),
    ("HTTP_HOST", true, true),
    ("HTTP_USER_AGENT", true, false),
    ("HTTP_ACCEPT", true, false),
    ("HTTP_ACCEPT_LANGUAGE", true, false),
    ("HTTP_ACCEPT_ENCODING", true, false),
    ("HTTP_CONNECTION", true, false),
    ("HTTP_COOKIE", false, false),
    ("HTTP_REFERER", false, false),
    ("HTTP_ORIGIN", true, false),
    ("HTTP_CACHE_CONTROL", true, false),
    ("HTTP_X_FORWARDED_FOR", false, false),
];

/// The `wsgi.*` keys every environ dict has.
const WSGI_KEYS: [&str; 8] = [
    "wsgi.url_scheme",
    "wsgi.version",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.file_wrapper",
];

/// The strings of [`KNOWN`], made as requests need them.
#[derive(Default)]
struct Slot {
    name: Option<Py<PyString>>,
    last: Option<(Box<[u8]>, Py<PyString>)>,
}

fn empty_slots() -> Vec<Slot> {
    KNOWN.iter().map(|_| Slot::default()).collect()
}

thread_local! {
    /// Per thread, so that no lock is held across calls into Python (which may let go of
    /// the GIL and let another thread in).
    static SLOTS: RefCell<Vec<Slot>> = RefCell::new(empty_slots());
}

/// Runs `f` with this thread's slots (or fresh ones, should `f` run again inside itself
/// through a finalizer).
fn with_slots<T>(f: impl FnOnce(&mut [Slot]) -> T) -> T {
    SLOTS.with(|slots| match slots.try_borrow_mut() {
        Ok(mut slots) => f(&mut slots),
        Err(_) => f(&mut empty_slots()),
    })
}

/// The name of `KNOWN[i]` as a native string (interned).
fn known_name<'py>(py: Python<'py>, slots: &mut [Slot], i: usize) -> Bound<'py, PyString> {
    slots[i]
        .name
        .get_or_insert_with(|| PyString::intern(py, KNOWN[i].0).unbind())
        .bind(py)
        .clone()
}

/// The native strings of the meta-variable `name` and its `value`, and the index of `name`
/// in [`KNOWN`].
fn strings<'py>(
    py: Python<'py>,
    slots: &mut [Slot],
    name: &[u8],
    value: &[u8],
    hint: usize,
) -> (Option<usize>, Bound<'py, PyString>, Bound<'py, PyString>) {
    let known = match KNOWN.get(hint) {
        Some((known, ..)) if known.as_bytes() == name => Some(hint),
        _ => KNOWN
            .iter()
            .position(|(known, ..)| known.as_bytes() == name),
    };
    let name = match known {
        Some(i) => known_name(py, slots, i),
        None => latin1(py, name),
    };
    let value = match known.filter(|&i| KNOWN[i].1).map(|i| &mut slots[i]) {
        _ if value.is_empty() => intern!(py, "").clone(),
        Some(Slot {
            last: Some((bytes, string)),
            ..
        }) if **bytes == *value => string.bind(py).clone(),
        Some(slot) => {
            let string = latin1(py, value);
            slot.last = Some((value.into(), string.clone().unbind()));
            string
        }
        None => latin1(py, value),
    };
    (known, name, value)
}

/// The dict each environ dict starts as a copy of: the keys nearly every request has (the
/// usual meta-variables of [`KNOWN`], the `wsgi.*` keys and `wsgi.input_terminated`).
/// Copying it gives a dict whose table is already big enough and whose keys are already
/// hashed: filling it in replaces values, where building it key by key would grow the table
/// three times. The meta-variables, `wsgi.input` and `wsgi.errors` are `None` until set; the
/// other `wsgi.*` keys hold the values of [`TEMPLATE_WSGI`] (a request that differs sets its
/// own), and `wsgi.input_terminated` is true (removed for a body with a length).
fn template<'py>(py: Python<'py>, slots: &mut [Slot]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for i in (0..KNOWN.len()).filter(|&i| KNOWN[i].2) {
        dict.set_item(known_name(py, slots, i), py.None())?;
    }
    for key in WSGI_KEYS {
        dict.set_item(PyString::intern(py, key), py.None())?;
    }
    let (multithread, multiprocess, run_once) = TEMPLATE_WSGI;
    dict.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
    dict.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    dict.set_item(intern!(py, "wsgi.multithread"), multithread)?;
    dict.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
    dict.set_item(intern!(py, "wsgi.run_once"), run_once)?;
    dict.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    dict.set_item(
        intern!(py, "wsgi.file_wrapper"),
        py.get_type::<FileWrapper>(),
    )?;
    Ok(dict)
}

/// `wsgi.multithread`, `wsgi.multiprocess` and `wsgi.run_once` in the template: those of
/// [`AppService`](crate::service::AppService), the way a `WsgiApp` is served.
const TEMPLATE_WSGI: (bool, bool, bool) = (true, false, false);

/// The environ dict of a request: the meta-variables as native strings, then the `wsgi.*`
/// keys, true to the deployment the [`Environ`] describes. Also returns its `wsgi.errors`
/// stream, which the server flushes when the request is over.
pub(crate) fn environ_dict<'py>(
    py: Python<'py>,
    environ: &Environ,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, WsgiErrors>)> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let dict = with_slots(|slots| -> PyResult<_> {
        let dict = TEMPLATE
            .get_or_try_init(py, || template(py, slots).map(Bound::unbind))?
            .bind(py)
            .copy()?;
        let mut set = 0u64;
        let mut hint = 0;
        for (name, value) in environ.iter() {
            let (i, name, value) = strings(py, slots, name, value, hint);
            if let Some(i) = i {
                set |= 1 << i;
                hint = i + 1;
            }
            dict.set_item(name, value)?;
        }
        // The usual meta-variables this environ lacks are not left as None.
        for i in (0..KNOWN.len()).filter(|&i| KNOWN[i].2 && set & (1 << i) == 0) {
            dict.del_item(known_name(py, slots, i))?;
        }
        Ok(dict)
    })?;
    let scheme = environ.url_scheme().as_str();
    if scheme != "http" {
        let scheme = match scheme {
            "https" => intern!(py, "https").clone(),
            other => PyString::new(py, other),
        };
        dict.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    }
    dict.set_item(
        intern!(py, "wsgi.input"),
        Bound::new(
            py,
            WsgiInput {
                input: environ.input().clone(),
            },
        )?,
    )?;
    let errors = Bound::new(
        py,
        WsgiErrors {
            errors: environ.errors().clone(),
            line: Mutex::new(String::new()),
        },
    )?;
    dict.set_item(intern!(py, "wsgi.errors"), &errors)?;
    // Only the flags that differ from the template's (`towergate wsgi --workers` sets
    // `wsgi.multiprocess` alone, on every request).
    let (multithread, multiprocess, run_once) = TEMPLATE_WSGI;
    if environ.multithread() != multithread {
        dict.set_item(intern!(py, "wsgi.multithread"), environ.multithread())?;
    }
    if environ.multiprocess() != multiprocess {
        dict.set_item(intern!(py, "wsgi.multiprocess"), environ.multiprocess())?;
    }
    if environ.run_once() != run_once {
        dict.set_item(intern!(py, "wsgi.run_once"), environ.run_once())?;
    }
    // mod_wsgi's key: without CONTENT_LENGTH (a chunked body), the app may read to the end
    // of the input, which ends where the body does (true in the template). With a length,
    // apps read that many bytes.
    if environ
        .get("CONTENT_LENGTH")
        .is_some_and(|length| !length.is_empty())
    {
        dict.del_item(intern!(py, "wsgi.input_terminated"))?;
    }
    Ok((dict, errors))
}

/// `size` as a read limit: `None` and negative sizes mean "all".
fn limit(size: Option<isize>) -> usize {
    size.and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX)
}

fn io_error(e: crate::BoxError) -> PyErr {
    PyOSError::new_err(format!("wsgi.input: {e}"))
}

/// Runs a read of the input to its end: at once when the bytes are already there, else
/// with the GIL released while it waits (other Python threads run meanwhile). Letting go of
/// the GIL costs a hand-over to another thread, so it is done only when there is a wait.
fn wait<F: Future + Send>(py: Python<'_>, read: F) -> F::Output
where
    F::Output: Send,
{
    let mut read = std::pin::pin!(read);
    if let Poll::Ready(output) = read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return output;
    }
    py.detach(|| block_on(read))
}

/// `wsgi.input`: the request body, streamed. Reads release the GIL while they wait.
#[pyclass(frozen, module = "towergate", name = "Input")]
pub(crate) struct WsgiInput {
    input: Input,
}

#[pymethods]
impl WsgiInput {
    /// `read(size=-1)`: `size` bytes (fewer only at the end of the body), or the rest of
    /// the body.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = wait(py, self.input.read_full(limit(size))).map_err(io_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// `readline(size=-1)`: one line, up to and including `\n`, or at most `size` bytes.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let line = wait(py, self.input.read_line(limit(size))).map_err(io_error)?;
        Ok(PyBytes::new(py, &line))
    }

    /// `readlines(hint=-1)`: the remaining lines, stopping once `hint` bytes were read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint);
        let lines = PyList::empty(py);
        let mut total = 0usize;
        loop {
            let line = self.readline(py, None)?;
            if line.as_bytes().is_empty() {
                return Ok(lines);
            }
            total = total.saturating_add(line.as_bytes().len());
            lines.append(line)?;
            if total >= hint {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok(Some(line).filter(|l| !l.as_bytes().is_empty()))
    }
}

/// `wsgi.errors`: a text stream whose lines go to the environ's [`Errors`] sink (by default
/// the log).
#[pyclass(frozen, module = "towergate", name = "Errors")]
pub(crate) struct WsgiErrors {
    errors: Errors,
    /// The text written since the last complete line.
    line: Mutex<String>,
}

#[pymethods]
impl WsgiErrors {
    /// `write(str)`: complete lines are passed on at once, the rest on the next newline or
    /// `flush()`.
    fn write(&self, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("wsgi.errors.write() argument must be str"))?
            .to_str()?;
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        line.push_str(text);
        if let Some(end) = line.rfind('\n') {
            let rest = line.split_off(end + 1);
            self.errors.write(line.as_bytes());
            *line = rest;
        }
        Ok(())
    }

    /// `writelines(seq)`.
    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// `flush()`: a line not ended yet is written as it is.
    pub(crate) fn flush(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if !line.is_empty() {
            line.push('\n');
            self.errors.write(line.as_bytes());
            line.clear();
        }
        self.errors.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_becomes_one_latin1_character_and_back() {
        Python::initialize();
        Python::attach(|py| {
            let bytes: Vec<u8> = (0..=255).collect();
            let text = latin1(py, &bytes);
            assert_eq!(text.to_str().unwrap().chars().count(), 256);
            let back: Vec<u8> = text
                .call_method1("encode", ("latin-1",))
                .unwrap()
                .extract()
                .unwrap();
            assert_eq!(back, bytes);
            assert_eq!(from_latin1(text.as_any(), "value").unwrap(), bytes);
        });
    }

    #[test]
    fn characters_beyond_latin1_and_non_strings_are_refused() {
        Python::initialize();
        Python::attach(|py| {
            let euro = PyString::new(py, "5 €");
            let err = from_latin1(euro.as_any(), "a header value").unwrap_err();
            assert_eq!(
                err.to_string(),
                "TypeError: a header value must contain latin-1 characters only (PEP 3333): \"5 €\""
            );
            let bytes = PyBytes::new(py, b"200 OK");
            let err = from_latin1(bytes.as_any(), "the status").unwrap_err();
            assert_eq!(
                err.to_string(),
                "TypeError: the status must be of type str (got b'200 OK')"
            );
        });
    }

    #[test]
    fn environ_dict_has_the_gateway_keys() {
        let mut environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "3")]);
        environ.set_multithread(true);
        environ.set_run_once(true);
        Python::initialize();
        Python::attach(|py| {
            let (dict, _) = environ_dict(py, &environ).unwrap();
            let get = |k: &str| dict.get_item(k).unwrap().unwrap();
            assert_eq!(get("REQUEST_METHOD").extract::<String>().unwrap(), "GET");
            assert_eq!(get("wsgi.version").extract::<(u8, u8)>().unwrap(), (1, 0));
            assert_eq!(get("wsgi.url_scheme").extract::<String>().unwrap(), "http");
            assert!(get("wsgi.multithread").extract::<bool>().unwrap());
            assert!(!get("wsgi.multiprocess").extract::<bool>().unwrap());
            assert!(get("wsgi.run_once").extract::<bool>().unwrap());
            // A body with a length: read CONTENT_LENGTH bytes, not to the end.
            assert!(dict.get_item("wsgi.input_terminated").unwrap().is_none());
            // Exactly the environ's variables and the wsgi.* keys: none of the usual
            // variables it lacks is left over from the template.
            let mut keys: Vec<String> = dict.keys().extract().unwrap();
            keys.sort();
            let mut expected: Vec<String> = ["CONTENT_LENGTH", "REQUEST_METHOD"]
                .iter()
                .chain(WSGI_KEYS.iter())
                .map(|k| k.to_string())
                .collect();
            expected.sort();
            assert_eq!(keys, expected);
        });
    }

    #[test]
    fn the_template_s_wsgi_values_give_way_to_the_request_s() {
        Python::initialize();
        Python::attach(|py| {
            // wsgi.url_scheme and the three deployment flags of a request's dict.
            let deployment = |environ: &Environ| {
                let (dict, _) = environ_dict(py, environ).unwrap();
                let get = |k: &str| dict.get_item(k).unwrap().unwrap();
                let scheme = get("wsgi.url_scheme").extract::<String>().unwrap();
                let flags = ["wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]
                    .map(|k| get(k).extract::<bool>().unwrap());
                let terminated = get("wsgi.input_terminated").extract::<bool>().unwrap();
                assert!(get("wsgi.file_wrapper").is(py.get_type::<FileWrapper>()));
                (scheme, flags, terminated)
            };
            // The template's values: AppService's flags, http, no body length.
            let mut environ = Environ::from_vars([("REQUEST_METHOD", "GET")]);
            environ.set_multithread(true);
            assert_eq!(
                deployment(&environ),
                ("http".to_owned(), [true, false, false], true)
            );
            // Another deployment's: each key is the request's own.
            let mut environ = Environ::from_vars([("REQUEST_METHOD", "GET")]);
            environ.set_url_scheme(http::uri::Scheme::HTTPS);
            environ.set_multiprocess(true);
            assert_eq!(
                deployment(&environ),
                ("https".to_owned(), [false, true, false], true)
            );
            // A `towergate wsgi --workers` worker's: only wsgi.multiprocess differs.
            let mut environ = Environ::from_vars([("REQUEST_METHOD", "GET")]);
            environ.set_multithread(true);
            environ.set_multiprocess(true);
            assert_eq!(
                deployment(&environ),
                ("http".to_owned(), [true, true, false], true)
            );
            // The template itself is untouched.
            let environ = Environ::from_vars([("REQUEST_METHOD", "GET")]);
            assert_eq!(
                deployment(&environ),
                ("http".to_owned(), [false, false, false], true)
            );
        });
    }

    #[test]
    fn kept_strings_follow_each_request_s_values() {
        Python::initialize();
        let requests = [
            [
                ("REQUEST_METHOD", &b"GET"[..]),
                ("HTTP_HOST", b"a.example"),
                ("HTTP_X_ONE", b"1"),
            ],
            [
                ("REQUEST_METHOD", b"POST"),
                ("HTTP_HOST", b"caf\xe9.example"),
                ("HTTP_X_ONE", b""),
            ],
            [
                ("REQUEST_METHOD", b"GET"),
                ("HTTP_HOST", b"a.example"),
                ("HTTP_X_ONE", b"2"),
            ],
        ];
        Python::attach(|py| {
            for vars in requests {
                let environ = Environ::from_vars(vars);
                let (dict, _) = environ_dict(py, &environ).unwrap();
                for (name, value) in vars {
                    let got = dict.get_item(name).unwrap().unwrap();
                    let bytes = from_latin1(&got, name).unwrap();
                    assert_eq!(bytes, value, "{name}");
                }
            }
        });
    }
}
