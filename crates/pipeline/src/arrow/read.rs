//! Reading a batch's columns: strings of any Arrow string type, lists of
//! either offset size, the message structs (with tool calls) and an optional
//! integer column. A column of the wrong shape is a [`BatchError`] naming it; a
//! bad value in one row is that row's [`LineError`].

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, GenericListArray, Int32Array, Int64Array, LargeStringArray, ListArray,
    OffsetSizeTrait, RecordBatch, StringArray, StringViewArray, StructArray, UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::DataType;
use rayon::prelude::*;
use sluice_core::{Message, Role, ToolCall};

use super::BatchError;
use crate::LineError;

/// A `40001` error for a bad value at `path` of a row's messages.
fn invalid(path: &str, what: impl std::fmt::Display) -> LineError {
    LineError::new("40001", format!("invalid parameter: {path}: {what}"))
}

/// A string column of any Arrow string type.
pub(super) enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    pub(super) fn of(array: &'a dyn Array, name: &str) -> Result<Self, BatchError> {
        match array.data_type() {
            DataType::Utf8 => Ok(Self::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Self::Large(array.as_string::<i64>())),
            DataType::Utf8View => Ok(Self::View(array.as_string_view())),
            other => Err(BatchError::new(format!(
                "column {name} must hold strings, not {other}"
            ))),
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Self::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Self::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Self::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The `messages` column's structs: `role`, `content`, and optionally
/// `name`, `tool_call_id` (or `toolCallId`) and `tool_calls` (or `toolCalls`).
pub(super) struct MessageFields<'a> {
    values: &'a StructArray,
    role: Strings<'a>,
    content: Strings<'a>,
    name: Option<Strings<'a>>,
    tool_call_id: Option<Strings<'a>>,
    tool_calls: Option<ToolCalls<'a>>,
}

/// A `tool_calls` field: a list of structs with `id`, optionally `type`, and
/// `function`, a struct of `name` and `arguments` (a string holding JSON, as
/// OpenAI sends it).
struct ToolCalls<'a> {
    lists: Lists<'a>,
    id: Strings<'a>,
    kind: Option<Strings<'a>>,
    name: Strings<'a>,
    arguments: Option<Strings<'a>>,
}

impl<'a> ToolCalls<'a> {
    pub(super) fn of(array: &'a ArrayRef, column: &str) -> Result<Self, BatchError> {
        let shape = || {
            BatchError::new(format!(
                "column {column}: tool_calls must be a list of structs with id and function \
                 (a struct of name and arguments, a JSON string)"
            ))
        };
        let lists = Lists::of_array(array).ok_or_else(shape)?;
        let calls = lists.values().as_struct_opt().ok_or_else(shape)?;
        let function = calls
            .column_by_name("function")
            .and_then(|f| f.as_struct_opt())
            .ok_or_else(shape)?;
        let string = |array: Option<&'a ArrayRef>, name: &str| {
            array.map(|a| Strings::of(a.as_ref(), name)).transpose()
        };
        Ok(Self {
            id: string(calls.column_by_name("id"), "tool_calls.id")?.ok_or_else(shape)?,
            kind: string(calls.column_by_name("type"), "tool_calls.type")?,
            name: string(function.column_by_name("name"), "tool_calls.function.name")?
                .ok_or_else(shape)?,
            arguments: string(
                function.column_by_name("arguments"),
                "tool_calls.function.arguments",
            )?,
            lists,
        })
    }

    /// The calls of message `i` (none for a null list).
    pub(super) fn get(&self, i: usize) -> Vec<ToolCall> {
        self.lists.range(i).map_or_else(Vec::new, |range| {
            range
                .map(|c| {
                    // Absent arguments are JSON null, as when a request omits them.
                    let arguments = self.arguments.as_ref().and_then(|a| a.get(c));
                    let mut call = ToolCall::function(
                        self.id.get(c).unwrap_or_default(),
                        self.name.get(c).unwrap_or_default(),
                        arguments.map_or(serde_json::Value::Null, serde_json::Value::from),
                    );
                    if let Some(kind) = self.kind.as_ref().and_then(|k| k.get(c)) {
                        call.kind = kind.to_string();
                    }
                    call
                })
                .collect()
        })
    }
}

impl<'a> MessageFields<'a> {
    pub(super) fn of(values: &'a ArrayRef, column: &str) -> Result<Self, BatchError> {
        let values = values.as_struct_opt().ok_or_else(|| {
            BatchError::new(format!(
                "column {column} must be a list of structs with role and content, not a list of {}",
                values.data_type()
            ))
        })?;
        let field = |names: &[&str]| names.iter().find_map(|n| values.column_by_name(n));
        let role = field(&["role"])
            .ok_or_else(|| BatchError::new(format!("column {column}: its structs have no role")))?;
        let content = field(&["content"]).ok_or_else(|| {
            BatchError::new(format!("column {column}: its structs have no content"))
        })?;
        Ok(Self {
            values,
            role: Strings::of(role.as_ref(), "role")?,
            content: Strings::of(content.as_ref(), "content")?,
            name: field(&["name"])
                .map(|a| Strings::of(a.as_ref(), "name"))
                .transpose()?,
            tool_call_id: field(&["tool_call_id", "toolCallId"])
                .map(|a| Strings::of(a.as_ref(), "tool_call_id"))
                .transpose()?,
            tool_calls: field(&["tool_calls", "toolCalls"])
                .map(|a| ToolCalls::of(a, column))
                .transpose()?,
        })
    }

