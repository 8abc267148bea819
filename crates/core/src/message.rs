//! Chat messages as they travel over the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions that define the assistant; never trimmed.
    System,
    /// The person talking to the model; each user message starts a turn.
    User,
    /// The model's replies, including its tool calls.
    Assistant,
    /// A tool's result, answering an assistant's tool call.
    Tool,
}

impl Role {
    /// The role as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that is not a [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected system, user, assistant or tool)")]
pub struct UnknownRole(pub String);

impl<'de> Deserialize<'de> for Role {
    /// A role from a JSON string, refused in [`UnknownRole`]'s words.
    ///
    /// Performance: read from the borrowed text, without the `String` a
    /// `try_from = "String"` derive allocates for every message.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RoleName;
        impl serde::de::Visitor<'_> for RoleName {
            type Value = Role;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // As `String`'s reader says it, so that errors read as before.
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Role, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(RoleName)
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownRole;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" => Ok(Role::Tool),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

/// One function call requested by an assistant message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The id a tool message answers with `toolCallId`.
    pub id: String,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".to_string()
}

impl ToolCall {
    /// A call of the function `name` with `arguments`, answered by a tool message
    /// with the same `id` (see [`Message::tool`]).
    ///
    /// `arguments` is any JSON value: an object (CLOVA v3) or a string holding
    /// JSON (OpenAI), passed through as given.
    ///
    /// ```
    /// use sluice_core::{Message, ToolCall};
    /// use serde_json::json;
    ///
    /// let call = ToolCall::function("call_1", "weather", json!({"city": "Seoul"}));
    /// let ask = Message::assistant_tool_calls("", [call]);
    /// let answer = Message::tool("call_1", "23°C, clear");
    /// assert_eq!(ask.tool_calls[0].kind, "function");
    /// assert_eq!(answer.tool_call_id.as_deref(), Some(ask.tool_calls[0].id.as_str()));
    /// ```
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<serde_json::Value>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall::new(name, arguments),
        }
    }
}

