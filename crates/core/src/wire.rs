//! Messages that go back out exactly as they came in.
//!
//! A service or pipeline that trims a history hands the kept messages on to a
//! model API. Whatever sluice does not know about a message (`name` spelled by a
//! newer API, a provider's own keys, the exact spelling of numbers and escapes)
//! must survive the trip. [`WireMessage`] keeps each message's JSON text next to
//! the [`Message`] parsed from it and writes the text back unchanged: the output
//! is byte for byte the input's messages, and writing it is a copy, faster than
//! serializing the fields again.

use std::fmt::{self, Write as _};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use std::borrow::Cow;

use crate::message::{self, Message, MessageView, Role, content};
use crate::window::{MessageCounter, WindowMessage};

/// A message parsed from JSON that remembers its exact text.
///
/// It counts and trims as its [`Message`] (it is `AsRef<Message>`, so a
/// `&[WireMessage]` goes wherever a `&[Message]` does) and serializes as the
/// text it was parsed from. It cannot be changed after parsing, so the two never
/// disagree.
///
/// ```
/// use sluice_core::{Profiles, WireMessage};
///
/// let input = r#"[{"role":"user","content":"hi","name":"kim","x-trace":7},
///                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
///                 "function":{"name":"f","arguments":"{}"}}]}]"#;
/// let messages: Vec<WireMessage> = serde_json::from_str(input).unwrap();
/// assert_eq!(messages[0].message().name.as_deref(), Some("kim"));
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let trim = model.trim(&messages, 100).unwrap();
/// let kept: Vec<&WireMessage> = trim.kept(&messages).collect();
/// // Written back as they came: the unknown key, `null` and the spacing too.
/// assert_eq!(
///     serde_json::to_string(&kept[0]).unwrap(),
///     r#"{"role":"user","content":"hi","name":"kim","x-trace":7}"#
/// );
/// assert!(serde_json::to_string(&kept[1]).unwrap().contains(r#""content":null"#));
/// ```
#[derive(Clone)]
pub struct WireMessage {
    message: Message,
    raw: Box<RawValue>,
}

impl WireMessage {
    /// Parses one message from its JSON text.
    ///
    /// # Errors
    ///
    /// If `json` is not a JSON object with the fields of a [`Message`].
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The message, as sluice reads it.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message's JSON text, exactly as it came (without the whitespace
    /// around it).
    pub fn json(&self) -> &str {
        self.raw.get()
    }

    /// The message, dropping its text.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The message's JSON object with `"count": count` added as its last field,
    /// for the token calculators (`sluice count`, `chat-tokenize`). Every other
    /// field is written as it came; a `count` the message already had is
    /// replaced.
    pub fn json_with_count(&self, count: usize) -> Box<RawValue> {
        let json = self.raw.get();
        let mut out = String::with_capacity(json.len() + 24);
        match fields_without(json, "count") {
            // The common case: no field to replace, so the text stays as it came
            // and `count` goes before its closing brace.
            None => {
                let body = json[..json.len() - 1].trim_end();
                out.push_str(body);
                if body != "{" {
                    out.push(',');
                }
            }
            Some(fields) => {
                out.push('{');
                for (key, value) in &fields {
                    // A key as JSON: `Box<str>` from serde_json is unescaped.
                    out.push_str(&serde_json::to_string(key).expect("a string serializes"));
                    out.push(':');
                    out.push_str(value.get());
                    out.push(',');
                }
            }
        }
        write!(out, "\"count\":{count}}}").expect("writing to a String cannot fail");
        RawValue::from_string(out).expect("an object with a count is JSON")
    }
}

/// The fields of the JSON object `json` other than `key`, in order, if it has
/// `key`; `None` if it does not (the quick answer for nearly every message).
fn fields_without(json: &str, key: &str) -> Option<Vec<(Box<str>, Box<RawValue>)>> {
    // A key appears in the text as `"key"` unless escaped; without that text it
    // cannot be a field, and nothing needs parsing.
    if !json.contains(key) {
        return None;
    }
    let fields: Vec<(Box<str>, Box<RawValue>)> = serde_json::from_str::<Fields>(json).ok()?.0;
    fields
        .iter()
        .any(|(k, _)| &**k == key)
        .then(|| fields.into_iter().filter(|(k, _)| &**k != key).collect())
}

