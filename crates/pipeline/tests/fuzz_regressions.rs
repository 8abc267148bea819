//! Inputs found by the fuzz targets (fuzz/), replayed as ordinary tests.

use sluice_core::Profiles;
use sluice_pipeline::{Job, JobKind, Line};

/// fuzz/wire_message: a message written as an array (`["user","hi"]`) was read
/// as a message, and counting it panicked while adding `count` to its text.
/// Every job answers it with a 40001 line instead.
#[test]
fn a_message_written_as_an_array_is_a_line_error() {
    let profiles = Profiles::builtin();
    let line = r#"{"id":7,"messages":[["user","hi"]]}"#;
    for kind in [
        JobKind::Count,
        JobKind::Trim {
            max_tokens: 100,
            full_report: false,
        },
    ] {
        let job = Job::new(&profiles, "HCX-003", kind).unwrap();
        let err = job.run_json(line).unwrap_err();
        assert_eq!(err.code, "40001", "{kind:?}: {err}");
        assert!(err.message.contains("messages[0]"), "{kind:?}: {err}");
        let (out, tally) = job.run_line(Line {
            number: 3,
            text: Ok(line),
        });
        assert_eq!(tally.errors, 1, "{out}");
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["id"], 7);
        assert_eq!(out["line"], 3);
        assert_eq!(out["error"]["code"], "40001");
    }
}