impl FunctionCall {
    /// The function `name` with `arguments` (a JSON object, or a string holding
    /// JSON).
    pub fn new(name: impl Into<String>, arguments: impl Into<serde_json::Value>) -> Self {
        Self {
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// The function part of a [`ToolCall`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments: a JSON object (CLOVA v3) or a JSON-encoded string (OpenAI).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A chat message.
///
/// Field names follow CLOVA Studio (`toolCalls`, `toolCallId`); the OpenAI
/// spellings `tool_calls` and `tool_call_id` are accepted too, and parse to the
/// same message.
///
/// `content` is the message's text. On the wire it may be a string, `null`
/// (OpenAI's usual value beside tool calls; read as empty) or an array of parts
/// (`[{"type": "text", "text": "..."}]`), whose text parts are joined with a
/// newline, as vLLM and the OpenAI-compatible servers render them. Image parts
/// (`{"type": "image_url", ...}`, OpenAI's `image_url` or CLOVA's `imageUrl` /
/// `dataUri`) are kept in [`Message::images`] and counted by the profile's
/// [`ImageRule`](crate::ImageRule). A part of any other type (audio, a file) is
/// refused with an error naming its type: its tokens depend on the model's
/// encoder, which no local tokenizer knows, and no rule stands in for it.
///
/// A `Message` is the view sluice counts: serializing it writes the known fields,
/// `content` as a string (or, with images, as one text part followed by the
/// image parts). To send messages back exactly as they came, unknown fields and
/// all, parse them as [`WireMessage`](crate::WireMessage)s.
///
/// ```
/// use sluice_core::{Message, Role};
///
/// let history = [Message::system("Answer briefly."), Message::user("hello")];
/// assert_eq!(history[1].role, Role::User);
/// // The wire shape of CLOVA Studio and OpenAI.
/// let parsed: Message = serde_json::from_str(r#"{"role":"assistant","content":"hi"}"#).unwrap();
/// assert_eq!(parsed, Message::assistant("hi"));
/// // Content as parts, and OpenAI's `null` beside tool calls.
/// let parts: Message = serde_json::from_str(
///     r#"{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"there"}]}"#,
/// ).unwrap();
/// assert_eq!(parts.content, "hello\nthere");
/// let null: Message = serde_json::from_str(r#"{"role":"assistant","content":null}"#).unwrap();
/// assert_eq!(null.content, "");
/// // A message is an object: an array is refused, in WireMessage's words.
/// let array = r#"["user","hi"]"#;
/// let refused = serde_json::from_str::<Message>(array).unwrap_err().to_string();
/// let wire = serde_json::from_str::<sluice_core::WireMessage>(array).unwrap_err().to_string();
/// assert!(refused.starts_with("invalid type: sequence, expected struct Message"), "{refused}");
/// assert!(wire.starts_with("invalid type: sequence, expected struct Message"), "{wire}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// The image parts of `content`, in order, as they came.
    pub images: Vec<ImagePart>,
    /// The participant's name (OpenAI's `name`), counted with the role; see
    /// [`crate::ChatTemplate`].
    pub name: Option<String>,
    /// For an assistant message: the tool calls it makes.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

/// A message's fields as the wire spells them (CLOVA's names, OpenAI's as
/// aliases), with `content` borrowed where the input allows: what
/// [`Message`] and [`WireMessageRef`](crate::WireMessageRef) both read.
#[derive(Clone, Deserialize)]
#[serde(rename = "Message", rename_all = "camelCase")]
pub(crate) struct Fields<'a> {
    pub(crate) role: Role,
    #[serde(default, borrow, deserialize_with = "content::read")]
    pub(crate) content: content::Content<'a>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, alias = "tool_calls", deserialize_with = "null_as_empty")]
    pub(crate) tool_calls: Vec<ToolCall>,
    #[serde(default, alias = "tool_call_id")]
    pub(crate) tool_call_id: Option<String>,
}

impl From<Fields<'_>> for Message {
    fn from(fields: Fields<'_>) -> Self {
        Message {
            role: fields.role,
            content: fields.content.text.into_owned(),
            images: fields.content.images,
            name: fields.name,
            tool_calls: fields.tool_calls,
            tool_call_id: fields.tool_call_id,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Message", 5)?;
        out.serialize_field("role", &self.role)?;
        if self.images.is_empty() {
            out.serialize_field("content", &self.content)?;
        } else {
            out.serialize_field(
                "content",
                &content::Written {
                    text: &self.content,
                    images: &self.images,
                },
            )?;
        }
        if let Some(name) = &self.name {
            out.serialize_field("name", name)?;
        }
        if !self.tool_calls.is_empty() {
            out.serialize_field("toolCalls", &self.tool_calls)?;
        }
        if let Some(id) = &self.tool_call_id {
            out.serialize_field("toolCallId", id)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    /// The derived reader, given an object only: serde reads a struct from an
    /// array as well (`["user", "hi"]`), but a message is an object, and
    /// [`WireMessage`](crate::WireMessage) refuses an array in the same words.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = Message;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct Message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Message, A::Error> {
                Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Message::from)
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// `null` for a list reads as an empty list (OpenAI clients send
/// `"tool_calls": null`).
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// An image part of a message's `content`, kept as it came.
///
/// OpenAI writes `{"type": "image_url", "image_url": {"url": "...", "detail":
/// "low"}}`; CLOVA Studio's v3 API `{"type": "image_url", "imageUrl": {"url":
/// "..."}}` or `"dataUri": {"data": "..."}`. What it costs is the profile's
/// [`ImageRule`](crate::ImageRule): the image's pixels are not read.
///
/// ```
/// use sluice_core::Message;
///
/// let m: Message = serde_json::from_str(
///     r#"{"role":"user","content":[{"type":"text","text":"what is this?"},
///        {"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}]}"#,
/// ).unwrap();
/// assert_eq!(m.content, "what is this?");
/// assert_eq!(m.images[0].detail(), Some("low"));
/// assert_eq!(m.images[0].part()["image_url"]["url"], "https://example.com/a.png");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePart {
    part: serde_json::Value,
}

impl ImagePart {
    /// The part's `type`.
    pub const TYPE: &'static str = "image_url";

    /// The keys that hold the image, one of which an image part has: OpenAI's
    /// `image_url`, CLOVA Studio's `imageUrl` and `dataUri`.
    pub const SOURCES: [&'static str; 3] = ["image_url", "imageUrl", "dataUri"];

    /// An image part from its JSON object, if it is one (`"type": "image_url"`
    /// and one of [`ImagePart::SOURCES`]).
    pub fn from_part(part: serde_json::Value) -> Option<Self> {
        let image = part.get("type").and_then(serde_json::Value::as_str) == Some(Self::TYPE)
            && Self::SOURCES.iter().any(|key| part.get(key).is_some());
        image.then_some(Self { part })
    }

    /// The part's JSON object, as it came.
    pub fn part(&self) -> &serde_json::Value {
        &self.part
    }

    /// The detail the client asked for (OpenAI's `detail`: `low`, `high`,
    /// `auto`), in either wire's spelling of the URL object.
    pub fn detail(&self) -> Option<&str> {
        ["image_url", "imageUrl"]
            .iter()
            .find_map(|key| self.part.get(key)?.get("detail")?.as_str())
    }
}

/// The three shapes of `content`.
pub(crate) mod content {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};

    use super::ImagePart;

    /// Text parts are joined with this, as vLLM renders them.
    const PART_SEPARATOR: &str = "\n";

    /// `content` as sluice reads it: the text (borrowed from the input where it
    /// can be, so that reading a message copies no text) and the image parts.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Content<'a> {
        pub(crate) text: Cow<'a, str>,
        pub(crate) images: Vec<ImagePart>,
    }

    pub(crate) fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Content<'de>, D::Error> {
        d.deserialize_any(Shapes)
    }

    /// `content` of a message with images, written back: the text as one text
    /// part (if any), then the image parts.
    pub(crate) struct Written<'a> {
        pub(crate) text: &'a str,
        pub(crate) images: &'a [ImagePart],
    }

