//! [`Environ`]: the CGI meta-variables of one request, as bytes, in order.
//!
//! An `Environ` is what RFC 3875 §4.1 calls the request meta-variables, plus the gateway keys
//! of PEP 3333 (`url_scheme`, `multithread`, `multiprocess`, `run_once`, `file_wrapper`, and
//! the streams [`Input`] and [`Errors`]). Values are bytes:
//! CGI values need not be UTF-8, and nothing here ever panics on one that is not.
//!
//! It converts both ways:
//!
//! - request → environ with [`EnvironBuilder`] (the side that runs a program or an app:
//!   RFC 3875 §4.1 complete, see the builder for every variable);
//! - environ → request with [`Environ::into_request`] (the side inside a CGI program).
//!
//! ```
//! use towergate::Environ;
//!
//! let environ = Environ::from_vars([
//!     ("REQUEST_METHOD", "GET"),
//!     ("SCRIPT_NAME", "/cgi-bin/app"),
//!     ("PATH_INFO", "/users/7"),
//!     ("QUERY_STRING", "full=1"),
//!     ("SERVER_PROTOCOL", "HTTP/1.1"),
//!     ("HTTP_ACCEPT", "text/plain"),
//! ]);
//! let request = environ.into_request().unwrap();
//! assert_eq!(request.method(), "GET");
//! assert_eq!(request.uri(), "/users/7?full=1");
//! assert_eq!(request.version(), http::Version::HTTP_11);
//! assert_eq!(request.headers()["accept"], "text/plain");
//! ```
//!
//! The `wsgiref.util` helpers live here too: [`guess_scheme`], [`application_uri`],
//! [`request_uri`], [`shift_path_info`] and [`setup_testing_defaults`].

mod from_request;
mod streams;
mod to_request;
mod util;

use std::fmt;

use bytes::Bytes;

pub use from_request::EnvironBuilder;
pub use streams::{Errors, Input};
#[cfg(feature = "gateway")]
pub(crate) use streams::{block_on, block_on_until};
#[cfg(feature = "cgi")]
pub(crate) use to_request::{HeaderLimits, parse_content_length};
pub use to_request::{InvalidEnviron, MAX_HEADER_BYTES, MAX_HEADERS};
pub use util::{
    application_uri, guess_scheme, is_truthy, request_uri, setup_testing_defaults, shift_path_info,
};

/// The meta-variables of one request, as an ordered, lossless map of bytes to bytes, plus the
/// gateway keys of PEP 3333.
///
/// Keys are unique: inserting a key that is present replaces its value in place, so the
/// order is the order in which keys were first inserted. Lookups compare keys byte for byte
/// (meta-variable names are case-sensitive, RFC 3875 §4.1).
///
/// ```
/// use towergate::Environ;
///
/// let mut environ = Environ::new();
/// environ.insert("REQUEST_METHOD", "POST");
/// environ.insert("PATH_INFO", &b"/caf\xe9"[..]); // not UTF-8, kept as is
/// environ.insert("REQUEST_METHOD", "PUT");
///
/// assert_eq!(environ.get("REQUEST_METHOD"), Some(&b"PUT"[..]));
/// assert_eq!(environ.get_str("PATH_INFO"), None); // not valid UTF-8
/// assert_eq!(environ.get("PATH_INFO"), Some(&b"/caf\xe9"[..]));
/// let keys: Vec<_> = environ.iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, [&b"REQUEST_METHOD"[..], b"PATH_INFO"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environ {
    vars: Vec<(Bytes, Bytes)>,
    gateway: GatewayKeys,
}

/// The scalar gateway keys (PEP 3333 "environ Variables").
#[derive(Clone, Debug, PartialEq, Eq)]
struct GatewayKeys {
    url_scheme: http::uri::Scheme,
    multithread: bool,
    multiprocess: bool,
    run_once: bool,
    file_wrapper: bool,
    input: Input,
    errors: Errors,
    file_slot: Option<FileSlot>,
}

/// Where a file wrapper made by [`Environ::wrap_file`] hands its file to a server that sends
/// files whole (PEP 3333 "Optional Platform-Specific File Handling": a server recognises its
/// own `wsgi.file_wrapper`).
#[derive(Clone, Default)]
pub(crate) struct FileSlot(std::sync::Arc<std::sync::Mutex<Option<(std::fs::File, u64)>>>);

