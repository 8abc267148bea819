//! Batch functions over Arrow record batches: trimming, counting and routing
//! every row on all cores, in row order. A bad row gets an `error` entry (the
//! API's code and message) while the others go on.
//!
//! Batches cross from and to pyarrow through the Arrow C data interface, without
//! copies; the output batch reuses every input column but the one it replaces.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, GenericListArray, Int64Array, LargeStringArray, ListArray,
    OffsetSizeTrait, RecordBatch, StringArray, StringViewArray, StructArray, UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_pyarrow::PyArrowType;
use arrow_schema::{DataType, Field, Fields, Schema};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rayon::prelude::*;
use sluice_core::{Counts, Message, Profiles, Role, ToolCall, Trim};
use sluice_pipeline::LineError;
use sluice_router::{RouteRequest, RouteResult};

use crate::messages::invalid;

/// Registers the batch functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(trim_batch, m)?)?;
    m.add_function(wrap_pyfunction!(count_batch, m)?)?;
    m.add_function(wrap_pyfunction!(route_batch, m)?)?;
    Ok(())
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// Runs `work` on a pool of `threads` threads (kept for later calls), or on the
/// global pool (one thread per core) for `None`.
fn on_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    static POOLS: Mutex<Option<HashMap<usize, Arc<rayon::ThreadPool>>>> = Mutex::new(None);
    let Some(n) = threads else {
        return Ok(work());
    };
    if n == 0 {
        return Err(value_error("threads must be at least 1"));
    }
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let pools = pools.get_or_insert_with(HashMap::new);
        match pools.get(&n) {
            Some(pool) => Arc::clone(pool),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| value_error(format!("cannot start {n} threads: {e}")))?;
                let pool = Arc::new(pool);
                pools.insert(n, Arc::clone(&pool));
                pool
            }
        }
    };
    Ok(pool.install(work))
}

/// A string column of any Arrow string type.
enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn of(array: &'a dyn Array, name: &str) -> PyResult<Self> {
        match array.data_type() {
            DataType::Utf8 => Ok(Self::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Self::Large(array.as_string::<i64>())),
            DataType::Utf8View => Ok(Self::View(array.as_string_view())),
            other => Err(value_error(format!(
                "column {name} must hold strings, not {other}"
            ))),
        }
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Self::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Self::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Self::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The `messages` column's structs: `role`, `content`, and optionally
/// `name`, `tool_call_id` (or `toolCallId`) and `tool_calls` (or `toolCalls`).
struct MessageFields<'a> {
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
    fn of(array: &'a ArrayRef, column: &str) -> PyResult<Self> {
        let shape = || {
            value_error(format!(
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
    fn get(&self, i: usize) -> Vec<ToolCall> {
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
    fn of(values: &'a ArrayRef, column: &str) -> PyResult<Self> {
        let values = values.as_struct_opt().ok_or_else(|| {
            value_error(format!(
                "column {column} must be a list of structs with role and content, not a list of {}",
                values.data_type()
            ))
        })?;
        let field = |names: &[&str]| names.iter().find_map(|n| values.column_by_name(n));
        let role = field(&["role"])
            .ok_or_else(|| value_error(format!("column {column}: its structs have no role")))?;
        let content = field(&["content"])
            .ok_or_else(|| value_error(format!("column {column}: its structs have no content")))?;
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
    fn messages(&self, range: Range<usize>) -> Result<Vec<Message>, LineError> {
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
enum Lists<'a> {
    List(&'a ListArray),
    Large(&'a GenericListArray<i64>),
}

impl<'a> Lists<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> PyResult<Option<Self>> {
        let Some(column) = batch.column_by_name(name) else {
            return Ok(None);
        };
        Self::of_array(column).map(Some).ok_or_else(|| {
            value_error(format!(
                "column {name} must be a list of message structs, not {}",
                column.data_type()
            ))
        })
    }

    /// `array` as a list, if it is one.
    fn of_array(array: &'a ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::List(_) => Some(Self::List(array.as_list::<i32>())),
            DataType::LargeList(_) => Some(Self::Large(array.as_list::<i64>())),
            _ => None,
        }
    }

    fn values(&self) -> &'a ArrayRef {
        match self {
            Self::List(a) => a.values(),
            Self::Large(a) => a.values(),
        }
    }

    /// Row `row`'s range in the values, `None` for a null row.
    fn range(&self, row: usize) -> Option<Range<usize>> {
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
    fn take(&self, rows: &[Option<Vec<usize>>]) -> PyResult<ArrayRef> {
        fn build<O: OffsetSizeTrait>(
            a: &GenericListArray<O>,
            rows: &[Option<Vec<usize>>],
        ) -> PyResult<ArrayRef> {
            let field = match a.data_type() {
                DataType::List(f) | DataType::LargeList(f) => Arc::clone(f),
                _ => unreachable!("a list array has a list type"),
            };
            let indices: UInt64Array = rows.iter().flatten().flatten().map(|&i| i as u64).collect();
            let values = arrow_select::take::take(a.values().as_ref(), &indices, None)
                .map_err(|e| value_error(e.to_string()))?;
            let offsets = OffsetBuffer::<O>::from_lengths(
                rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)),
            );
            let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
            let list = GenericListArray::<O>::try_new(field, offsets, values, Some(nulls))
                .map_err(|e| value_error(e.to_string()))?;
            Ok(Arc::new(list))
        }
        match self {
            Self::List(a) => build(a, rows),
            Self::Large(a) => build(a, rows),
        }
    }
}

/// An optional integer column (`max_tokens`), of any integer type.
enum Integers<'a> {
    None,
    Int64(&'a Int64Array),
    Int32(&'a arrow_array::Int32Array),
}

impl<'a> Integers<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> PyResult<Self> {
        let Some(column) = batch.column_by_name(name) else {
            return Ok(Self::None);
        };
        match column.data_type() {
            DataType::Int64 => Ok(Self::Int64(column.as_primitive())),
            DataType::Int32 => Ok(Self::Int32(column.as_primitive())),
            DataType::Null => Ok(Self::None),
            other => Err(value_error(format!(
                "column {name} must hold int64 or int32, not {other}"
            ))),
        }
    }

    fn get(&self, i: usize) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Int64(a) => a.is_valid(i).then(|| a.value(i)),
            Self::Int32(a) => a.is_valid(i).then(|| i64::from(a.value(i))),
        }
    }
}

/// The model each row uses: the row's `model` column when set, else the default.
struct Models<'a> {
    default: &'a sluice_core::Model,
    profiles: &'a Profiles,
    names: Option<Strings<'a>>,
}