    impl Serialize for Written<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            struct TextPart<'a>(&'a str);
            impl Serialize for TextPart<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    let mut part = serializer.serialize_map(Some(2))?;
                    part.serialize_entry("type", "text")?;
                    part.serialize_entry("text", self.0)?;
                    part.end()
                }
            }
            let text = !self.text.is_empty();
            let mut parts =
                serializer.serialize_seq(Some(usize::from(text) + self.images.len()))?;
            if text {
                parts.serialize_element(&TextPart(self.text))?;
            }
            for image in self.images {
                parts.serialize_element(image.part())?;
            }
            parts.end()
        }
    }

    struct Shapes;

    impl<'de> Visitor<'de> for Shapes {
        type Value = Content<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, null or an array of text and image parts")
        }

        fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(text(Cow::Borrowed(s)))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(text(Cow::Owned(s.to_owned())))
        }

        fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
            Ok(text(Cow::Owned(s)))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Content::default())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Content::default())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Self::Value, A::Error> {
            let mut joined = String::new();
            let mut first = true;
            let mut images = Vec::new();
            while let Some(part) = parts.next_element_seed(Part)? {
                match part {
                    Read::Text(part) => {
                        if !first {
                            joined.push_str(PART_SEPARATOR);
                        }
                        first = false;
                        joined.push_str(&part);
                    }
                    Read::Image(image) => images.push(image),
                }
            }
            Ok(Content {
                text: Cow::Owned(joined),
                images,
            })
        }
    }

    fn text(text: Cow<'_, str>) -> Content<'_> {
        Content {
            text,
            images: Vec::new(),
        }
    }

    /// One part: `{"type": "text", "text": "..."}` (other fields ignored) or
    /// `{"type": "image_url", ...}` (kept whole); other types refused.
    struct Part;

    enum Read {
        Text(String),
        Image(ImagePart),
    }

    impl<'de> de::DeserializeSeed<'de> for Part {
        type Value = Read;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Read, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Part {
        type Value = Read;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a content part like {"type": "text", "text": "..."}"#)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
            let mut kind: Option<String> = None;
            let mut text: Option<String> = None;
            // The other fields, kept for an image part (a text part normally
            // has none, so this stays empty and allocates nothing).
            let mut rest = serde_json::Map::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match &*key {
                    "type" => kind = Some(map.next_value()?),
                    "text" => text = Some(map.next_value()?),
                    _ => {
                        rest.insert(key.into_owned(), map.next_value()?);
                    }
                }
            }
            match (kind.as_deref(), text) {
                (Some("text"), Some(text)) => Ok(Read::Text(text)),
                (Some("text"), None) => Err(de::Error::missing_field("text")),
                (Some(ImagePart::TYPE), text) => {
                    if !ImagePart::SOURCES.iter().any(|key| rest.contains_key(*key)) {
                        return Err(de::Error::custom(
                            "an image part needs its image: `image_url` (OpenAI), or `imageUrl` \
                             or `dataUri` (CLOVA Studio)",
                        ));
                    }
                    if let Some(text) = text {
                        rest.insert("text".into(), text.into());
                    }
                    rest.insert("type".into(), ImagePart::TYPE.into());
                    Ok(Read::Image(ImagePart {
                        part: serde_json::Value::Object(rest),
                    }))
                }
                (None, _) => Err(de::Error::missing_field("type")),
                (Some(other), _) => Err(de::Error::custom(format_args!(
                    "a content part of type `{other}` cannot be counted: its tokens depend on \
                     the model's own encoder, which no local tokenizer knows; only `text` and \
                     `image_url` parts are counted (send the text, or trim before adding the \
                     {other} part)"
                ))),
            }
        }
    }
}

