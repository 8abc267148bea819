//! The typed values that cross from a run to the store and to the server:
//! what a model was sent ([`SentRequest`]), what it used ([`ResultUsage`]), how
//! it failed ([`ModelError`]), the settings of a turn ([`TurnSettings`]), and
//! why a prompt or a run was refused ([`Blocked`], [`ModelFailure`]).
//!
//! Each is stored as a JSON column and answered as JSON. These JSON objects
//! were `serde_json::Value`s before they were typed, and a `Value` writes its
//! keys sorted: so every struct here declares its fields in alphabetical
//! order, which keeps the stored rows and the answers byte for byte what they
//! were. Keys that older rows lack are optional and left out when absent.

use serde::{Deserialize, Deserializer, Serialize};

/// The style presets (practice-notes.md).
pub const STYLE_PRESETS: [&str; 4] = ["accurate", "balanced", "creative", "custom"];
/// `style_params.format` values.
pub const FORMATS: [&str; 4] = ["plain", "markdown", "bullets", "json"];
/// `generation_params.response_length_preset` values.
pub const LENGTH_PRESETS: [&str; 4] = ["short", "normal", "long", "custom"];

/// `style_params`: the details of a `custom` style (also honoured with a preset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleParams {
    /// `plain`, `markdown`, `bullets` or `json`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "format"
    )]
    pub format: Option<Static>,
    /// Guide with hints and questions instead of giving the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_mode: Option<bool>,
    /// Who the model speaks as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// Re-check the answer before replying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_check: Option<bool>,
    /// Extra system instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// `generation_params` as given (every field optional; precedence is applied
/// when a run resolves them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Largest answer in tokens (`max_completion_tokens` and `max_tokens` are one value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// `short`, `normal`, `long` or `custom`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "length_preset"
    )]
    pub response_length_preset: Option<Static>,
    /// Sampling seed, where the provider supports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// 0..=2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
}

/// The parameters a model is called with, echoed per result
/// (`generation_params` of a result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveParams {
    /// The same value as `max_tokens`, under the original's other name.
    pub max_completion_tokens: u32,
    /// Largest answer, after clamping to the model's profile.
    pub max_tokens: u32,
    /// The length preset, if one was used.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "length_preset"
    )]
    pub response_length_preset: Option<Static>,
    /// The seed, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The style preset in force.
    #[serde(deserialize_with = "style_preset")]
    pub style_preset: Static,
    /// Temperature.
    pub temperature: f64,
    /// top_p.
    pub top_p: f64,
}

/// A retrieval source as reported in `token_usage.sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The document.
    pub document_id: i64,
    /// The knowledge base.
    pub knowledge_id: i64,
    /// The passage.
    pub passage_id: i64,
    /// Its first characters.
    pub preview: String,
    /// Its BM25 score.
    pub score: f64,
}

/// What a model's answer used (`token_usage` of a result): the provider's
/// counts (`None` when the model failed), sluice's own count of the prompt
/// it sent, and the retrieval sources packed into it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultUsage {
    /// Tokens of the answer, as the provider counted them.
    pub completion_tokens: Option<u64>,
    /// Tokens of the prompt as sent, counted by sluice with the model's
    /// profile; `None` when the prompt could not fit the model.
    pub counted_prompt_tokens: Option<usize>,
    /// Tokens of the prompt, as the provider counted them.
    pub prompt_tokens: Option<u64>,
    /// The passages the prompt carried, best first.
    pub sources: Vec<Source>,
    /// Both, as the provider counted them.
    pub total_tokens: Option<u64>,
}

/// How a model failed: the `kind` clients and metrics key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelErrorKind {
    /// The prompt cannot fit the model's context window; it was not called.
    ContextExceeded,
    /// The call passed its deadline.
    Timeout,
    /// The upstream answered 429 after every retry.
    RateLimited,
    /// The upstream refused the request (another 4xx).
    #[serde(rename = "upstream_4xx")]
    Upstream4xx,
    /// The upstream failed (5xx) after every retry.
    #[serde(rename = "upstream_5xx")]
    Upstream5xx,
    /// The connection failed.
    Transport,
    /// The upstream's answer could not be read.
    BadResponse,
    /// The upstream's answer was larger than allowed.
    TooLarge,
}

