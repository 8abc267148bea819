//! The checks one by one: messages, locations and kinds as pydantic has them.

use serde_json::json;

use super::*;

fn errors(result: Result<()>) -> Vec<(String, &'static str)> {
    match result {
        Err(PracticeError::Validation(e)) => e
            .into_iter()
            .map(|e| (serde_json::to_string(&e.loc).unwrap(), e.kind))
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// Found by Schemathesis: `4370695393546438.0` is an integer below 2^53,
/// but serde_json's default float reader can land one step off (here on
/// `...37.5`) and the value read as fractional. The workspace enables
/// `float_roundtrip`, which reads every float correctly rounded.
#[test]
fn integral_floats_read_exactly_are_integers() {
    let mut c = Checker::new();
    let loc = vec![Value::from("body")];
    for (text, n) in [
        ("4370695393546438.0", 4_370_695_393_546_438_i64),
        ("12.0", 12),
        ("9007199254740991.0", 9_007_199_254_740_991),
    ] {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            c.int_value(&value, at(&loc, "seed"), 0, i64::MAX),
            Some(n),
            "{text}"
        );
    }
    let value: Value = serde_json::from_str("12.5").unwrap();
    assert_eq!(c.int_value(&value, at(&loc, "seed"), 0, i64::MAX), None);
}

/// Found by Schemathesis: `/agents/6.0` is a schema-valid integer id.
#[test]
fn path_and_query_ids_read_integral_decimals() {
    for (text, n) in [("6", 6), (" 6 ", 6), ("6.0", 6), ("6e0", 6), ("60E-1", 6)] {
        assert_eq!(path_id(text, "id").unwrap(), n, "{text}");
    }
    for text in ["6.5", "inf", "NaN", "0", "0.0", "-1", "1e19", "x", ""] {
        assert!(path_id(text, "id").is_err(), "{text}");
    }
    assert_eq!(query_int(Some("2.0"), "page", None, 1, 10).unwrap(), 2);
}

#[test]
fn every_error_is_reported_with_its_location() {
    let body = json!({"a": "x", "b": 0, "c": 3.5, "d": [1, "2", 0], "e": "nope", "zzz": 1});
    let map = body.as_object().unwrap();
    let loc = vec![Value::from("body")];
    let mut c = Checker::new();
    c.no_unknown(map, &["a", "b", "c", "d", "e"], &loc);
    assert_eq!(c.int(map, "a", &loc, 1, 10), None);
    assert_eq!(c.int(map, "b", &loc, 1, 10), None);
    assert_eq!(c.float(map, "c", &loc, 0.0, 2.0), None);
    assert_eq!(c.id_list(map, "d", &loc), Some(vec![1]));
    assert_eq!(c.choice(map, "e", &loc, &["short", "long"]), None);
    assert_eq!(
        errors(c.finish()),
        [
            (r#"["body","zzz"]"#.into(), "extra_forbidden"),
            (r#"["body","a"]"#.into(), "int_type"),
            (r#"["body","b"]"#.into(), "greater_than_equal"),
            (r#"["body","c"]"#.into(), "less_than_equal"),
            (r#"["body","d",1]"#.into(), "int_type"),
            (r#"["body","d",2]"#.into(), "greater_than_equal"),
            (r#"["body","e"]"#.into(), "enum"),
        ]
    );
}

#[test]
fn lists_drop_duplicates_keeping_the_first() {
    let body = json!({"ids": [3, 1, 3, 2, 1], "names": ["b", "a", "b"]});
    let map = body.as_object().unwrap();
    let mut c = Checker::new();
    assert_eq!(c.id_list(map, "ids", &[]), Some(vec![3, 1, 2]));
    assert_eq!(
        c.string_list(map, "names", &[], 10),
        Some(vec!["b".into(), "a".into()])
    );
    assert!(c.is_ok());
}

#[test]
fn query_and_path_ints() {
    assert_eq!(
        query_int(Some("3"), "class_id", None, 1, i64::MAX).unwrap(),
        3
    );
    assert_eq!(query_int(None, "page", Some(1), 1, i64::MAX).unwrap(), 1);
    for bad in [Some("0"), Some("x"), None] {
        assert!(matches!(
            query_int(bad, "class_id", None, 1, i64::MAX),
            Err(PracticeError::Validation(_))
        ));
    }
    assert!(path_id("-1", "session_id").is_err());
    assert_eq!(path_id("12", "session_id").unwrap(), 12);
}

#[test]
fn enum_messages_read_like_pydantic() {
    let body = json!({"p": "fast"});
    let mut c = Checker::new();
    c.choice(
        body.as_object().unwrap(),
        "p",
        &[Value::from("body")],
        &["a", "b", "c"],
    );
    match c.finish() {
        Err(PracticeError::Validation(e)) => {
            assert_eq!(e[0].msg, "Input should be 'a', 'b' or 'c'")
        }
        other => panic!("{other:?}"),
    }
}