impl<'a> Models<'a> {
    /// The models of `batch`'s rows: its optional `model` column, `default`
    /// where a row names none.
    fn of(
        default: &'a sluice_core::Model,
        profiles: &'a Profiles,
        batch: &'a RecordBatch,
    ) -> PyResult<Self> {
        let names = batch
            .column_by_name("model")
            .map(|c| Strings::of(c.as_ref(), "model"))
            .transpose()?;
        Ok(Self {
            default,
            profiles,
            names,
        })
    }

    fn get(&self, row: usize) -> Result<sluice_core::Model, LineError> {
        match self.names.as_ref().and_then(|n| n.get(row)) {
            None => Ok(self.default.clone()),
            Some(name) => Ok(self.profiles.model(name)?),
        }
    }
}

/// Which rows succeeded (valid) and which failed (null).
fn validity<T>(rows: &[Result<T, LineError>]) -> NullBuffer {
    NullBuffer::from(rows.iter().map(Result::is_ok).collect::<Vec<_>>())
}

fn int64(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

fn int64_lists<'a>(values: impl IntoIterator<Item = Option<&'a [usize]>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        values
            .into_iter()
            .map(|v| v.map(|v| v.iter().map(|&n| Some(n as i64)).collect::<Vec<_>>())),
    ))
}