impl ModelErrorKind {
    /// The kind as written in JSON and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContextExceeded => "context_exceeded",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::Upstream4xx => "upstream_4xx",
            Self::Upstream5xx => "upstream_5xx",
            Self::Transport => "transport",
            Self::BadResponse => "bad_response",
            Self::TooLarge => "too_large",
        }
    }
}

/// One model's failure (`error` of a result): kind, message, upstream status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelError {
    /// What kind of failure.
    pub kind: ModelErrorKind,
    /// What happened, in words.
    pub message: String,
    /// The upstream's HTTP status, when it answered with an error status.
    pub status: Option<u16>,
}

/// One message as a model was sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The text.
    pub content: String,
    /// `system`, `user` or `assistant`.
    pub role: String,
}

/// What the sliding window did to a model's prompt (`request.window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowReport {
    /// The model's context limit.
    pub limit: usize,
    /// Tokens reserved for the answer.
    pub max_tokens: usize,
    /// Messages before trimming.
    pub messages_before: usize,
    /// Messages dropped.
    pub messages_dropped: usize,
    /// Tokens of the prompt kept.
    pub tokens_after: usize,
    /// Whole earlier turns dropped.
    pub turns_dropped: usize,
}

/// What a model was really sent (`request` of a result), after prompt
/// assembly and the sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRequest {
    /// Largest answer in tokens.
    pub max_tokens: u32,
    /// The messages, in order.
    pub messages: Vec<SentMessage>,
    /// The sampling seed.
    pub seed: Option<u64>,
    /// Temperature.
    pub temperature: f64,
    /// top_p.
    pub top_p: f64,
    /// What trimming did; absent in turns stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowReport>,
}

/// The settings a turn was run with (`settings` of a turn). The default is
/// an ordinary turn with the `balanced` preset and nothing else set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnSettings {
    /// The agent used.
    #[serde(default)]
    pub agent_id: Option<i64>,
    /// A blind comparison (the key is written only when true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub blind: bool,
    /// A blind turn's model names in label order; absent for an ordinary
    /// turn, and concealed until the turn has a vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blind_order: Option<Vec<String>>,
    /// The router's domain for the prompt: `Some(None)` when no router
    /// checked it, `None` for a turn stored before the domain was recorded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub domain: Option<Option<String>>,
    /// The few-shot examples, in order.
    #[serde(default)]
    pub few_shot_example_ids: Vec<i64>,
    /// The request's generation parameters (as given).
    #[serde(default)]
    pub generation_params: GenerationParams,
    /// The knowledge bases searched.
    #[serde(default)]
    pub knowledge_ids: Vec<i64>,
    /// The models asked, in order (labels while a blind turn is concealed).
    #[serde(default)]
    pub model_names: Vec<String>,
    /// The request's style details.
    #[serde(default)]
    pub style_params: StyleParams,
    /// The style preset in force.
    #[serde(default = "balanced", deserialize_with = "style_preset")]
    pub style_preset: Static,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            agent_id: None,
            blind: false,
            blind_order: None,
            domain: None,
            few_shot_example_ids: Vec::new(),
            generation_params: GenerationParams::default(),
            knowledge_ids: Vec::new(),
            model_names: Vec::new(),
            style_params: StyleParams::default(),
            style_preset: balanced(),
        }
    }
}

/// Why the router refused a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The content filters that hit.
    pub content_filters: Vec<String>,
    /// The domain the prompt was put in.
    pub domain: String,
    /// The safety categories that hit.
    pub safety: Vec<String>,
}

impl std::fmt::Display for Blocked {
    /// `domain "…": filter, category`: the domain and every hit, filters first.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "domain {:?}: ", self.domain)?;
        let hits = self.content_filters.iter().chain(&self.safety);
        for (i, hit) in hits.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(hit)?;
        }
        Ok(())
    }
}

/// One model's failure in a run where every model failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFailure {
    /// How it failed.
    pub error: ModelError,
    /// Wall time of its call.
    pub latency_ms: i64,
    /// The logical model name.
    pub model_name: String,
}