    /// The messages at `range` of the values (one row's list); a null role or
    /// message is an error, a null content is empty.
    pub(super) fn messages(&self, range: Range<usize>) -> Result<Vec<Message>, LineError> {
        let start = range.start;
        range
            .map(|i| {
                let k = i - start;
                if self.values.is_null(i) {
                    return Err(invalid(&format!("messages[{k}]"), "null"));
                }
                let role = self
                    .role
                    .get(i)
                    .ok_or_else(|| invalid(&format!("messages[{k}].role"), "null"))?;
                let role: Role = role
                    .parse()
                    .map_err(|e| invalid(&format!("messages[{k}].role"), e))?;
                let mut message = Message::new(role, self.content.get(i).unwrap_or_default());
                message.tool_call_id = self
                    .tool_call_id
                    .as_ref()
                    .and_then(|c| c.get(i))
                    .map(str::to_string);
                message.name = self
                    .name
                    .as_ref()
                    .and_then(|c| c.get(i))
                    .map(str::to_string);
                if let Some(calls) = &self.tool_calls {
                    message.tool_calls = calls.get(i);
                }
                Ok(message)
            })
            .collect()
    }
}

/// A list column of either offset size.
pub(super) enum Lists<'a> {
    List(&'a ListArray),
    Large(&'a GenericListArray<i64>),
}

impl<'a> Lists<'a> {
    pub(super) fn of(batch: &'a RecordBatch, name: &str) -> Result<Option<Self>, BatchError> {
        let Some(column) = batch.column_by_name(name) else {
            return Ok(None);
        };
        Self::of_array(column).map(Some).ok_or_else(|| {
            BatchError::new(format!(
                "column {name} must be a list of message structs, not {}",
                column.data_type()
            ))
        })
    }

    /// `array` as a list, if it is one.
    pub(super) fn of_array(array: &'a ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::List(_) => Some(Self::List(array.as_list::<i32>())),
            DataType::LargeList(_) => Some(Self::Large(array.as_list::<i64>())),
            _ => None,
        }
    }

    pub(super) fn values(&self) -> &'a ArrayRef {
        match self {
            Self::List(a) => a.values(),
            Self::Large(a) => a.values(),
        }
    }

    /// Row `row`'s range in the values, `None` for a null row.
    pub(super) fn range(&self, row: usize) -> Option<Range<usize>> {
        fn range<O: OffsetSizeTrait>(a: &GenericListArray<O>, row: usize) -> Option<Range<usize>> {
            let offsets = a.value_offsets();
            a.is_valid(row)
                .then(|| offsets[row].as_usize()..offsets[row + 1].as_usize())
        }
        match self {
            Self::List(a) => range(a, row),
            Self::Large(a) => range(a, row),
        }
    }

    /// A list column of the same type holding, per row, the values at the given
    /// indices (`None`: a null row), in the order given.
    pub(super) fn take(&self, rows: &[Option<Vec<usize>>]) -> Result<ArrayRef, BatchError> {
        fn build<O: OffsetSizeTrait>(
            a: &GenericListArray<O>,
            rows: &[Option<Vec<usize>>],
        ) -> Result<ArrayRef, BatchError> {
            let field = match a.data_type() {
                DataType::List(f) | DataType::LargeList(f) => Arc::clone(f),
                _ => unreachable!("a list array has a list type"),
            };
            let indices: UInt64Array = rows.iter().flatten().flatten().map(|&i| i as u64).collect();
            let values = arrow_select::take::take(a.values().as_ref(), &indices, None)
                .map_err(|e| BatchError::new(e.to_string()))?;
            let offsets = OffsetBuffer::<O>::from_lengths(
                rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)),
            );
            let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
            let list = GenericListArray::<O>::try_new(field, offsets, values, Some(nulls))
                .map_err(|e| BatchError::new(e.to_string()))?;
            Ok(Arc::new(list))
        }
        match self {
            Self::List(a) => build(a, rows),
            Self::Large(a) => build(a, rows),
        }
    }
}

/// An optional integer column (`max_tokens`), of any integer type.
pub(super) enum Integers<'a> {
    None,
    Int64(&'a Int64Array),
    Int32(&'a Int32Array),
}

impl<'a> Integers<'a> {
    pub(super) fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, BatchError> {
        let Some(column) = batch.column_by_name(name) else {
            return Ok(Self::None);
        };
        match column.data_type() {
            DataType::Int64 => Ok(Self::Int64(column.as_primitive())),
            DataType::Int32 => Ok(Self::Int32(column.as_primitive())),
            DataType::Null => Ok(Self::None),
            other => Err(BatchError::new(format!(
                "column {name} must hold int64 or int32, not {other}"
            ))),
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Int64(a) => a.is_valid(i).then(|| a.value(i)),
            Self::Int32(a) => a.is_valid(i).then(|| i64::from(a.value(i))),
        }
    }
}

/// The messages column, its structs, and each row's messages or error.
pub(super) fn read_rows<T: Send>(
    batch: &RecordBatch,
    work: impl Fn(usize, Vec<Message>) -> Result<T, LineError> + Sync,
) -> Result<(Lists<'_>, Vec<Result<T, LineError>>), BatchError> {
    let lists = Lists::of(batch, "messages")?
        .ok_or_else(|| BatchError::new("the batch has no messages column"))?;
    let fields = MessageFields::of(lists.values(), "messages")?;
    let rows = (0..batch.num_rows())
        .into_par_iter()
        .map(|row| {
            let range = lists
                .range(row)
                .ok_or_else(|| invalid("messages", "null"))?;
            work(row, fields.messages(range)?)
        })
        .collect();
    Ok((lists, rows))
}
