//! Arbitrary JSON through `WireMessage`: when it parses, it serializes back to
//! exactly its input text (without surrounding whitespace), alone and inside a
//! list, and `json_with_count` is valid JSON with the same fields plus `count`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use sluice_core::{Message, WireMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(wire) = WireMessage::from_json(text) else {
        // Not a message: then it does not parse as a `Message` either, unless
        // it was not JSON text a message could be read from.
        return;
    };
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    assert_eq!(wire.json(), trimmed);
    assert_eq!(serde_json::to_string(&wire).unwrap(), trimmed);
    // The message is what serde reads from the same text.
    let message: Message = serde_json::from_str(text).expect("WireMessage parsed, Message did not");
    assert_eq!(wire.message(), &message);
    // Inside a list, each keeps its own text.
    let list = format!("[{trimmed},{trimmed}]");
    let both: Vec<WireMessage> = serde_json::from_str(&list).unwrap();
    assert_eq!(serde_json::to_string(&both).unwrap(), list);
    // Equal to itself re-parsed.
    assert_eq!(WireMessage::from_json(wire.json()).unwrap(), wire);

    for count in [0usize, 7, usize::MAX] {
        let with = wire.json_with_count(count);
        let got = fields(with.get())
            .unwrap_or_else(|e| panic!("json_with_count not an object ({e}): {}", with.get()));
        let mut want = fields(trimmed).expect("the input is an object");
        want.insert("count".into(), count.to_string());
        assert_eq!(got, want, "{trimmed} -> {}", with.get());
    }
});

/// An object's fields, values as their JSON text (numbers beyond f64 stay as
/// written), keys unescaped; the last of duplicate keys wins, as when reading.
fn fields(json: &str) -> Result<BTreeMap<String, String>, serde_json::Error> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(json)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.get().to_string()))
        .collect())
}