impl Message {
    /// A message with text content and no tool data.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            images: Vec::new(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// This message with the participant name `name`.
    ///
    /// ```
    /// use sluice_core::Message;
    ///
    /// let m = Message::user("hi").with_name("alice");
    /// assert_eq!(m.name.as_deref(), Some("alice"));
    /// ```
    pub fn with_name(self, name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..self
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An `assistant` message that makes `tool_calls` (with `content` beside
    /// them, often empty).
    pub fn assistant_tool_calls(
        content: impl Into<String>,
        tool_calls: impl IntoIterator<Item = ToolCall>,
    ) -> Self {
        Self {
            tool_calls: tool_calls.into_iter().collect(),
            ..Self::new(Role::Assistant, content)
        }
    }

    /// A `tool` message answering the call `call_id`.
    pub fn tool(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A message's parts, borrowed: what counting reads of a message, whether it
/// is a [`Message`] or was read without copying its text
/// ([`WireMessageRef`](crate::WireMessageRef)).
///
/// ```
/// use sluice_core::{Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let message = Message::user("hello").with_name("kim");
/// let view = message.view();
/// assert_eq!((view.content, view.name), ("hello", Some("kim")));
/// assert_eq!(view.to_message(), message);
/// assert_eq!(model.count_view(view), model.count_message(&message));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageView<'a> {
    /// Who wrote it.
    pub role: Role,
    /// The text (parts already joined).
    pub content: &'a str,
    /// The image parts.
    pub images: &'a [ImagePart],
    /// The participant's name.
    pub name: Option<&'a str>,
    /// For an assistant message: the tool calls it makes.
    pub tool_calls: &'a [ToolCall],
    /// For a tool message: the id of the call it answers.
    pub tool_call_id: Option<&'a str>,
}

impl MessageView<'_> {
    /// The message, owned.
    pub fn to_message(&self) -> Message {
        Message {
            role: self.role,
            content: self.content.to_owned(),
            images: self.images.to_vec(),
            name: self.name.map(str::to_owned),
            tool_calls: self.tool_calls.to_vec(),
            tool_call_id: self.tool_call_id.map(str::to_owned),
        }
    }
}

impl Message {
    /// The message's parts, borrowed.
    pub fn view(&self) -> MessageView<'_> {
        MessageView {
            role: self.role,
            content: &self.content,
            images: &self.images,
            name: self.name.as_deref(),
            tool_calls: &self.tool_calls,
            tool_call_id: self.tool_call_id.as_deref(),
        }
    }
}

impl AsRef<Message> for Message {
    fn as_ref(&self) -> &Message {
        self
    }
}
