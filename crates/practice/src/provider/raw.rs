//! A JSON object kept field by field, each value exactly as it was written.
//!
//! The gateway forwards what a client sent; `serde_json::Value` would re-spell
//! numbers (`1e2` becomes `100.0`), drop spacing and reorder keys, and a model
//! server may care about any of them. [`RawObject`] keeps every value as a
//! [`RawValue`] (the bytes as written) and the fields in their order, so only
//! the fields sluice replaces change.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON object whose values are kept byte for byte, fields in their order.
///
/// A key written twice keeps its first position and its last value, as
/// `serde_json::Value` reads it.
#[derive(Debug, Clone, Default)]
pub struct RawObject {
    fields: Vec<(String, Box<RawValue>)>,
}

impl RawObject {
    /// Reads an object (anything else is an error).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Reads an object from a string.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value of `key` as written.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// Whether `key` is present (`null` counts as present).
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key` read as `T`; `None` when absent.
    pub fn parse<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.get(key).map(|raw| serde_json::from_str(raw.get()))
    }

    /// Sets `key` to `value`, in its place when present, else at the end.
    pub fn insert_raw(&mut self, key: &str, value: Box<RawValue>) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    /// Sets `key` to `value` serialized.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        // Values sluice writes are strings, numbers, arrays and objects with
        // string keys: they always serialize.
        let raw = serde_json::value::to_raw_value(value).expect("a JSON value serializes");
        self.insert_raw(key, raw);
    }

    /// Takes `key` out.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let at = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(at).1)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// Whether it has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The object written out: keys re-escaped, values as they were read.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a raw object serializes")
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut object = RawObject::default();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Box<RawValue> = map.next_value()?;
                    object.insert_raw(&key, value);
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_spelling_and_fields_their_order() {
        let text = r#"{ "z" : 1e2, "a":[1,  2], "n":-0.0,"s":"\u00e9", "z": 1E2 }"#;
        let object = RawObject::from_json(text).unwrap();
        assert_eq!(
            object.to_json(),
            r#"{"z":1E2,"a":[1,  2],"n":-0.0,"s":"\u00e9"}"#
        );
        let mut object = object;
        object.insert("a", &[3]);
        object.insert("new", "x");
        assert_eq!(object.remove("n").unwrap().get(), "-0.0");
        assert_eq!(
            object.to_json(),
            r#"{"z":1E2,"a":[3],"s":"\u00e9","new":"x"}"#
        );
        assert!(RawObject::from_json("[1]").is_err());
    }
}
