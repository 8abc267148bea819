//! The `arrow` feature: a batch's rows give what the same requests give as
//! JSON lines (`Job::run_json`), row for row; bad rows get an error while the
//! others go on; a batch of the wrong shape is refused whole.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields};
use serde_json::{Value, json};
use sluice_core::Profiles;
use sluice_pipeline::route::RouteJob;
use sluice_pipeline::{Job, JobKind};
use sluice_router::RouterStore;

/// One row's messages as `(role, content)` pairs; `None` is a null row.
type Row<'a> = Option<Vec<(Option<&'a str>, &'a str)>>;

/// A `messages` column: a list of `{role, content}` structs per row.
fn messages(rows: &[Row<'_>]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]);
    let flat: Vec<(Option<&str>, &str)> = rows.iter().flatten().flatten().copied().collect();
    let values = StructArray::new(
        fields.clone(),
        vec![
            Arc::new(StringArray::from(
                flat.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                flat.iter().map(|(_, c)| Some(*c)).collect::<Vec<_>>(),
            )),
        ],
        None,
    );
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(fields), true)),
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.as_ref().map_or(0, Vec::len))),
        Arc::new(values),
        Some(NullBuffer::from(
            rows.iter().map(Option::is_some).collect::<Vec<_>>(),
        )),
    ))
}

/// The same row as the JSON request `Job::run_json` reads.
fn request(row: &Row<'_>, model: Option<&str>, max_tokens: Option<i64>) -> String {
    let mut request = json!({
        "messages": row.as_ref().map(|m| m
            .iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>()),
    });
    if let Some(model) = model {
        request["model"] = json!(model);
    }
    if let Some(max_tokens) = max_tokens {
        request["maxTokens"] = json!(max_tokens);
    }
    request.to_string()
}

fn rows() -> Vec<Row<'static>> {
    let long = "a fairly long message that takes a good number of tokens to count, ".repeat(8);
    let long: &'static str = Box::leak(long.into_boxed_str());
    vec![
        Some(vec![(Some("user"), "hi")]),
        Some(vec![
            (Some("system"), "be brief"),
            (Some("user"), long),
            (Some("assistant"), long),
            (Some("user"), "and now?"),
        ]),
        // A bad role, a null role, a null row: errors for those rows only.
        Some(vec![(Some("wizard"), "x")]),
        Some(vec![(None, "x")]),
        None,
        Some(vec![]),
    ]
}

/// A column of a struct column, by name.
fn field<'a>(array: &'a ArrayRef, name: &str) -> &'a ArrayRef {
    array.as_struct().column_by_name(name).unwrap()
}

fn error_of(batch: &RecordBatch, row: usize) -> Option<Value> {
    let error = batch.column_by_name("error").unwrap();
    error.is_valid(row).then(|| {
        json!({
            "code": field(error, "code").as_string::<i32>().value(row),
            "message": field(error, "message").as_string::<i32>().value(row),
        })
    })
}

#[test]
fn trimmed_rows_are_the_json_requests_trimmed() {
    let profiles = Profiles::builtin();
    let rows = rows();
    let models = StringArray::from(vec![Some("HCX-005"), None, None, None, None, Some("nope")]);
    // Row 1 leaves HCX-003 (4,096 tokens) room for less than its history.
    let limits = Int64Array::from(vec![Some(50), Some(4000), None, None, None, None]);
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..6)) as ArrayRef,
        ),
        ("messages", messages(&rows)),
        ("model", Arc::new(models.clone())),
        ("max_tokens", Arc::new(limits.clone())),
    ])
    .unwrap();
    let kind = JobKind::Trim {
        max_tokens: 100,
        full_report: true,
    };
    let job = Job::new(&profiles, "HCX-003", kind).unwrap();
    let out = job.run_batch(&batch).unwrap();
    // Input columns pass through; messages is replaced; report and error appended.
    let names: Vec<&str> = out
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        ["id", "messages", "model", "max_tokens", "report", "error"]
    );
    assert!(Arc::ptr_eq(out.column(0), batch.column(0)));
    let kept = out.column_by_name("messages").unwrap().as_list::<i32>();
    let report = out.column_by_name("report").unwrap();
    for (row, messages) in rows.iter().enumerate() {
        let model = models.is_valid(row).then(|| models.value(row));
        let max_tokens = limits.is_valid(row).then(|| limits.value(row));
        let expected = job.run_json(&request(messages, model, max_tokens));
        match expected {
            Ok(text) => {
                let expected: Value = serde_json::from_str(&text).unwrap();
                assert!(error_of(&out, row).is_none(), "row {row}");
                let got: Vec<Value> = {
                    let structs = kept.value(row);
                    let structs = structs.as_struct();
                    (0..structs.len())
                        .map(|i| {
                            json!({
                                "role": structs.column(0).as_string::<i32>().value(i),
                                "content": structs.column(1).as_string::<i32>().value(i),
                            })
                        })
                        .collect()
                };
                assert_eq!(Value::from(got), expected["messages"], "row {row}");
                for (name, value) in expected["report"].as_object().unwrap() {
                    let column = field(report, name);
                    let got = if name == "counts" {
                        let counts = column.as_list::<i32>().value(row);
                        json!(counts.as_primitive::<Int64Type>().values().to_vec())
                    } else {
                        json!(column.as_primitive::<Int64Type>().value(row))
                    };
                    assert_eq!(&got, value, "row {row}, report.{name}");
                }
            }
            Err(e) => {
                assert!(report.is_null(row) && kept.is_null(row), "row {row}");
                let got = error_of(&out, row).unwrap_or_else(|| panic!("row {row}: no error"));
                assert_eq!(got["code"], e.code, "row {row}");
                // The JSON reader names the position its own way for a null
                // row or role; the code is the contract.
                if messages
                    .as_ref()
                    .is_some_and(|m| m.iter().all(|(r, _)| r.is_some()))
                {
                    assert_eq!(got["message"], e.message, "row {row}");
                }
            }
        }
    }
    // The long history was trimmed, not refused: something was dropped.
    let turns = field(report, "turnsDropped").as_primitive::<Int64Type>();
    assert!(turns.value(1) > 0);
}

