//! Prompt assembly in the original's order: one system message (the style's
//! instruction, `style_params.system_prompt`, the agent's instructions), the
//! few-shot pairs, earlier turns, then the user's prompt with the retrieved
//! passages under a `[Context]` heading. Also the style preset table and the
//! precedence of generation parameters.

use sluice_core::{Message, Model};

pub use crate::contract::{EffectiveParams, Source};
use crate::request::{GenerationParams, StyleParams};
use crate::store::SearchHit;

/// Server default temperature.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// Server default top_p.
pub const DEFAULT_TOP_P: f64 = 0.9;
/// Answer length when nothing sets one (`normal`).
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Most tokens of retrieved context in one prompt.
pub const CONTEXT_TOKENS: usize = 1_500;

/// One row of the style preset table: `(name, temperature, top_p, instruction)`.
pub type StyleRow = (&'static str, Option<f64>, Option<f64>, Option<&'static str>);

/// The style presets (practice-notes.md; documented in the README and OpenAPI).
pub const STYLE_TABLE: [StyleRow; 4] = [
    (
        "accurate",
        Some(0.2),
        Some(0.8),
        Some("Answer precisely. Rely on the given context, and say so when you are not sure."),
    ),
    ("balanced", Some(0.7), Some(0.9), None),
    (
        "creative",
        Some(1.0),
        Some(0.95),
        Some("Answer imaginatively, and offer alternatives."),
    ),
    ("custom", None, None, None),
];

/// Output tokens for a `response_length_preset`.
pub fn length_tokens(preset: &str) -> Option<u32> {
    match preset {
        "short" => Some(256),
        "normal" => Some(512),
        "long" => Some(2_048),
        _ => None,
    }
}

/// Resolves generation parameters, lowest precedence first: server defaults,
/// the agent's, the style preset's (only when one was chosen), the request's;
/// the maximum is clamped to `max_output`. With no preset chosen the echoed
/// preset is `balanced`, whose values are the server defaults.
pub fn effective_params(
    agent: &GenerationParams,
    preset: Option<&'static str>,
    request: &GenerationParams,
    max_output: u32,
) -> EffectiveParams {
    let (_, preset_t, preset_p, _) = preset
        .and_then(|p| STYLE_TABLE.iter().find(|row| row.0 == p).copied())
        .unwrap_or(("balanced", None, None, None));
    let temperature = request
        .temperature
        .or(preset_t)
        .or(agent.temperature)
        .unwrap_or(DEFAULT_TEMPERATURE);
    let top_p = request
        .top_p
        .or(preset_p)
        .or(agent.top_p)
        .unwrap_or(DEFAULT_TOP_P);
    let length = request
        .response_length_preset
        .or(agent.response_length_preset);
    let max = request
        .max_tokens
        .or_else(|| request.response_length_preset.and_then(length_tokens))
        .or(agent.max_tokens)
        .or_else(|| agent.response_length_preset.and_then(length_tokens))
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(max_output);
    EffectiveParams {
        temperature,
        top_p,
        max_tokens: max,
        max_completion_tokens: max,
        response_length_preset: length,
        seed: request.seed.or(agent.seed),
        style_preset: preset.unwrap_or("balanced"),
    }
}

/// The style instruction: the preset's sentence, then one per `style_params` key.
pub fn style_instruction(preset: &str, style: &StyleParams) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some((_, _, _, Some(text))) = STYLE_TABLE.iter().find(|row| row.0 == preset) {
        parts.push((*text).to_string());
    }
    if let Some(persona) = style.persona.as_deref().filter(|p| !p.is_empty()) {
        parts.push(format!("Speak as {persona}."));
    }
    match style.format {
        Some("plain") => parts.push("Format the answer as plain text, without markup.".into()),
        Some("markdown") => parts.push("Format the answer in Markdown.".into()),
        Some("bullets") => parts.push("Format the answer as a bulleted list.".into()),
        Some("json") => parts.push("Answer with one valid JSON value and nothing else.".into()),
        _ => {}
    }
    if style.hint_mode == Some(true) {
        parts.push(
            "Do not give the answer away: guide the student with hints and questions so they \
             find it themselves."
                .into(),
        );
    }
    if style.self_check == Some(true) {
        parts.push(
            "Before replying, check your answer step by step and correct any mistake.".into(),
        );
    }
    parts.join(" ")
}

