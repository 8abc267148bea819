//! Model profiles: which tokenizer, which context limit, which chat template.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::BuildError;
use crate::tokenizer::{Embedded, Tokenizer};

/// Where a profile's tokenizer comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenizerSource {
    /// An encoding compiled into the binary.
    Embedded(Embedded),
    /// A Hugging Face `tokenizer.json` file.
    File(PathBuf),
}

impl TokenizerSource {
    /// Loads the tokenizer (embedded encodings are loaded once per process).
    pub fn load(&self) -> Result<Tokenizer, BuildError> {
        match self {
            TokenizerSource::Embedded(e) => Ok(e.tokenizer()),
            TokenizerSource::File(path) => Tokenizer::from_file(path),
        }
    }
}

/// How messages are written out for the model, which decides what they cost.
///
/// `count(message) = tokens(message_prefix + content + message_suffix)` with `{role}`
/// replaced by the message's role; each marker listed in `special_tokens` that
/// appears in the prefix or suffix counts as one token. The reply prefix is counted
/// once per list of messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ChatTemplate {
    /// Written before each message's content. `{role}` stands for the role, and
    /// for a message with a `name`, for the role and the name as ChatML writes
    /// them: `user name=alice`. A template without `{role}` writes neither.
    pub message_prefix: String,
    /// Written after each message's content.
    pub message_suffix: String,
    /// Written once after the last message, where the model's reply begins.
    pub reply_prefix: String,
    /// Markers in the template that are single special tokens.
    #[serde(default)]
    pub special_tokens: Vec<String>,
}

impl ChatTemplate {
    /// ChatML, as used by HyperCLOVA X SEED and OpenAI chat models:
    /// `<|im_start|>{role}\n{content}<|im_end|>\n`, reply prefix
    /// `<|im_start|>assistant\n`.
    pub fn chatml() -> Self {
        Self {
            message_prefix: "<|im_start|>{role}\n".into(),
            message_suffix: "<|im_end|>\n".into(),
            reply_prefix: "<|im_start|>assistant\n".into(),
            special_tokens: vec!["<|im_start|>".into(), "<|im_end|>".into()],
        }
    }

    /// No template: a message costs exactly the tokens of its content.
    pub fn plain() -> Self {
        Self {
            message_prefix: String::new(),
            message_suffix: String::new(),
            reply_prefix: String::new(),
            special_tokens: Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.special_tokens.iter().find(|s| s.is_empty()) {
            return Err(format!("template special token {s:?} is empty"));
        }
        if self.message_suffix.contains("{role}") || self.reply_prefix.contains("{role}") {
            return Err("`{role}` may only appear in message_prefix".into());
        }
        Ok(())
    }
}

/// What an image part of a message costs ([`ImagePart`](crate::ImagePart)).
///
/// sluice does not read an image's pixels (a URL would need the network), so an
/// image costs a fixed number of tokens, chosen as the most the model may
/// charge for it: counting it high keeps a trimmed history within the limit.
/// The default for every built-in profile is OpenAI's published rule for its
/// vision models at its maximum: 85 tokens plus 170 per 512-pixel tile, at most
/// 8 tiles (an image scaled to fit 2048 pixels, its short side to 768), so
/// 1,445 tokens; 85 with `"detail": "low"`. CLOVA Studio publishes no rule for
/// HCX-005's images, so the same bound stands in; set `image_tokens` and
/// `image_tokens_low` in a profiles file to change it.
///
/// ```
/// use sluice_core::{ImageRule, Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-005").unwrap();
/// assert_eq!(model.profile().images, ImageRule::OPENAI_MAXIMUM);
/// let text: Message = serde_json::from_str(r#"{"role":"user","content":"hi"}"#).unwrap();
/// let image: Message = serde_json::from_str(
///     r#"{"role":"user","content":[{"type":"text","text":"hi"},
///        {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}"#,
/// ).unwrap();
/// assert_eq!(model.count_message(&image), model.count_message(&text) + 1445);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ImageRule {
    /// Tokens of an image at `high` or `auto` detail, or none given.
    pub tokens: u32,
    /// Tokens of an image with `"detail": "low"`.
    pub low_detail_tokens: u32,
}

impl ImageRule {
    /// OpenAI's rule at its maximum: 1,445 tokens, 85 at low detail.
    pub const OPENAI_MAXIMUM: ImageRule = ImageRule::new(85 + 170 * 8, 85);

