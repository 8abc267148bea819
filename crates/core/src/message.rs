//! Chat messages as they travel over the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
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
/// spellings `tool_calls` and `tool_call_id` are accepted too.
///
/// ```
/// use sluice_core::{Message, Role};
///
/// let history = [Message::system("Answer briefly."), Message::user("hello")];
/// assert_eq!(history[1].role, Role::User);
/// // The wire shape of CLOVA Studio and OpenAI.
/// let parsed: Message = serde_json::from_str(r#"{"role":"assistant","content":"hi"}"#).unwrap();
/// assert_eq!(parsed, Message::assistant("hi"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    #[serde(default)]
    pub content: String,
    /// For an assistant message: the tool calls it makes.
    #[serde(default, alias = "tool_calls", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers.
    #[serde(
        default,
        alias = "tool_call_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with text content and no tool data.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
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
