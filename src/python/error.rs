//! Python exceptions as Rust errors, with their tracebacks.

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::PyTraceback;

/// A Python exception raised by an app: its `Display` is the formatted traceback, as
/// `traceback.format_exception` writes it, so the log line that reports the failure carries
/// it.
#[derive(Debug)]
pub(crate) struct PythonError {
    text: String,
}

impl PythonError {
    pub(crate) fn from_err(py: Python<'_>, err: &PyErr) -> Self {
        PythonError {
            text: format_exception(py, err),
        }
    }
}

impl fmt::Display for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for PythonError {}

/// The traceback and the exception, as Python prints them (without the final newline).
pub(crate) fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let traceback = py.import("traceback")?;
        let lines = traceback.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    })();
    match formatted {
        Ok(text) => text.trim_end().to_owned(),
        Err(_) => {
            let traceback = err
                .traceback(py)
                .and_then(|t: Bound<'_, PyTraceback>| t.format().ok())
                .unwrap_or_default();
            format!("{traceback}{err}")
        }
    }
}

/// A WSGI app could not be loaded: the module failed to import, the attribute is missing or
/// not callable, or the interpreter could not be set up.
///
/// `Display` gives the reason in one line; [`traceback`](Self::traceback) the Python
/// traceback, when there is one.
#[derive(Debug)]
pub struct ImportError {
    message: String,
    traceback: Option<String>,
}

impl ImportError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ImportError {
            message: message.into(),
            traceback: None,
        }
    }

    pub(crate) fn python(py: Python<'_>, context: impl fmt::Display, err: &PyErr) -> Self {
        ImportError {
            message: format!("{context}: {err}"),
            traceback: Some(format_exception(py, err)),
        }
    }

    /// The Python traceback of the failure, if Python raised it.
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}