impl FileSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::fs::File, u64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over `len` bytes of `file`, from its current position.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn put(&self, file: std::fs::File, len: u64) {
        *self.lock() = Some((file, len));
    }

    /// The file handed over, if any.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn take(&self) -> Option<(std::fs::File, u64)> {
        self.lock().take()
    }
}

impl PartialEq for FileSlot {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FileSlot {}

impl fmt::Debug for FileSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSlot").finish_non_exhaustive()
    }
}

impl Default for GatewayKeys {
    fn default() -> Self {
        GatewayKeys {
            url_scheme: http::uri::Scheme::HTTP,
            multithread: false,
            multiprocess: false,
            run_once: false,
            file_wrapper: false,
            input: Input::empty(),
            errors: Errors::log(),
            file_slot: None,
        }
    }
}

impl Environ {
    /// An empty environ: no meta-variables, `url_scheme` `http`, and `multithread`,
    /// `multiprocess` and `run_once` all false.
    pub fn new() -> Self {
        Environ::default()
    }

    /// An empty environ with room for `capacity` meta-variables.
    pub fn with_capacity(capacity: usize) -> Self {
        Environ {
            vars: Vec::with_capacity(capacity),
            gateway: GatewayKeys::default(),
        }
    }

    /// The environment of this process, read with [`std::env::vars_os`] (never
    /// `std::env::vars`, which panics on values that are not UTF-8). Values keep their exact
    /// bytes on Unix. `url_scheme` is set with [`guess_scheme`].
    pub fn from_env() -> Self {
        Environ::from_vars(
            std::env::vars_os().map(|(k, v)| (k.into_encoded_bytes(), v.into_encoded_bytes())),
        )
    }

    /// An environ from `(name, value)` pairs, in order; a repeated name keeps the last
    /// value, at the place of the first. `url_scheme` is set with [`guess_scheme`].
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Bytes>,
        V: Into<Bytes>,
    {
        let mut environ = Environ::new();
        environ.extend(vars);
        environ.guess_url_scheme();
        environ
    }

