//! Python chat messages (dicts in the wire shape) to sluice messages, and sluice
//! results to the dicts the command line prints.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use sluice_core::{Message, Role};
use sluice_pipeline::LineError;

/// An invalid-parameter error (`40001`) about the field at `path`.
pub fn invalid(path: &str, what: impl std::fmt::Display) -> LineError {
    LineError::new("40001", format!("invalid parameter: {path}: {what}"))
}

/// The Python type name of `value`, for error messages.
fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "object".to_string(), |n| n.to_string())
}

/// The items of a list or tuple of messages, or an error naming what came
/// instead.
pub fn items<'py>(messages: &Bound<'py, PyAny>) -> Result<Vec<Bound<'py, PyAny>>, LineError> {
    if messages.is_instance_of::<PyString>() || messages.is_instance_of::<PyDict>() {
        return Err(invalid(
            "messages",
            format!("expected a list of messages, got {}", type_name(messages)),
        ));
    }
    let iter = messages.try_iter().map_err(|_| {
        invalid(
            "messages",
            format!("expected a list of messages, got {}", type_name(messages)),
        )
    })?;
    iter.collect::<PyResult<Vec<_>>>()
        .map_err(|e| invalid("messages", e))
}

/// The UTF-8 text of a Python `str`, borrowed from the copy CPython keeps inside
/// the object.
///
/// `PyUnicode_AsUTF8AndSize` is in the stable ABI from Python 3.10, and exported
/// with the same signature by every CPython 3 before it, so the abi3-py39 wheel
/// can call it on 3.9 too (pyo3 offers it for abi3 builds only from 3.10). The
/// alternative, `PyUnicode_AsUTF8String`, encodes the text anew on every call:
/// for a history of Korean messages that was most of a trim (a 100-turn history
/// took 150 µs to encode, 310 µs to trim), where CPython encodes each `str` once
/// and re-trimming the same history encodes nothing.
fn utf8<'a>(text: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    unsafe extern "C" {
        fn PyUnicode_AsUTF8AndSize(
            unicode: *mut pyo3::ffi::PyObject,
            size: *mut pyo3::ffi::Py_ssize_t,
        ) -> *const std::ffi::c_char;
    }
    let mut size: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `text` is a live `str` (the GIL is held: we have a `Bound`). On
    // success the pointer is to `size` bytes of UTF-8 owned by the object, valid
    // while it lives, which `'a` guarantees; on failure it is null and an
    // exception is set (a lone surrogate).
    unsafe {
        let data = PyUnicode_AsUTF8AndSize(text.as_ptr(), &mut size);
        if data.is_null() {
            return Err(PyErr::fetch(text.py()));
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), size as usize);
        Ok(std::str::from_utf8_unchecked(bytes))
    }
}

/// One message dict in the wire shape, read as the command line reads a JSON
/// message: `role`, `content` (a string, `None` or text parts), `name`, and for
/// tool use `toolCalls`/`tool_calls` and `toolCallId`/`tool_call_id`. Other keys
/// are ignored.
pub fn message(item: &Bound<'_, PyAny>, index: usize) -> Result<Message, LineError> {
    let py = item.py();
    let at = |key: &str| format!("messages[{index}].{key}");
    let dict = item.cast::<PyDict>().map_err(|_| {
        invalid(
            &format!("messages[{index}]"),
            format!(
                "expected a dict with role and content, got {}",
                type_name(item)
            ),
        )
    })?;
    // The common case, read directly: a role and a string content, nothing else.
    if dict.len() == 2
        && let Ok(Some(role)) = dict.get_item(intern!(py, "role"))
        && let Ok(Some(content)) = dict.get_item(intern!(py, "content"))
        && let (Ok(role), Ok(content)) = (role.cast::<PyString>(), content.cast::<PyString>())
    {
        let role: Role = utf8(role)
            .unwrap_or_default()
            .parse()
            .map_err(|e| invalid(&at("role"), e))?;
        let content = utf8(content).map_err(|_| {
            invalid(
                &at("content"),
                "not text: it holds a lone UTF-16 surrogate such as \\ud800; fix or remove it",
            )
        })?;
        return Ok(Message::new(role, content));
    }
    // Anything else goes through the deserializer the command line uses, so that
    // a message means the same to both.
    let mut de = pythonize::Depythonizer::from_object(dict.as_any());
    serde_path_to_error::deserialize::<_, Message>(&mut de).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => format!("messages[{index}]"),
            path => at(&path),
        };
        invalid(&field, e.into_inner())
    })
}

/// Every message of `items`, or the first error.
pub fn messages(items: &[Bound<'_, PyAny>]) -> Result<Vec<Message>, LineError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(item, i))
        .collect()
}

/// The count object `sluice count` prints: each message as it came (a copy of
/// the caller's dict) with its `count` added, the reply prefix's tokens and the
/// total.
pub fn counted<'py>(
    py: Python<'py>,
    items: &[Bound<'py, PyAny>],
    counts: &sluice_core::Counts,
) -> PyResult<Bound<'py, PyDict>> {
    let list = PyList::empty(py);
    for (item, &count) in items.iter().zip(&counts.per_message) {
        let echoed = item.cast::<PyDict>()?.copy()?;
        echoed.set_item(intern!(py, "count"), count)?;
        list.append(echoed)?;
    }
    let out = PyDict::new(py);
    out.set_item(intern!(py, "messages"), list)?;
    out.set_item(intern!(py, "reply"), counts.reply)?;
    out.set_item(intern!(py, "total"), counts.total)?;
    Ok(out)
}

/// The object `sluice trim` prints: the caller's own message objects that are
/// kept, in order, and the report.
pub fn trimmed<'py>(
    py: Python<'py>,
    items: &[Bound<'py, PyAny>],
    trim: &sluice_core::Trim,
) -> PyResult<Bound<'py, PyDict>> {
    let kept = PyList::new(py, trim.kept_indices().map(|i| &items[i]))?;
    let out = PyDict::new(py);
    out.set_item(intern!(py, "messages"), kept)?;
    out.set_item(intern!(py, "report"), report(py, trim.report())?)?;
    Ok(out)
}

/// A trim report as the command line writes it (camelCase keys).
pub fn report<'py>(
    py: Python<'py>,
    report: &sluice_core::TrimReport,
) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, report).map_err(PyErr::from)
}