/// An object's fields in order, values as raw JSON.
struct Fields(Vec<(Box<str>, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl AsRef<Message> for WireMessage {
    fn as_ref(&self) -> &Message {
        &self.message
    }
}

impl From<Message> for WireMessage {
    /// A message built in code: its text is its serialization.
    fn from(message: Message) -> Self {
        let raw = serde_json::value::to_raw_value(&message).expect("a message serializes");
        Self { message, raw }
    }
}

impl PartialEq for WireMessage {
    /// Equal when the texts are: two messages that read the same but are
    /// written differently are different on the wire.
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

impl Eq for WireMessage {}

impl fmt::Debug for WireMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WireMessage").field(&self.raw.get()).finish()
    }
}

impl Serialize for WireMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WireMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // Serde reads a struct from an array as well (`["user", "hi"]`), but a
        // message is an object: its text is written back as one, and
        // `json_with_count` adds a field inside its braces (found by fuzzing).
        if raw.get().starts_with('[') {
            return Err(D::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"struct Message",
            ));
        }
        // The text was checked as JSON on the way in; this reads its fields.
        // Performance: tracking the path costs ~10% of reading a batch line, so
        // it is paid only on the error path, by reading the text again.
        let message = match serde_json::from_str(raw.get()) {
            Ok(message) => message,
            Err(error) => return Err(describe_in_message(raw.get(), error)),
        };
        Ok(Self { message, raw })
    }
}

/// The error of a message text that failed to read, naming the field inside the
/// message (`.content`, `.tool_calls[0].id`), which `describe_json_error` joins
/// to the message's own path.
fn describe_in_message<E: serde::de::Error>(text: &str, error: serde_json::Error) -> E {
    let mut fields = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Message>(&mut fields) {
        // Reading it the same way twice cannot succeed; say what the first
        // reading said if it does.
        Ok(_) => E::custom(error),
        Err(e) => {
            use crate::json_error::{in_field, is_malformed_json, malformed_in_field};
            let path = e.path().to_string();
            let error = e.into_inner();
            let text = error.to_string();
            let text = text.rfind(" at line ").map_or(&*text, |i| &text[..i]);
            if is_malformed_json(&error) {
                E::custom(malformed_in_field(&path, text))
            } else if path == "." {
                E::custom(text)
            } else {
                E::custom(in_field(&path, text))
            }
        }
    }
}

/// A message read from JSON text that it borrows: [`WireMessage`] without the
/// copies.
///
/// It keeps a reference to its exact text and reads its fields from it,
/// borrowing `content` where the text has no escapes, so reading a message
/// allocates nothing in the common case. It refuses exactly the messages a
/// [`WireMessage`] refuses, in the same words, counts and trims the same (it is
/// a [`WindowMessage`]), and serializes as its text.
///
/// Performance: a batch line is read, trimmed and written back, and most of
/// its messages are usually dropped. Reading each message as a `WireMessage`
/// copies its text twice (the raw text and the `content` string) and frees both
/// again; on the `benches/batch/gen.py` corpus those copies were a fifth of the
/// work per line.
///
/// ```
/// use sluice_core::{Profiles, WireMessage, WireMessageRef};
///
/// let input = r#"[{"role":"user","content":"hi","x-trace":7},{"role":"assistant","content":"hello"}]"#;
/// let borrowed: Vec<WireMessageRef<'_>> = serde_json::from_str(input).unwrap();
/// let owned: Vec<WireMessage> = serde_json::from_str(input).unwrap();
/// assert_eq!(borrowed[0].json(), r#"{"role":"user","content":"hi","x-trace":7}"#);
/// assert_eq!(borrowed[1].view(), owned[1].message().view());
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// assert_eq!(model.trim(&borrowed, 100).unwrap(), model.trim(&owned, 100).unwrap());
/// // The same refusal as a `WireMessage`, in the same words.
/// let bad = r#"[{"role":"user","content":5}]"#;
/// let a = serde_json::from_str::<Vec<WireMessageRef<'_>>>(bad).unwrap_err().to_string();
/// let b = serde_json::from_str::<Vec<WireMessage>>(bad).unwrap_err().to_string();
/// assert_eq!(a, b);
/// ```
#[derive(Clone)]
pub struct WireMessageRef<'a> {
    raw: &'a RawValue,
    parts: message::Fields<'a>,
}

