//! Python chat messages (dicts in the wire shape) to sluice messages, and sluice
//! results to the dicts the command line prints.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use sluice_core::{Message, Role, ToolCall};
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

/// A string field of a message dict: `None` when absent or `None`.
fn optional_str(
    value: Option<Bound<'_, PyAny>>,
    path: impl FnOnce() -> String,
) -> Result<Option<String>, LineError> {
    match value {
        Some(value) if !value.is_none() => match value.cast::<PyString>() {
            // The one way a `str` is not UTF-8.
            Ok(text) => utf8(text).map(|t| Some(t.to_owned())).map_err(|_| {
                invalid(
                    &path(),
                    "not text: it holds a lone UTF-16 surrogate such as \\ud800; fix or remove it",
                )
            }),
            Err(_) => Err(invalid(
                &path(),
                format!("expected a string, got {}", type_name(&value)),
            )),
        },
        _ => Ok(None),
    }
}

/// One message dict in the wire shape: `role`, `content` (a string; `None` or
/// absent is empty), and for tool use `toolCalls`/`tool_calls` and
/// `toolCallId`/`tool_call_id`. Other keys are ignored.
pub fn message<'py>(item: &Bound<'py, PyAny>, index: usize) -> Result<Message, LineError> {
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
    let get = |key: &Bound<'py, PyString>| {
        dict.get_item(key)
            .map_err(|e| invalid(&at(&key.to_string_lossy()), e))
    };
    let role = optional_str(get(intern!(py, "role"))?, || at("role"))?
        .ok_or_else(|| invalid(&at("role"), "missing"))?;
    let role: Role = role.parse().map_err(|e| invalid(&at("role"), e))?;
    let content = get(intern!(py, "content"))?;
    let keys_read = 1 + usize::from(content.is_some());
    let mut message = Message::new(
        role,
        optional_str(content, || at("content"))?.unwrap_or_default(),
    );
    if dict.len() == keys_read {
        return Ok(message); // role and content only: the common case
    }
    for key in [intern!(py, "toolCallId"), intern!(py, "tool_call_id")] {
        if let Some(id) = get(key)? {
            message.tool_call_id = optional_str(Some(id), || at(&key.to_string_lossy()))?;
            break;
        }
    }
    for key in [intern!(py, "toolCalls"), intern!(py, "tool_calls")] {
        if let Some(calls) = get(key)? {
            if !calls.is_none() {
                message.tool_calls = pythonize::depythonize::<Vec<ToolCall>>(&calls)
                    .map_err(|e| invalid(&at(&key.to_string_lossy()), e))?;
            }
            break;
        }
    }
    Ok(message)
}

/// Every message of `items`, or the first error.
pub fn messages(items: &[Bound<'_, PyAny>]) -> Result<Vec<Message>, LineError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(item, i))
        .collect()
}

/// The count object `sluice count` prints: each message's role, content and
/// count, the reply prefix's tokens and the total. The contents are the caller's
/// own `str` objects (`""` where a message had none).
pub fn counted<'py>(
    py: Python<'py>,
    items: &[Bound<'py, PyAny>],
    messages: &[Message],
    counts: &sluice_core::Counts,
) -> PyResult<Bound<'py, PyDict>> {
    let list = PyList::empty(py);
    for ((item, m), &count) in items.iter().zip(messages).zip(&counts.per_message) {
        let content = item
            .get_item(intern!(py, "content"))
            .ok()
            .filter(|c| c.is_instance_of::<PyString>())
            .unwrap_or_else(|| intern!(py, "").clone().into_any());
        let d = PyDict::new(py);
        d.set_item(intern!(py, "role"), PyString::intern(py, m.role.as_str()))?;
        d.set_item(intern!(py, "content"), content)?;
        d.set_item(intern!(py, "count"), count)?;
        list.append(d)?;
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