/// One of the constant lists above. Spelt as an alias so that serde, which
/// borrows a field spelt `&str` from its input, reads it with the helpers
/// below into the constant itself.
type Static = &'static str;

fn is_false(b: &bool) -> bool {
    !*b
}

fn balanced() -> &'static str {
    "balanced"
}

/// A key that may be `null` but is present.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One of `known`, as the constant itself.
fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    known: &[&'static str],
) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| serde::de::Error::unknown_variant(&s, &[]))
}

fn style_preset<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, &STYLE_PRESETS)
}

fn length_preset<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    one_of(d, &LENGTH_PRESETS).map(Some)
}

fn format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    one_of(d, &FORMATS).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Serialized directly, each type writes what its JSON `Value` wrote.
    #[test]
    fn typed_json_is_the_sorted_json_it_replaces() {
        let usage = ResultUsage {
            completion_tokens: Some(4),
            counted_prompt_tokens: Some(9),
            prompt_tokens: Some(3),
            sources: vec![Source {
                document_id: 2,
                knowledge_id: 1,
                passage_id: 3,
                preview: "p".into(),
                score: 0.5,
            }],
            total_tokens: Some(7),
        };
        let settings = TurnSettings {
            blind: true,
            blind_order: Some(vec!["b".into(), "a".into()]),
            domain: Some(None),
            style_params: StyleParams {
                persona: Some("x".into()),
                format: Some("json"),
                ..StyleParams::default()
            },
            generation_params: GenerationParams {
                temperature: Some(0.7),
                max_tokens: Some(5),
                response_length_preset: Some("custom"),
                ..GenerationParams::default()
            },
            style_preset: "creative",
            ..TurnSettings::default()
        };
        let sent = SentRequest {
            max_tokens: 5,
            messages: vec![SentMessage {
                content: "q".into(),
                role: "user".into(),
            }],
            seed: None,
            temperature: 0.7,
            top_p: 1.0,
            window: Some(WindowReport {
                limit: 4096,
                max_tokens: 5,
                messages_before: 1,
                messages_dropped: 0,
                tokens_after: 7,
                turns_dropped: 0,
            }),
        };
        let params = EffectiveParams {
            max_completion_tokens: 5,
            max_tokens: 5,
            response_length_preset: None,
            seed: Some(1),
            style_preset: "balanced",
            temperature: 0.7,
            top_p: 1.0,
        };
        let error = ModelError {
            kind: ModelErrorKind::Upstream5xx,
            message: "m".into(),
            status: Some(502),
        };
        fn same<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(t: T) {
            let typed = serde_json::to_string(&t).unwrap();
            let value: Value = serde_json::to_value(&t).unwrap();
            assert_eq!(typed, value.to_string());
            assert_eq!(serde_json::from_str::<T>(&typed).unwrap(), t);
        }
        same(usage);
        same(settings);
        same(sent);
        same(params);
        same(error.clone());
        same(Blocked {
            content_filters: vec!["a".into()],
            domain: "d".into(),
            safety: vec![],
        });
        same(ModelFailure {
            error,
            latency_ms: 3,
            model_name: "m".into(),
        });
        same(TurnSettings::default());
    }

    /// Rows stored before a key existed read back, and write back, without it.
    #[test]
    fn older_rows_keep_their_shape() {
        let old = json!({"agent_id": null, "few_shot_example_ids": [], "generation_params": {},
            "knowledge_ids": [], "model_names": ["a"], "style_params": {}, "style_preset": "balanced"});
        let settings: TurnSettings = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(settings.domain, None);
        assert_eq!(serde_json::to_value(&settings).unwrap(), old);
        let old = json!({"max_tokens": 5, "messages": [], "seed": null, "temperature": 0.7, "top_p": 1.0});
        let sent: SentRequest = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(serde_json::to_value(&sent).unwrap(), old);
        assert_eq!(
            serde_json::to_string(&ModelErrorKind::Upstream4xx).unwrap(),
            r#""upstream_4xx""#
        );
    }
}