    /// Sets `url_scheme` with [`guess_scheme`]: https when `HTTPS` says so.
    pub(crate) fn guess_url_scheme(&mut self) {
        self.gateway.url_scheme = if guess_scheme(self) == "https" {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
    }

    /// The value of `key`, if it is set.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = key.as_ref();
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of `key`, if it is set and valid UTF-8.
    pub fn get_str(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value of `key` as shared [`Bytes`], if it is set.
    pub fn get_bytes(&self, key: impl AsRef<[u8]>) -> Option<Bytes> {
        let key = key.as_ref();
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Returns true when `key` is set (possibly to an empty value).
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value` and returns the previous value. A key that is present keeps its
    /// place; a new key goes last.
    pub fn insert(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Option<Bytes> {
        let key = key.into();
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.vars.push((key, value));
                None
            }
        }
    }

    #[cfg(feature = "gateway")]
    /// The meta-variables as shared bytes, in order.
    pub(crate) fn vars(&self) -> &[(Bytes, Bytes)] {
        &self.vars
    }

    /// Appends `key`, which the caller knows is not set, without looking for it (the
    /// request → environ conversion, whose keys are distinct by construction).
    pub(crate) fn push_unchecked(&mut self, key: Bytes, value: Bytes) {
        debug_assert!(
            !self.contains_key(&key),
            "{:?} is set already",
            String::from_utf8_lossy(&key)
        );
        self.vars.push((key, value));
    }

    /// Sets `key` to `value` unless it is set already (`dict.setdefault`); returns the value
    /// in force.
    pub fn set_default(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &[u8] {
        let key = key.into();
        let index = match self.vars.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                self.vars.push((key, value.into()));
                self.vars.len() - 1
            }
        };
        &self.vars[index].1
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Option<Bytes> {
        let key = key.as_ref();
        let index = self.vars.iter().position(|(k, _)| k == key)?;
        Some(self.vars.remove(index).1)
    }

    /// The meta-variables in order, as `(name, value)` byte slices.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// How many meta-variables are set.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Returns true when no meta-variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Removes every meta-variable whose name `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        self.vars.retain(|(k, v)| keep(k, v));
    }

    /// `wsgi.url_scheme`: `http` or `https`. Defaults to `http`; the constructors that read
    /// meta-variables derive it from `HTTPS` ([`guess_scheme`]).
    pub fn url_scheme(&self) -> &http::uri::Scheme {
        &self.gateway.url_scheme
    }

    /// Sets `wsgi.url_scheme`.
    pub fn set_url_scheme(&mut self, scheme: http::uri::Scheme) {
        self.gateway.url_scheme = scheme;
    }

    /// `wsgi.multithread`: whether the app may be called concurrently from other threads of
    /// the same process. Defaults to false.
    pub fn multithread(&self) -> bool {
        self.gateway.multithread
    }

    /// Sets `wsgi.multithread`.
    pub fn set_multithread(&mut self, value: bool) {
        self.gateway.multithread = value;
    }

    /// `wsgi.multiprocess`: whether other processes may run the same app at the same time.
    /// Defaults to false.
    pub fn multiprocess(&self) -> bool {
        self.gateway.multiprocess
    }

    /// Sets `wsgi.multiprocess`.
    pub fn set_multiprocess(&mut self, value: bool) {
        self.gateway.multiprocess = value;
    }

    /// `wsgi.run_once`: whether the process serves this one request only (true under CGI).
    /// Defaults to false.
    pub fn run_once(&self) -> bool {
        self.gateway.run_once
    }

    /// Sets `wsgi.run_once`.
    pub fn set_run_once(&mut self, value: bool) {
        self.gateway.run_once = value;
    }

    /// `wsgi.input`: the request body (PEP 3333 "Input and Error Streams"). Defaults to an
    /// empty input.
    pub fn input(&self) -> &Input {
        &self.gateway.input
    }

    /// Sets `wsgi.input`.
    pub fn set_input(&mut self, input: Input) {
        self.gateway.input = input;
    }

    /// `wsgi.errors`: where the app writes error output. Defaults to [`Errors::log`].
    pub fn errors(&self) -> &Errors {
        &self.gateway.errors
    }

    /// Sets `wsgi.errors`.
    pub fn set_errors(&mut self, errors: Errors) {
        self.gateway.errors = errors;
    }

    /// `wsgi.file_wrapper`: whether the server sends a `FileWrapper` body efficiently and
    /// takes its length as `Content-Length` (PEP 3333 "Optional Platform-Specific File
    /// Handling"). Defaults to false.
    pub fn file_wrapper(&self) -> bool {
        self.gateway.file_wrapper
    }

    /// Sets `wsgi.file_wrapper`.
    pub fn set_file_wrapper(&mut self, value: bool) {
        self.gateway.file_wrapper = value;
    }

    /// `environ['wsgi.file_wrapper'](file)`: `file`, from its current position to its end,
    /// as a body. When the server that made this environ sends files whole (a
    /// [`Handler`](crate::handler::Handler) with [`file_wrapper`](Self::file_wrapper) true,
    /// such as a CGI program's), the file goes to its transport in one piece
    /// ([`Transport::send_file`](crate::handler::Transport::send_file): `sendfile`/`splice` on
    /// Linux) with its length as `Content-Length`; elsewhere it is read block by block, like
    /// [`FileWrapper::new`](crate::gateway::FileWrapper::new). Fails when the file's length or
    /// position cannot be read.
    #[cfg(feature = "gateway")]
    pub fn wrap_file(&self, file: std::fs::File) -> std::io::Result<crate::gateway::FileWrapper> {
        let wrapper = crate::gateway::FileWrapper::new(file)?;
        Ok(match &self.gateway.file_slot {
            Some(slot) if self.gateway.file_wrapper => wrapper.with_slot(slot.clone()),
            _ => wrapper,
        })
    }

    /// The slot where a wrapped file is handed to this environ's server.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn set_file_slot(&mut self, slot: FileSlot) {
        self.gateway.file_slot = Some(slot);
    }

    /// The gateway keys as `(name, value)` text pairs, in PEP 3333's spelling
    /// (`wsgi.url_scheme`, `wsgi.multithread`, …), for listings and debugging.
    pub fn gateway_keys(&self) -> [(&'static str, &str); 4] {
        let flag = |b: bool| if b { "true" } else { "false" };
        [
            ("wsgi.multiprocess", flag(self.gateway.multiprocess)),
            ("wsgi.multithread", flag(self.gateway.multithread)),
            ("wsgi.run_once", flag(self.gateway.run_once)),
            ("wsgi.url_scheme", self.gateway.url_scheme.as_str()),
        ]
    }
}

impl fmt::Debug for Environ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Lossy<'a>(&'a [u8]);
        impl fmt::Debug for Lossy<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
            }
        }
        let mut map = f.debug_map();
        for (k, v) in self.iter() {
            map.entry(&Lossy(k), &Lossy(v));
        }
        for (k, v) in self.gateway_keys() {
            map.entry(&k, &v);
        }
        map.finish()
    }
}