impl<'a> WireMessageRef<'a> {
    /// The message's JSON text, exactly as it came (without the whitespace
    /// around it).
    pub fn json(&self) -> &'a str {
        self.raw.get()
    }

    /// Who wrote it.
    pub fn role(&self) -> Role {
        self.parts.role
    }

    /// The message's parts, as sluice reads them.
    pub fn view(&self) -> MessageView<'_> {
        let parts = &self.parts;
        MessageView {
            role: parts.role,
            content: &parts.content.text,
            images: &parts.content.images,
            name: parts.name.as_deref(),
            tool_calls: &parts.tool_calls,
            tool_call_id: parts.tool_call_id.as_deref(),
        }
    }
}

impl WindowMessage for WireMessageRef<'_> {
    fn role(&self) -> Role {
        self.parts.role
    }

    fn tokens<C: MessageCounter + ?Sized>(&self, counter: &C, budget: usize) -> Option<usize> {
        counter.view_tokens(self.view(), budget)
    }
}

impl PartialEq for WireMessageRef<'_> {
    /// Equal when the texts are, as for [`WireMessage`].
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

impl Eq for WireMessageRef<'_> {}

impl fmt::Debug for WireMessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WireMessageRef")
            .field(&self.raw.get())
            .finish()
    }
}

impl Serialize for WireMessageRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireMessageRef<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(deserializer)?;
        // As `WireMessage` does, and in its words: a message is an object.
        if raw.get().starts_with('[') {
            return Err(D::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"struct Message",
            ));
        }
        let parts = match message::Fields::read_plain(raw.get()) {
            Some(parts) => parts,
            None => match serde_json::from_str(raw.get()) {
                Ok(parts) => parts,
                Err(error) => return Err(describe_in_message(raw.get(), error)),
            },
        };
        Ok(Self { raw, parts })
    }
}

impl<'a> message::Fields<'a> {
    /// The parts of the most common message, `{"role": "...", "content": "..."}`
    /// (the two fields in either order, any JSON whitespace) with a known role
    /// and no escapes in it anywhere; `None` for any other message, which serde
    /// then reads.
    ///
    /// Performance: written by hand because it is most of what reading a batch
    /// line costs. Serde's reader of a struct (matching field names through a
    /// visitor, a reader per field) took ~20% of the per-line work of
    /// `sluice trim --jsonl` on the `benches/batch/gen.py` corpus, where every
    /// message is this shape; this reads it in one short pass.
    ///
    /// `text` was read as a JSON value already (the `RawValue`), so it is valid
    /// JSON: a string without a backslash ends at its next quote, and a valid
    /// value with these tokens is this object. Without escapes the strings are
    /// their text, so the parts are exactly serde's.
    fn read_plain(text: &'a str) -> Option<Self> {
        let mut rest = text.strip_prefix('{')?;
        let mut role = None;
        let mut content = None;
        for i in 0..2 {
            if i == 1 {
                rest = skip_ws(rest).strip_prefix(',')?;
            }
            let (key, after) = plain_string(skip_ws(rest))?;
            let (value, after) = plain_string(skip_ws(skip_ws(after).strip_prefix(':')?))?;
            rest = after;
            match key {
                "role" if role.is_none() => role = Some(value.parse().ok()?),
                "content" if content.is_none() => content = Some(value),
                _ => return None,
            }
        }
        (skip_ws(rest) == "}").then_some(())?;
        Some(Self {
            role: role?,
            content: content::Content {
                text: Cow::Borrowed(content?),
                images: Vec::new(),
            },
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        })
    }
}

/// `text` from its first character that is not JSON whitespace.
fn skip_ws(text: &str) -> &str {
    let n = text
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &text[n..]
}

/// The JSON string at the start of `text`, if it has no escapes, and what
/// follows it; `None` for anything else.
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    // memchr: vector instructions, several times a byte-by-byte loop on the
    // long Korean strings of chat histories.
    let end = memchr::memchr2(b'"', b'\\', body.as_bytes())?;
    (body.as_bytes()[end] == b'"').then(|| (&body[..end], &body[end + 1..]))
}
