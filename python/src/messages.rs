//! Python chat messages (dicts in the wire shape) to sluice messages, and sluice
//! results to the dicts the command line prints.

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

/// A string field of a message dict: `None` when absent or `None`.
fn optional_str(
    dict: &Bound<'_, PyDict>,
    keys: &[&str],
    path: impl Fn(&str) -> String,
) -> Result<Option<String>, LineError> {
    for key in keys {
        let Some(value) = dict.get_item(key).map_err(|e| invalid(&path(key), e))? else {
            continue;
        };
        if value.is_none() {
            return Ok(None);
        }
        return value.extract::<String>().map(Some).map_err(|_| {
            invalid(
                &path(key),
                format!("expected a string, got {}", type_name(&value)),
            )
        });
    }
    Ok(None)
}

/// One message dict in the wire shape: `role`, `content` (a string; `None` or
/// absent is empty), and for tool use `toolCalls`/`tool_calls` and
/// `toolCallId`/`tool_call_id`. Other keys are ignored.
pub fn message(item: &Bound<'_, PyAny>, index: usize) -> Result<Message, LineError> {
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
    let role = optional_str(dict, &["role"], at)?.ok_or_else(|| invalid(&at("role"), "missing"))?;
    let role: Role = role.parse().map_err(|e| invalid(&at("role"), e))?;
    let content = optional_str(dict, &["content"], at)?.unwrap_or_default();
    let mut message = Message::new(role, content);
    message.tool_call_id = optional_str(dict, &["toolCallId", "tool_call_id"], at)?;
    for key in ["toolCalls", "tool_calls"] {
        if let Some(calls) = dict.get_item(key).map_err(|e| invalid(&at(key), e))? {
            if !calls.is_none() {
                message.tool_calls = pythonize::depythonize::<Vec<ToolCall>>(&calls)
                    .map_err(|e| invalid(&at(key), e))?;
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
/// count, the reply prefix's tokens and the total.
pub fn counted<'py>(
    py: Python<'py>,
    messages: &[Message],
    counts: &sluice_core::Counts,
) -> PyResult<Bound<'py, PyDict>> {
    let list = PyList::empty(py);
    for (m, &count) in messages.iter().zip(&counts.per_message) {
        let d = PyDict::new(py);
        d.set_item("role", m.role.as_str())?;
        d.set_item("content", &m.content)?;
        d.set_item("count", count)?;
        list.append(d)?;
    }
    let out = PyDict::new(py);
    out.set_item("messages", list)?;
    out.set_item("reply", counts.reply)?;
    out.set_item("total", counts.total)?;
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
    out.set_item("messages", kept)?;
    out.set_item("report", report(py, trim.report())?)?;
    Ok(out)
}

/// A trim report as the command line writes it (camelCase keys).
pub fn report<'py>(
    py: Python<'py>,
    report: &sluice_core::TrimReport,
) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, report).map_err(PyErr::from)
}
