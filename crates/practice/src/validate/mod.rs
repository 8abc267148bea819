//! Request validation with FastAPI's (pydantic's) error shape: every invalid
//! field is reported at once, each with its location, message and type, and an
//! unknown field is an error (`extra_forbidden`), as in the original API.

use serde_json::{Map, Value};

use crate::error::{FieldError, PracticeError, Result};

/// A location: `["body", "generation_params", "temperature"]`.
pub type Loc = Vec<Value>;

/// `loc` with `key` appended.
pub fn at(loc: &[Value], key: impl Into<Value>) -> Loc {
    let mut loc = loc.to_vec();
    loc.push(key.into());
    loc
}

/// Collects the errors of one request.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    /// A checker with no errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub fn error(&mut self, loc: Loc, kind: &'static str, msg: impl Into<String>) {
        self.errors.push(FieldError::new(loc, kind, msg));
    }

    /// True if nothing is wrong so far.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` if nothing was wrong, else every error (422).
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(PracticeError::Validation(self.errors))
        }
    }

    /// `value` as an object; records `model_attributes_type` otherwise.
    pub fn object<'v>(
        &mut self,
        value: &'v Value,
        loc: &[Value],
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            _ => {
                self.error(
                    loc.to_vec(),
                    "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from",
                );
                None
            }
        }
    }

    /// Records `extra_forbidden` for every key not in `allowed`.
    pub fn no_unknown(&mut self, map: &Map<String, Value>, allowed: &[&str], loc: &[Value]) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.extra(at(loc, key.as_str()));
            }
        }
    }

    /// Records `extra_forbidden`: a field that may not be given here.
    pub fn extra(&mut self, loc: Loc) {
        self.error(loc, "extra_forbidden", "Extra inputs are not permitted");
    }

    /// Records `missing` if `value` is `None`.
    pub fn required<T>(&mut self, value: Option<T>, present: bool, loc: Loc) -> Option<T> {
        if value.is_none() && !present {
            self.error(loc, "missing", "Field required");
        }
        value
    }

    /// A required string of `min..=max` characters (after trimming when
    /// `trim`): a missing key is pydantic's `missing`, a `null` its
    /// `string_type`.
    pub fn required_string(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        chars: std::ops::RangeInclusive<usize>,
        trim: bool,
    ) -> Option<String> {
        let value = self.string(map, key, loc, chars, trim);
        match map.get(key) {
            None => self.error(at(loc, key), "missing", "Field required"),
            Some(Value::Null) => self.error(
                at(loc, key),
                "string_type",
                "Input should be a valid string",
            ),
            Some(_) => {}
        }
        value
    }

    /// An optional string of `min..=max` characters (after trimming when `trim`).
    pub fn string(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        chars: std::ops::RangeInclusive<usize>,
        trim: bool,
    ) -> Option<String> {
        let value = map.get(key)?;
        let loc = at(loc, key);
        match value {
            Value::Null => None,
            Value::String(s) => self.text(s, loc, chars, trim),
            _ => {
                self.error(loc, "string_type", "Input should be a valid string");
                None
            }
        }
    }

    /// `s` when it has `min..=max` characters (after trimming when `trim`).
    pub fn text(
        &mut self,
        s: &str,
        loc: Loc,
        chars: std::ops::RangeInclusive<usize>,
        trim: bool,
    ) -> Option<String> {
        let s = if trim { s.trim() } else { s };
        let n = s.chars().count();
        if n < *chars.start() {
            let (min, plural) = plural(*chars.start());
            self.error(
                loc,
                "string_too_short",
                format!("String should have at least {min} character{plural}"),
            );
            None
        } else if n > *chars.end() {
            let (max, plural) = plural(*chars.end());
            self.error(
                loc,
                "string_too_long",
                format!("String should have at most {max} character{plural}"),
            );
            None
        } else {
            Some(s.to_string())
        }
    }

    /// An optional integer ≥ `min` (`1.0` counts as 1, `"1"` does not).
    pub fn int(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let value = map.get(key)?;
        self.int_value(value, at(loc, key), min, max)
    }

    /// `value` as an integer in `min..=max`; `null` is `None`.
    pub fn int_value(&mut self, value: &Value, loc: Loc, min: i64, max: i64) -> Option<i64> {
        let n = match value {
            Value::Null => return None,
            Value::Number(n) => n.as_i64().or_else(|| {
                // An integral float is an integer (JSON Schema's and
                // pydantic's reading: `64.0` is 64); every one below 2^63 in
                // magnitude converts to i64 exactly.
                const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < TWO_POW_63)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        let Some(n) = n else {
            let (kind, msg) = match value {
                Value::Number(_) => (
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                ),
                _ => ("int_type", "Input should be a valid integer"),
            };
            self.error(loc, kind, msg);
            return None;
        };
        self.in_range(n, loc, min, max)
    }

    /// An optional number in `min..=max`.
    pub fn float(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let loc = at(loc, key);
        match map.get(key)? {
            Value::Null => None,
            Value::Number(n) => self.number(n.as_f64().unwrap_or(f64::NAN), loc, min, max),
            _ => {
                self.error(loc, "float_type", "Input should be a valid number");
                None
            }
        }
    }

    /// `f` when it lies in `min..=max`.
    pub fn number(&mut self, f: f64, loc: Loc, min: f64, max: f64) -> Option<f64> {
        if f < min {
            self.error(
                loc,
                "greater_than_equal",
                format!("Input should be greater than or equal to {}", num(min)),
            );
            None
        } else if f > max {
            self.error(
                loc,
                "less_than_equal",
                format!("Input should be less than or equal to {}", num(max)),
            );
            None
        } else {
            Some(f)
        }
    }

    /// An optional boolean.
    pub fn boolean(&mut self, map: &Map<String, Value>, key: &str, loc: &[Value]) -> Option<bool> {
        match map.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            _ => {
                self.error(at(loc, key), "bool_type", "Input should be a valid boolean");
                None
            }
        }
    }

    /// An optional string from a fixed set.
    pub fn choice(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        options: &[&'static str],
    ) -> Option<&'static str> {
        let value = map.get(key)?;
        let loc = at(loc, key);
        if value.is_null() {
            return None;
        }
        match value.as_str() {
            Some(s) => self.one_of(s, loc, options),
            None => {
                self.one_of_error(loc, options);
                None
            }
        }
    }

    /// `s` as the option it names.
    pub fn one_of(&mut self, s: &str, loc: Loc, options: &[&'static str]) -> Option<&'static str> {
        let found = options.iter().find(|o| **o == s).copied();
        if found.is_none() {
            self.one_of_error(loc, options);
        }
        found
    }

    fn one_of_error(&mut self, loc: Loc, options: &[&'static str]) {
        let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
        let list = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.join(""),
        };
        self.error(loc, "enum", format!("Input should be {list}"));
    }

    /// An optional list of ids ≥ 1; duplicates removed keeping the first.
    pub fn id_list(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
    ) -> Option<Vec<i64>> {
        let items = self.list(map, key, loc)?;
        let loc = at(loc, key);
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.is_null() {
                self.error(at(&loc, i), "int_type", "Input should be a valid integer");
                continue;
            }
            if let Some(id) = self.int_value(item, at(&loc, i), i64::MIN, i64::MAX) {
                self.list_id(id, at(&loc, i), &mut ids);
            }
        }
        Some(ids)
    }

    /// An optional list of non-empty strings; duplicates removed keeping the first.
    pub fn string_list(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        loc: &[Value],
        max_chars: usize,
    ) -> Option<Vec<String>> {
        let items = self.list(map, key, loc)?;
        let loc = at(loc, key);
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => self.list_item(s, at(&loc, i), max_chars, &mut out),
                None => self.error(at(&loc, i), "string_type", "Input should be a valid string"),
            }
        }
        Some(out)
    }

    /// Adds `s`, trimmed, to `out` unless it is there already; records an
    /// error if it is empty or longer than `max_chars`.
    pub fn list_item(&mut self, s: &str, loc: Loc, max_chars: usize, out: &mut Vec<String>) {
        match s.trim() {
            "" => self.error(
                loc,
                "string_too_short",
                "String should have at least 1 character",
            ),
            s if s.chars().count() > max_chars => self.error(
                loc,
                "string_too_long",
                format!("String should have at most {max_chars} characters"),
            ),
            s => {
                if !out.iter().any(|x| x == s) {
                    out.push(s.to_string());
                }
            }
        }
    }

    /// Adds `id` to `ids` unless it is there already; records an error if
    /// it is below 1.
    pub fn list_id(&mut self, id: i64, loc: Loc, ids: &mut Vec<i64>) {
        if let Some(id) = self.in_range(id, loc, 1, i64::MAX) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    fn list<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        loc: &[Value],
    ) -> Option<&'v Vec<Value>> {
        match map.get(key)? {
            Value::Null => None,
            Value::Array(items) => Some(items),
            _ => {
                self.error(at(loc, key), "list_type", "Input should be a valid list");
                None
            }
        }
    }

    /// `n` when it lies in `min..=max`.
    pub fn in_range(&mut self, n: i64, loc: Loc, min: i64, max: i64) -> Option<i64> {
        if n < min {
            self.error(
                loc,
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
            );
            None
        } else if n > max {
            self.error(
                loc,
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
            );
            None
        } else {
            Some(n)
        }
    }
}

