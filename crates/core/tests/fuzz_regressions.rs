//! Inputs found by the fuzz targets (fuzz/), replayed as ordinary tests.

use sluice_core::WireMessage;

/// fuzz/wire_message, minimised (libFuzzer -minimize_crash) to `["user"]`: serde reads
/// a struct from an array as well, so an array parsed as a message, and
/// `json_with_count`, which adds `count` inside the object's braces, panicked
/// on its text. Through `sluice count` and the token calculators it was
/// `{"messages":[["user","hi"]]}`.
#[test]
fn a_message_written_as_an_array_is_refused() {
    for text in [r#"["user"]"#, "[ \"user\",\"e.t\"\r\t   \n] "] {
        let err = WireMessage::from_json(text).unwrap_err();
        assert!(err.to_string().contains("invalid type: sequence"), "{err}");
    }
    let err = serde_json::from_str::<Vec<WireMessage>>(r#"[["user","hi"]]"#).unwrap_err();
    assert!(err.to_string().contains("expected struct Message"), "{err}");
    // An object still parses, and gets its count.
    let ok = WireMessage::from_json(r#"{"role":"user","content":"hi"}"#).unwrap();
    assert_eq!(
        ok.json_with_count(3).get(),
        r#"{"role":"user","content":"hi","count":3}"#
    );
}