    /// An image costs `tokens`, or `low_detail_tokens` with `"detail": "low"`.
    pub const fn new(tokens: u32, low_detail_tokens: u32) -> Self {
        Self {
            tokens,
            low_detail_tokens,
        }
    }

    /// The tokens of `images` under this rule.
    pub fn count(&self, images: &[crate::ImagePart]) -> usize {
        images
            .iter()
            .map(|image| match image.detail() {
                Some("low") => self.low_detail_tokens,
                _ => self.tokens,
            })
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add)
    }
}

impl Default for ImageRule {
    fn default() -> Self {
        Self::OPENAI_MAXIMUM
    }
}

/// Everything sluice needs to know about a model to count and trim for it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelProfile {
    /// The model name used in requests (`HCX-003`).
    pub name: String,
    /// The tokenizer.
    pub tokenizer: TokenizerSource,
    /// Prompt tokens plus `maxTokens` may not exceed this.
    ///
    /// `u32`, unlike the `usize` token counts everywhere else in the API, because
    /// it is configuration read from TOML and shown in API documents, where a
    /// fixed width says what values are valid; [`Model::window`](crate::Model::window)
    /// widens it to `usize` without loss.
    pub context_limit: u32,
    /// The largest `maxTokens` a request may ask for (`u32` like
    /// [`ModelProfile::context_limit`]).
    pub max_output: u32,
    /// How messages are rendered for counting.
    pub template: ChatTemplate,
    /// What an image part costs.
    pub images: ImageRule,
}

impl ModelProfile {
    /// A profile that renders messages with ChatML ([`ChatTemplate::chatml`]);
    /// [`ModelProfile::with_template`] picks another template.
    ///
    /// ```
    /// use sluice_core::{ChatTemplate, Embedded, ModelProfile, Profiles, TokenizerSource};
    ///
    /// let profile = ModelProfile::new("my-model", TokenizerSource::Embedded(Embedded::O200kBase), 8192, 1024)
    ///     .with_template(ChatTemplate::plain());
    /// let mut profiles = Profiles::builtin();
    /// profiles.insert(profile);
    /// assert_eq!(profiles.get("my-model").unwrap().context_limit, 8192);
    /// ```
    pub fn new(
        name: impl Into<String>,
        tokenizer: TokenizerSource,
        context_limit: u32,
        max_output: u32,
    ) -> Self {
        Self {
            name: name.into(),
            tokenizer,
            context_limit,
            max_output,
            template: ChatTemplate::chatml(),
            images: ImageRule::default(),
        }
    }

    /// The same profile with another chat template.
    pub fn with_template(mut self, template: ChatTemplate) -> Self {
        self.template = template;
        self
    }

    /// The same profile with another rule for images.
    pub fn with_images(mut self, images: ImageRule) -> Self {
        self.images = images;
        self
    }

    fn builtin(name: &str, encoding: Embedded, context_limit: u32, max_output: u32) -> Self {
        Self::new(
            name,
            TokenizerSource::Embedded(encoding),
            context_limit,
            max_output,
        )
    }
}

/// The built-in profiles.
///
/// The HCX profiles count with `cl100k_base` and ChatML: the hosted HyperCLOVA X
/// tokenizer is not public, and the open HyperCLOVAX-SEED tokenizer extends
/// cl100k_base with ChatML markers, so this is a close proxy, not the exact
/// tokenizer. Point a profile at a `tokenizer.json` for exact counts.
/// `HCX-003` and `HCX-DASH-001` use the 4,096-token limit of the sliding-window API
/// page; the others their documented context and output limits.
pub fn builtin_profiles() -> Vec<ModelProfile> {
    use Embedded::{Cl100kBase, O200kBase};
    vec![
        ModelProfile::builtin("HCX-003", Cl100kBase, 4096, 4096),
        ModelProfile::builtin("HCX-DASH-001", Cl100kBase, 4096, 4096),
        ModelProfile::builtin("HCX-005", Cl100kBase, 128_000, 4096),
        ModelProfile::builtin("HCX-DASH-002", Cl100kBase, 32_000, 4096),
        ModelProfile::builtin("HCX-007", Cl100kBase, 128_000, 32_768),
        ModelProfile::builtin("cl100k", Cl100kBase, 8192, 4096),
        ModelProfile::builtin("o200k", O200kBase, 128_000, 16_384),
    ]
}
