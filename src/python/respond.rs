//! `start_response` and `write()` as Python callables (PEP 3333 "The start_response()
//! Callable", "The write() Callable"), bridged to [`StartResponse`] and [`Writer`].

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::environ::from_latin1;
use super::error::PythonError;
use crate::gateway::{StartResponse, Writer};

/// `start_response(status, response_headers, exc_info=None)`.
#[pyclass(frozen, module = "towergate", name = "StartResponse")]
pub(crate) struct StartResponseFn {
    pub(crate) start_response: StartResponse,
}

#[pymethods]
impl StartResponseFn {
    #[pyo3(signature = (status, response_headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WriteFn> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        // After output, a call with exc_info re-raises the app's error ("must raise").
        if let Some(exc_info) = exc_info {
            if self.start_response.is_head_sent() {
                return Err(reraise(exc_info));
            }
        }
        let status = from_latin1(status, "start_response: the status")?;
        let list = response_headers.cast::<PyList>().map_err(|_| {
            PyTypeError::new_err(
                "start_response: the headers must be a list of (name, value) tuples",
            )
        })?;
        // The names and values, then their bytes borrowed from Python's strings.
        let mut items = Vec::with_capacity(list.len());
        for item in list.iter() {
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "start_response: each header must be a (name, value) tuple, not {}",
                        item.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                    ))
                })?;
            items.push((pair.get_item(0)?, pair.get_item(1)?));
        }
        let headers = items
            .iter()
            .map(|(name, value)| {
                Ok((
                    from_latin1(name, "start_response: a header name")?,
                    from_latin1(value, "start_response: a header value")?,
                ))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let started = match exc_info {
            Some(exc_info) => {
                let error = PythonError::from_err(py, &reraise(exc_info));
                self.start_response
                    .start_with_error(status, headers, Box::new(error))
            }
            None => self
                .start_response
                .start(status, headers)
                .map_err(Into::into),
        };
        match started {
            Ok(writer) => Ok(WriteFn { writer }),
            Err(e) => Err(PyValueError::new_err(e.to_string())),
        }
    }
}

/// The exception of `exc_info`, `(type, value, traceback)`, to raise again.
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info.get_item(1) {
        Ok(value) if !value.is_none() => PyErr::from_value(value),
        _ => PyTypeError::new_err(
            "start_response: exc_info must be a (type, value, traceback) tuple",
        ),
    }
}

/// The `write(data)` callable `start_response` returns: the bytes go out at once, the GIL
/// released while the client is slow.
#[pyclass(frozen, module = "towergate", name = "Write")]
pub(crate) struct WriteFn {
    writer: Writer,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be a bytes instance"))?;
        let chunk = super::app::to_bytes(data);
        let writer = self.writer.clone();
        py.detach(move || writer.write(chunk))
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }
}
