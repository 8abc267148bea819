//! Building a batch's new columns: per-row results as Arrow arrays, null where
//! the row failed, and the output batch that keeps every input column but the
//! one it replaces.

use std::sync::Arc;

use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema};

use super::BatchError;
use crate::LineError;

/// Which rows succeeded (valid) and which failed (null).
pub(super) fn validity<T>(rows: &[Result<T, LineError>]) -> NullBuffer {
    NullBuffer::from(rows.iter().map(Result::is_ok).collect::<Vec<_>>())
}

pub(super) fn int64(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

pub(super) fn int64_lists<'a>(values: impl IntoIterator<Item = Option<&'a [usize]>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        values
            .into_iter()
            .map(|v| v.map(|v| v.iter().map(|&n| Some(n as i64)).collect::<Vec<_>>())),
    ))
}

pub(super) fn strings(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

pub(super) fn string_lists<'a>(values: impl IntoIterator<Item = Option<&'a [String]>>) -> ArrayRef {
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
pub(super) fn structure(
    name: &str,
    columns: Vec<(&str, ArrayRef)>,
    nulls: Option<NullBuffer>,
) -> Result<(Field, ArrayRef), BatchError> {
    let fields: Fields = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let array = StructArray::try_new(fields.clone(), arrays, nulls)
        .map_err(|e| BatchError::new(e.to_string()))?;
    Ok((
        Field::new(name, DataType::Struct(fields), true),
        Arc::new(array),
    ))
}

/// The `error` column: `{code, message}` for rows that failed, null for the
/// others.
pub(super) fn error_column<T>(
    rows: &[Result<T, LineError>],
) -> Result<(Field, ArrayRef), BatchError> {
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
pub(super) fn assemble(
    batch: &RecordBatch,
    replace: Vec<(&str, ArrayRef)>,
    append: Vec<(Field, ArrayRef)>,
) -> Result<RecordBatch, BatchError> {
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
            return Err(BatchError::new(format!(
                "the batch already has a column {}; rename it first",
                field.name()
            )));
        }
        fields.push(field);
        columns.push(column);
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| BatchError::new(e.to_string()))
}
