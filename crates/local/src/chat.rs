//! SmolLM2's chat template (ChatML), applied at the level of token ids.
//!
//! The GGUF's `tokenizer.chat_template` renders
//!
//! ```text
//! <|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n
//! <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//! ```
//!
//! with the default system message only when the conversation does not start
//! with one. Tokenizing that string with special tokens recognised splits it at
//! the markers and encodes the text between them on its own, so building the
//! ids marker by marker gives the same ids, and keeps a `<|im_end|>` typed into
//! a message as plain text instead of letting it close the turn.

use crate::LocalError;
use crate::tokenizer::GgufTokenizer;

/// The system message the template adds when the conversation has none.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (or any other role the caller uses; it is
    /// written into the prompt as is).
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The prompt's ids for `messages`, ending with the assistant's turn opened.
pub fn prompt_ids(
    tokenizer: &GgufTokenizer,
    messages: &[ChatMessage],
) -> Result<Vec<u32>, LocalError> {
    let marker = |name: &str| {
        tokenizer
            .special_token_id(name)
            .ok_or_else(|| LocalError::Tokenizer(format!("the vocabulary has no {name}")))
    };
    let (start, end) = (marker("<|im_start|>")?, marker("<|im_end|>")?);
    let mut ids = Vec::new();
    let mut turn = |role: &str, content: Option<&str>| {
        ids.push(start);
        match content {
            Some(content) => {
                ids.extend(tokenizer.encode(&format!("{role}\n{content}")));
                ids.push(end);
                ids.extend(tokenizer.encode("\n"));
            }
            None => ids.extend(tokenizer.encode(&format!("{role}\n"))),
        }
    };
    if messages.first().is_some_and(|m| m.role != "system") {
        turn("system", Some(DEFAULT_SYSTEM));
    }
    for m in messages {
        turn(&m.role, Some(&m.content));
    }
    turn("assistant", None);
    Ok(ids)
}

/// The template rendered as text, special tokens spelled out: what
/// [`prompt_ids`] encodes (for tests and for comparing with other tokenizers).
pub fn render(messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    if messages.first().is_some_and(|m| m.role != "system") {
        out.push_str(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"));
    }
    for m in messages {
        out.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// The tokens of the system turn the template adds when a conversation does
/// not start with a system message: what counting the messages alone misses.
pub fn default_system_tokens(tokenizer: &GgufTokenizer) -> Result<usize, LocalError> {
    let len = |messages: &[ChatMessage]| prompt_ids(tokenizer, messages).map(|ids| ids.len());
    let (system, user) = (ChatMessage::new("system", ""), ChatMessage::new("user", ""));
    // default + user + reply, minus (empty system + user + reply), plus
    // (empty system + reply), minus reply: the default turn alone.
    Ok(
        len(std::slice::from_ref(&user))? + len(std::slice::from_ref(&system))?
            - len(&[system, user])?
            - len(&[])?,
    )
}