impl<K: Into<Bytes>, V: Into<Bytes>> Extend<(K, V)> for Environ {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        // Past a few dozen variables, an index keeps this linear: a hostile environment of
        // tens of thousands of variables must not cost quadratic time to read.
        let mut index: Option<std::collections::HashMap<Bytes, usize>> = None;
        for (k, v) in iter {
            if index.is_none() && self.vars.len() >= 32 {
                index = Some(
                    self.vars
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            let Some(index) = index.as_mut() else {
                self.insert(k, v);
                continue;
            };
            let (key, value) = (k.into(), v.into());
            match index.entry(key) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    if let Some(slot) = self.vars.get_mut(*at.get()) {
                        slot.1 = value;
                    }
                }
                std::collections::hash_map::Entry::Vacant(at) => {
                    self.vars.push((at.key().clone(), value));
                    at.insert(self.vars.len() - 1);
                }
            }
        }
    }
}

impl<K: Into<Bytes>, V: Into<Bytes>> FromIterator<(K, V)> for Environ {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Environ::from_vars(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_variables_keep_first_place_and_last_value() {
        let mut pairs: Vec<(String, String)> = (0..100)
            .map(|i| (format!("K{i}"), format!("{i}")))
            .collect();
        pairs.push(("K3".into(), "last".into()));
        pairs.push(("K99".into(), "last".into()));
        let environ = Environ::from_vars(pairs);
        assert_eq!(environ.len(), 100);
        assert_eq!(environ.get("K3"), Some(&b"last"[..]));
        assert_eq!(environ.get("K99"), Some(&b"last"[..]));
        let keys: Vec<_> = environ.iter().map(|(k, _)| k).take(4).collect();
        assert_eq!(keys, [&b"K0"[..], b"K1", b"K2", b"K3"]);
    }

    #[test]
    fn repeated_key_keeps_first_place_and_last_value() {
        let environ = Environ::from_vars([("A", "1"), ("B", "2"), ("A", "3")]);
        let pairs: Vec<_> = environ.iter().collect();
        assert_eq!(pairs, [(&b"A"[..], &b"3"[..]), (b"B", b"2")]);
    }

    #[test]
    fn from_vars_guesses_the_scheme() {
        assert_eq!(Environ::from_vars([("HTTPS", "ON")]).url_scheme(), "https");
        assert_eq!(Environ::from_vars([("HTTPS", "off")]).url_scheme(), "http");
    }

    #[test]
    fn set_default_keeps_an_existing_value() {
        let mut environ = Environ::from_vars([("A", "1")]);
        assert_eq!(environ.set_default("A", "2"), b"1");
        assert_eq!(environ.set_default("B", "2"), b"2");
        assert_eq!(environ.len(), 2);
    }

    #[test]
    fn remove_and_retain() {
        let mut environ = Environ::from_vars([("A", "1"), ("B", "2"), ("HTTP_X", "3")]);
        assert_eq!(environ.remove("A"), Some(Bytes::from_static(b"1")));
        assert_eq!(environ.remove("A"), None);
        environ.retain(|k, _| !k.starts_with(b"HTTP_"));
        assert_eq!(environ.iter().collect::<Vec<_>>(), [(&b"B"[..], &b"2"[..])]);
    }

    #[test]
    fn debug_shows_non_utf8_lossily() {
        let environ = Environ::from_vars([(&b"K"[..], &b"\xff"[..])]);
        let text = format!("{environ:?}");
        assert!(
            text.starts_with("{\"K\": \"\u{fffd}\", \"wsgi.multiprocess\": \"false\""),
            "{text}"
        );
    }
}