/// The system message's text: style instruction, then the style's
/// `system_prompt`, then the agent's instructions; empty parts left out.
pub fn system_text(preset: &str, style: &StyleParams, agent_instructions: Option<&str>) -> String {
    [
        Some(style_instruction(preset, style)),
        style.system_prompt.clone(),
        agent_instructions.map(str::to_string),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("\n\n")
}

/// The passages that fit `budget` tokens of `model`, best first, and the user
/// message: the prompt, then `[Context]` with the passages numbered.
pub fn user_message(
    prompt: &str,
    hits: &[SearchHit],
    model: &Model,
    budget: usize,
) -> (String, Vec<Source>) {
    let mut used = 0;
    let mut blocks = Vec::new();
    let mut sources = Vec::new();
    for hit in hits {
        let block = format!("[{}] {}", blocks.len() + 1, hit.passage.text);
        let cost = model.tokenizer().count(&block) + 1;
        if used + cost > budget {
            continue;
        }
        used += cost;
        blocks.push(block);
        sources.push(Source {
            knowledge_id: hit.passage.knowledge_id,
            document_id: hit.passage.document_id,
            passage_id: hit.passage.id,
            score: hit.score,
            preview: hit.passage.text.chars().take(80).collect(),
        });
    }
    if blocks.is_empty() {
        return (prompt.to_string(), sources);
    }
    (
        format!("{prompt}\n\n[Context]\n{}", blocks.join("\n\n")),
        sources,
    )
}

/// A title from the prompt: at most 30 characters, cut at a word boundary when
/// there is one, with `…` when cut.
pub fn session_title(prompt: &str) -> String {
    const MAX: usize = 30;
    let flat: String = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        return flat;
    }
    let head: String = flat.chars().take(MAX - 1).collect();
    let cut = match head.rfind(' ') {
        Some(i) if i > 0 => &head[..i],
        _ => head.as_str(),
    };
    format!("{}…", cut.trim_end())
}

/// The messages for one model: system, few-shot pairs, earlier turns, the user message.
pub fn messages(
    system: &str,
    few_shots: &[(String, String)],
    history: &[(String, String)],
    user: String,
) -> Vec<Message> {
    let mut out = Vec::with_capacity(2 + 2 * (few_shots.len() + history.len()));
    if !system.is_empty() {
        out.push(Message::system(system));
    }
    for (q, a) in few_shots.iter().chain(history) {
        out.push(Message::user(q.as_str()));
        out.push(Message::assistant(a.as_str()));
    }
    out.push(Message::user(user));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_short_and_cut_at_words() {
        assert_eq!(session_title("  hello   world "), "hello world");
        let t = session_title("Explain the difference between TCP and UDP in simple words");
        assert!(t.chars().count() <= 30, "{t}");
        assert_eq!(t, "Explain the difference…");
        let k = session_title("서울의날씨와미세먼지정보를한번에알려주는서비스를만들고싶어요정말로");
        assert_eq!(k.chars().count(), 30);
    }

    #[test]
    fn precedence_is_defaults_agent_preset_request() {
        let none = GenerationParams::default();
        let p = effective_params(&none, Some("balanced"), &none, 4096);
        assert_eq!((p.temperature, p.top_p, p.max_tokens), (0.7, 0.9, 512));
        let agent = GenerationParams {
            temperature: Some(0.1),
            max_tokens: Some(100),
            ..none.clone()
        };
        assert_eq!(
            effective_params(&agent, Some("custom"), &none, 4096).temperature,
            0.1
        );
        assert_eq!(
            effective_params(&agent, Some("creative"), &none, 4096).temperature,
            1.0
        );
        let request = GenerationParams {
            temperature: Some(1.5),
            response_length_preset: Some("long"),
            ..none.clone()
        };
        let p = effective_params(&agent, Some("accurate"), &request, 1000);
        assert_eq!(
            (p.temperature, p.top_p, p.max_tokens),
            (1.5, 0.8, 1000),
            "clamped"
        );
    }

    #[test]
    fn the_system_message_keeps_the_original_order() {
        let style = StyleParams {
            system_prompt: Some("SYS".into()),
            hint_mode: Some(true),
            ..StyleParams::default()
        };
        let text = system_text("accurate", &style, Some("AGENT"));
        let (a, s, g) = (
            text.find("precisely").unwrap(),
            text.find("SYS").unwrap(),
            text.find("AGENT").unwrap(),
        );
        assert!(a < s && s < g, "{text}");
        assert!(text.contains("hints"));
        assert_eq!(system_text("balanced", &StyleParams::default(), None), "");
    }
}
