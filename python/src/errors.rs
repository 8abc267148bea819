//! sluice errors as Python exceptions: each code has its class in
//! `sluice.errors` (all subclasses of `sluice.SluiceError`, with `code` and
//! `message` attributes).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use sluice_pipeline::LineError;

/// The exception for `error`: `sluice.errors.from_code(code, message)`.
pub fn to_py(py: Python<'_>, error: LineError) -> PyErr {
    static FROM_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let made = FROM_CODE
        .import(py, "sluice.errors", "from_code")
        .and_then(|from_code| from_code.call1((error.code, &error.message)));
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}

/// Converts a sluice error into the Python exception for its code.
pub trait IntoPyResult<T> {
    /// `Err` becomes the exception for its code.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T, E: Into<LineError>> IntoPyResult<T> for Result<T, E> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e.into()))
    }
}
