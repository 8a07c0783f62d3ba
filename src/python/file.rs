//! `wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling").

use std::fs::File;
use std::io::{Seek, SeekFrom};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::gateway;

/// `environ["wsgi.file_wrapper"](filelike, block_size=8192)`.
///
/// Returned as the app's result, a wrapper around a real file (one with `fileno()`, a
/// regular file) is served by Rust from its own descriptor for the same file, from the
/// file's current position to its end, with its length as `Content-Length`: the bytes never
/// pass through Python. Anything else (a `BytesIO`, a wrapper that middleware hid inside
/// another iterable) is iterated like any result: `filelike.read(block_size)` until empty.
/// `close()` closes the file-like object, if it has a `close`.
#[pyclass(frozen, module = "towergate", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: isize) -> PyResult<Self> {
        let block_size = usize::try_from(block_size)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| PyValueError::new_err("block_size must be a positive integer"))?;
        Ok(FileWrapper {
            filelike,
            block_size,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.block_size,))?;
        Ok(Some(block).filter(|b| b.is_truthy().unwrap_or(false)))
    }

    /// Closes the file-like object.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if let Some(close) = filelike.getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}

/// The file behind a result, when it is a [`FileWrapper`] around a regular file: a Rust
/// handle of its own, at the Python file's position. `None` means "iterate it".
pub(crate) fn as_file(result: &Bound<'_, PyAny>) -> Option<gateway::FileWrapper> {
    let wrapper = result.cast::<FileWrapper>().ok()?.get();
    let filelike = wrapper.filelike.bind(result.py());
    let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
    // Python may hold buffered bytes it already read: its own position is the one to use.
    let position: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    let mut file = reopen(fd)?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    file.seek(SeekFrom::Start(position)).ok()?;
    gateway::FileWrapper::new(file)
        .ok()
        .map(|f| f.block_size(wrapper.block_size.max(64 * 1024)))
}

/// A new handle to the file open on descriptor `fd`, through the process's descriptor
/// directory (the crate forbids `unsafe`, which adopting a raw descriptor needs). On Linux
/// this opens the same file again (deleted files too); elsewhere `/dev/fd` duplicates the
/// descriptor.
fn reopen(fd: i32) -> Option<File> {
    if fd < 0 {
        return None;
    }
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    File::open(format!("{dir}/{fd}")).ok()
}