#[test]
fn counted_rows_are_the_json_requests_counted() {
    let profiles = Profiles::builtin();
    let rows = rows();
    let batch = RecordBatch::try_from_iter([("messages", messages(&rows))]).unwrap();
    let job = Job::new(&profiles, "HCX-005", JobKind::Count).unwrap();
    let out = job.run_batch(&batch).unwrap();
    let total = out
        .column_by_name("total")
        .unwrap()
        .as_primitive::<Int64Type>();
    let reply = out
        .column_by_name("reply")
        .unwrap()
        .as_primitive::<Int64Type>();
    let counts = out.column_by_name("counts").unwrap().as_list::<i32>();
    for (row, messages) in rows.iter().enumerate() {
        match job.run_json(&request(messages, None, None)) {
            Ok(text) => {
                let expected: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(json!(total.value(row)), expected["total"], "row {row}");
                assert_eq!(json!(reply.value(row)), expected["reply"], "row {row}");
                let per_message: Vec<Value> = expected["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["count"].clone())
                    .collect();
                let got = counts.value(row);
                assert_eq!(
                    json!(got.as_primitive::<Int64Type>().values().to_vec()),
                    Value::from(per_message),
                    "row {row}"
                );
            }
            Err(e) => {
                assert!(total.is_null(row), "row {row}");
                assert_eq!(error_of(&out, row).unwrap()["code"], e.code, "row {row}");
            }
        }
    }
}

#[test]
fn routed_rows_are_the_router_results() {
    let router = RouterStore::embedded_sample().get("sample", 1).unwrap();
    let queries = ["오늘 날씨 어때?", "", "How do I reset my password?"];
    let batch = RecordBatch::try_from_iter([(
        "query",
        Arc::new(StringArray::from(queries.to_vec())) as ArrayRef,
    )])
    .unwrap();
    let out = RouteJob::new(&router, false).run_batch(&batch).unwrap();
    let domain = out.column_by_name("domain").unwrap();
    let total = field(out.column_by_name("usage").unwrap(), "totalTokens");
    for (row, query) in queries.iter().enumerate() {
        match router.route(&sluice_router::RouteRequest::new(*query)) {
            Ok(result) => {
                assert_eq!(
                    field(domain, "result").as_string::<i32>().value(row),
                    result.domain.result,
                    "row {row}"
                );
                assert_eq!(
                    total.as_primitive::<Int64Type>().value(row) as usize,
                    result.usage.total_tokens
                );
            }
            Err(e) => {
                let code = sluice_pipeline::LineError::from(e).code;
                assert!(domain.is_null(row));
                assert_eq!(error_of(&out, row).unwrap()["code"], code, "row {row}");
            }
        }
    }
    // The empty query is an error row, not a failed batch.
    assert!(error_of(&out, 1).is_some());
}

#[test]
fn a_batch_of_the_wrong_shape_is_refused_whole() {
    let profiles = Profiles::builtin();
    let job = Job::new(&profiles, "HCX-003", JobKind::Count).unwrap();
    let refused = |batch: RecordBatch| job.run_batch(&batch).unwrap_err().to_string();
    let strings = Arc::new(StringArray::from(vec!["x"])) as ArrayRef;
    assert_eq!(
        refused(RecordBatch::try_from_iter([("other", Arc::clone(&strings))]).unwrap()),
        "the batch has no messages column"
    );
    assert_eq!(
        refused(RecordBatch::try_from_iter([("messages", Arc::clone(&strings))]).unwrap()),
        "column messages must be a list of message structs, not Utf8"
    );
    let batch = RecordBatch::try_from_iter([
        ("messages", messages(&[Some(vec![(Some("user"), "hi")])])),
        ("total", Arc::clone(&strings)),
    ])
    .unwrap();
    assert_eq!(
        refused(batch),
        "the batch already has a column total; rename it first"
    );
    let batch = RecordBatch::try_from_iter([
        ("messages", messages(&[Some(vec![(Some("user"), "hi")])])),
        ("model", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ])
    .unwrap();
    assert_eq!(refused(batch), "column model must hold strings, not Int64");
}
