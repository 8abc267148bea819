//! Arbitrary bytes as practice request bodies (run, next turn, agent, project,
//! knowledge base, few-shot example) through sluice-practice's validation:
//! never a panic; a refusal is a 422 (`Validation`) with at least one field
//! error, each with a location that starts at `body`.
//!
//! Input: the first byte picks the parser; the rest is the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_practice::validate::json_body;
use sluice_practice::{
    PracticeError, RunRequest, parse_agent, parse_few_shot, parse_knowledge, parse_project,
};

fn check<T>(result: Result<T, PracticeError>, body: &[u8]) {
    let Err(e) = result else { return };
    let text = e.to_string();
    match &e {
        PracticeError::Validation(errors) => {
            assert!(
                !errors.is_empty(),
                "no field error for {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(e.status(), 422);
        }
        other => assert!(e.status() < 500, "{other:?}: {text}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let value = match json_body(body) {
        Ok(value) => value,
        Err(e) => return check::<()>(Err(e), body),
    };
    let base = Some(Value::Object(Default::default()));
    match selector % 7 {
        0 => check(RunRequest::parse(&value, false), body),
        1 => check(RunRequest::parse(&value, true), body),
        2 => check(parse_agent(&value, None), body),
        3 => check(parse_agent(&value, base), body),
        4 => check(parse_project(&value, None), body),
        5 => check(parse_knowledge(&value, None), body),
        _ => check(parse_few_shot(&value, None), body),
    }
});