fn plural(n: usize) -> (usize, &'static str) {
    (n, if n == 1 { "" } else { "s" })
}

/// A bound as pydantic prints it: `2` rather than `2.0`.
fn num(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// A query parameter that must be an integer in `min..=max` (FastAPI's checks
/// of `class_id`, `page`, `size`).
pub fn query_int(
    value: Option<&str>,
    name: &str,
    default: Option<i64>,
    min: i64,
    max: i64,
) -> Result<i64> {
    let loc = vec![Value::from("query"), Value::from(name)];
    match (value, default) {
        (Some(text), _) => int_text(text, loc, min, max),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(PracticeError::field(loc, "missing", "Field required")),
    }
}

/// A path id (`/sessions/{session_id}`): an integer ≥ 1.
pub fn path_id(value: &str, name: &str) -> Result<i64> {
    int_text(
        value,
        vec![Value::from("path"), Value::from(name)],
        1,
        i64::MAX,
    )
}

/// Text that must parse as an integer in `min..=max`. Integral decimals
/// (`6.0`, `6e0`) are integers, as in a JSON body and as JSON Schema (the
/// OpenAPI document's `type: integer`) reads them.
fn int_text(text: &str, loc: Loc, min: i64, max: i64) -> Result<i64> {
    let mut check = Checker::new();
    let text = text.trim();
    let parsed = text.parse::<i64>().ok().or_else(|| {
        const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < TWO_POW_63)
            .map(|f| f as i64)
    });
    let n = match parsed {
        Some(n) => check.in_range(n, loc, min, max),
        None => {
            check.error(
                loc,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            );
            None
        }
    };
    check.finish()?;
    Ok(n.expect("a value when there is no error"))
}

/// The body as JSON, or FastAPI's `json_invalid` error.
pub fn json_body(bytes: &[u8]) -> Result<Value> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(text).map_err(|e| {
        PracticeError::field(
            vec![Value::from("body"), Value::from(e.column())],
            "json_invalid",
            format!("JSON decode error: {e}"),
        )
    })
}

#[cfg(test)]
mod tests;