fn strings(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn string_lists<'a>(values: impl IntoIterator<Item = Option<&'a [String]>>) -> ArrayRef {
    let mut builder =
        arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new());
    for value in values {
        match value {
            Some(items) => {
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

/// A struct column named `name` from `(field name, column)` pairs, null where
/// `nulls` says so. Every field is nullable.
fn structure(
    name: &str,
    columns: Vec<(&str, ArrayRef)>,
    nulls: Option<NullBuffer>,
) -> PyResult<(Field, ArrayRef)> {
    let fields: Fields = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let array = StructArray::try_new(fields.clone(), arrays, nulls)
        .map_err(|e| value_error(e.to_string()))?;
    Ok((
        Field::new(name, DataType::Struct(fields), true),
        Arc::new(array),
    ))
}

/// The `error` column: `{code, message}` for rows that failed, null for the
/// others.
fn error_column<T>(rows: &[Result<T, LineError>]) -> PyResult<(Field, ArrayRef)> {
    let failed =
        |f: fn(&LineError) -> String| strings(rows.iter().map(|r| r.as_ref().err().map(f)));
    let nulls = NullBuffer::from(rows.iter().map(Result::is_err).collect::<Vec<_>>());
    structure(
        "error",
        vec![
            ("code", failed(|e| e.code.to_string())),
            ("message", failed(|e| e.message.clone())),
        ],
        Some(nulls),
    )
}

/// `batch` with `replace` swapped in for columns of the same name and `append`
/// added after the others; an appended name the batch already has is an error.
fn assemble(
    batch: &RecordBatch,
    replace: Vec<(&str, ArrayRef)>,
    append: Vec<(Field, ArrayRef)>,
) -> PyResult<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::with_capacity(schema.fields().len() + append.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match replace.iter().find(|(n, _)| n == field.name()) {
            Some((_, new)) => {
                fields.push(Field::new(field.name(), new.data_type().clone(), true));
                columns.push(Arc::clone(new));
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
        }
    }
    for (field, column) in append {
        if schema.column_with_name(field.name()).is_some() {
            return Err(value_error(format!(
                "the batch already has a column {}; rename it first",
                field.name()
            )));
        }
        fields.push(field);
        columns.push(column);
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| value_error(e.to_string()))
}

/// The messages column, its structs, and each row's messages or error.
fn read_rows<T: Send>(
    batch: &RecordBatch,
    work: impl Fn(usize, Vec<Message>) -> Result<T, LineError> + Sync,
) -> PyResult<(Lists<'_>, Vec<Result<T, LineError>>)> {
    let lists = Lists::of(batch, "messages")?
        .ok_or_else(|| value_error("the batch has no messages column"))?;
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

/// Trims every row of an Arrow batch (see ``sluice.trim_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, max_tokens, model, full_report, threads))]
fn trim_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    max_tokens: i64,
    model: &Bound<'_, PyAny>,
    full_report: bool,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let (default, profiles) = crate::resolve_with_profiles(model)?;
    let batch = batch.0;
    py.detach(|| {
        let models = Models::of(&default, &profiles, &batch)?;
        let limits = Integers::of(&batch, "max_tokens")?;
        let (lists, rows) = on_threads(threads, || {
            read_rows(&batch, |row, messages| {
                let max_tokens = limits.get(row).unwrap_or(max_tokens);
                let trim: Trim = models
                    .get(row)?
                    .window()
                    .full_report(full_report)
                    .trim(&messages, max_tokens)?;
                Ok(trim)
            })
        })??;
        let kept: Vec<Option<Vec<usize>>> = rows
            .iter()
            .enumerate()
            .map(|(row, r)| {
                let start = lists.range(row).map_or(0, |r| r.start);
                r.as_ref()
                    .ok()
                    .map(|t| t.kept_indices().map(|i| start + i).collect())
            })
            .collect();
        let reports: Vec<Option<&sluice_core::TrimReport>> = rows
            .iter()
            .map(|r| r.as_ref().ok().map(Trim::report))
            .collect();
        let field = |f: fn(&sluice_core::TrimReport) -> Option<usize>| {
            int64(reports.iter().map(|r| r.and_then(f).map(|n| n as i64)))
        };
        let report = structure(
            "report",
            vec![
                ("tokensBefore", field(|r| r.tokens_before)),
                ("tokensAfter", field(|r| Some(r.tokens_after))),
                ("maxTokens", field(|r| Some(r.max_tokens))),
                ("limit", field(|r| Some(r.limit))),
                ("turnsDropped", field(|r| Some(r.turns_dropped))),
                ("messagesDropped", field(|r| Some(r.messages_dropped))),
                (
                    "counts",
                    int64_lists(reports.iter().map(|r| r.map(|r| r.counts.as_slice()))),
                ),
            ],
            Some(validity(&rows)),
        )?;
        assemble(
            &batch,
            vec![("messages", lists.take(&kept)?)],
            vec![report, error_column(&rows)?],
        )
    })
    .map(PyArrowType)
}

/// Counts every row of an Arrow batch (see ``sluice.count_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, model, threads))]
fn count_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    model: &Bound<'_, PyAny>,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let (default, profiles) = crate::resolve_with_profiles(model)?;
    let batch = batch.0;
    py.detach(|| {
        let models = Models::of(&default, &profiles, &batch)?;
        let (_, rows) = on_threads(threads, || {
            read_rows(&batch, |row, messages| {
                Ok(models.get(row)?.count(&messages))
            })
        })??;
        let counts: Vec<Option<&Counts>> = rows.iter().map(|r| r.as_ref().ok()).collect();
        let mut counted = vec![
            (
                Field::new("counts", DataType::new_list(DataType::Int64, true), true),
                int64_lists(counts.iter().map(|c| c.map(|c| c.per_message.as_slice()))),
            ),
            (
                Field::new("reply", DataType::Int64, true),
                int64(counts.iter().map(|c| c.map(|c| c.reply as i64))),
            ),
            (
                Field::new("total", DataType::Int64, true),
                int64(counts.iter().map(|c| c.map(|c| c.total as i64))),
            ),
        ];
        counted.push(error_column(&rows)?);
        assemble(&batch, Vec::new(), counted)
    })
    .map(PyArrowType)
}

/// Routes every row of an Arrow batch (see ``sluice.route_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, router, threads))]
fn route_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    router: &Bound<'_, crate::Router>,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let router = router.get();
    let batch = batch.0;
    py.detach(|| {
        let query = batch
            .column_by_name("query")
            .ok_or_else(|| value_error("the batch has no query column"))?;
        let queries = Strings::of(query.as_ref(), "query")?;
        let history = match Lists::of(&batch, "chatHistory")? {
            Some(h) => Some(h),
            None => Lists::of(&batch, "chat_history")?,
        };
        let history_fields = history
            .as_ref()
            .map(|h| MessageFields::of(h.values(), "chatHistory"))
            .transpose()?;
        let rows: Vec<Result<RouteResult, LineError>> = on_threads(threads, || {
            (0..batch.num_rows())
                .into_par_iter()
                .map(|row| {
                    let mut request = RouteRequest::new(queries.get(row).unwrap_or_default());
                    if let (Some(lists), Some(fields)) = (&history, &history_fields)
                        && let Some(range) = lists.range(row)
                    {
                        request.chat_history = fields.messages(range)?;
                    }
                    Ok(router.router().route(&request)?)
                })
                .collect()
        })?;
        let results: Vec<Option<&RouteResult>> = rows.iter().map(|r| r.as_ref().ok()).collect();
        let nulls = validity(&rows);
        let called = |f: fn(&RouteResult) -> bool| -> ArrayRef {
            Arc::new(results.iter().map(|r| r.map(f)).collect::<BooleanArray>())
        };
        let domain = structure(
            "domain",
            vec![
                (
                    "result",
                    strings(results.iter().map(|r| r.map(|r| r.domain.result.clone()))),
                ),
                ("called", called(|r| r.domain.called)),
            ],
            Some(nulls.clone()),
        )?;
        let filter = |name: &str, f: fn(&RouteResult) -> &sluice_router::FilterResult| {
            structure(
                name,
                vec![
                    (
                        "result",
                        string_lists(results.iter().map(|r| r.map(|r| f(r).result.as_slice()))),
                    ),
                    (
                        "called",
                        Arc::new(
                            results
                                .iter()
                                .map(|r| r.map(|r| f(r).called))
                                .collect::<BooleanArray>(),
                        ) as ArrayRef,
                    ),
                ],
                Some(nulls.clone()),
            )
        };
        let usage = |f: fn(&sluice_router::Usage) -> usize| {
            int64(results.iter().map(|r| r.map(|r| f(&r.usage) as i64)))
        };
        let usage = structure(
            "usage",
            vec![
                ("promptTokens", usage(|u| u.prompt_tokens)),
                ("completionTokens", usage(|u| u.completion_tokens)),
                ("totalTokens", usage(|u| u.total_tokens)),
            ],
            Some(nulls.clone()),
        )?;
        assemble(
            &batch,
            Vec::new(),
            vec![
                domain,
                filter("blockedContent", |r| &r.blocked_content)?,
                filter("safety", |r| &r.safety)?,
                usage,
                error_column(&rows)?,
            ],
        )
    })
    .map(PyArrowType)
}
