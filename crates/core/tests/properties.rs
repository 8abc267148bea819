//! The sliding-window contract as properties, checked with a simple counter and
//! with the embedded cl100k_base tokenizer under ChatML.

use proptest::prelude::*;
use sluice_core::{
    Conversation, Exceeded, Message, MessageCounter, Model, Profiles, Role, TrimError, Window,
};

/// One token per character plus 3 per message; 2 for the reply prefix.
pub struct CharCounter;

impl MessageCounter for CharCounter {
    fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
        let n = m.content.chars().count() + 3;
        (n <= budget).then_some(n)
    }

    fn reply_tokens(&self) -> usize {
        2
    }
}

const WORDS: &[&str] = &[
    "hello",
    "날씨",
    "서울의",
    "how are you?",
    "미세먼지 정보 알려줘",
    "ok",
    "<|im_start|>",
    " ",
    "tool output: 23°C",
    "그럼 부산은?",
    "longer sentence with several words in it.",
];

#[derive(Debug, Clone)]
enum Step {
    System(String),
    User(String),
    Assistant(String),
    /// An assistant tool call and its tool result.
    ToolPair(String, String),
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(0..WORDS.len(), 0..6).prop_map(|ix| {
        ix.into_iter()
            .map(|i| WORDS[i])
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => text().prop_map(Step::System),
        4 => text().prop_map(Step::User),
        3 => text().prop_map(Step::Assistant),
        2 => (text(), text()).prop_map(|(a, b)| Step::ToolPair(a, b)),
    ]
}

pub fn history() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(step(), 1..40).prop_map(|steps| {
        let mut out = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            match s {
                Step::System(t) => out.push(Message::system(t)),
                Step::User(t) => out.push(Message::user(t)),
                Step::Assistant(t) => out.push(Message::assistant(t)),
                Step::ToolPair(call, result) => {
                    let id = format!("call_{i}");
                    let mut m = Message::assistant(call);
                    m.tool_calls.push(sluice_core::ToolCall::function(
                        id.clone(),
                        "lookup",
                        serde_json::json!({"q": i}),
                    ));
                    out.push(m);
                    out.push(Message::tool(id, result));
                }
            }
        }
        out
    })
}

/// Start indices of turns among the non-system messages.
pub fn turn_starts(messages: &[Message]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut seen_non_system = false;
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        if !seen_non_system || m.role == Role::User {
            starts.push(i);
        }
        seen_non_system = true;
    }
    starts
}

pub fn total<C: MessageCounter>(counter: &C, messages: &[&Message]) -> usize {
    messages
        .iter()
        .map(|m| counter.message_tokens(m, usize::MAX).unwrap())
        .sum::<usize>()
        + counter.reply_tokens()
}

pub fn check_contract<C: MessageCounter>(
    counter: &C,
    messages: &[Message],
    limit: u32,
    max_tokens: u32,
) -> Result<(), TestCaseError> {
    let before = messages.to_vec();
    let window = Window::new(counter, limit as usize);
    let result = window.trim(messages, i64::from(max_tokens));
    prop_assert_eq!(messages, &before[..], "input unchanged");
    let budget = limit as usize - max_tokens as usize;
    let all: Vec<&Message> = messages.iter().collect();
    let starts = turn_starts(messages);
    let trim = match result {
        Ok(trim) => trim,
        Err(
            ref e @ TrimError::ContextExceeded {
                kind,
                message_tokens,
                reply_tokens,
                max_tokens: max,
                limit: l,
            },
        ) => {
            prop_assert_eq!(
                (reply_tokens, max, l),
                (counter.reply_tokens(), max_tokens as usize, limit as usize)
            );
            prop_assert_eq!(
                e.needed(),
                Some(message_tokens + reply_tokens + max_tokens as usize)
            );
            // Only when the system messages (and the newest turn) do not fit.
            if kind == Exceeded::MaxTokens {
                prop_assert_eq!(message_tokens, 0);
                prop_assert!(reply_tokens + max > l);
                return Ok(());
            }
            let newest = match kind {
                Exceeded::SystemMessages => messages.len(),
                _ => starts.last().copied().unwrap_or(messages.len()),
            };
            let must: Vec<&Message> = messages
                .iter()
                .enumerate()
                .filter(|&(i, m)| m.role == Role::System || i >= newest)
                .map(|(_, m)| m)
                .collect();
            let must_tokens = total(counter, &must);
            prop_assert!(must_tokens > budget);
            prop_assert_eq!(message_tokens + reply_tokens, must_tokens);
            if kind == Exceeded::NewestTurn {
                // The system messages alone would have fitted.
                let systems: Vec<&Message> =
                    messages.iter().filter(|m| m.role == Role::System).collect();
                prop_assert!(total(counter, &systems) <= budget);
            }
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
    };
    let kept: Vec<&Message> = trim.kept(messages).collect();
    let report = trim.report();
    prop_assert_eq!(trim.input_len(), messages.len());
    let by_index: Vec<&Message> = trim.kept_indices().map(|i| &messages[i]).collect();
    prop_assert_eq!(&by_index, &kept);

    // The limit is never exceeded, and the report tells the truth.
    let after = total(counter, &kept);
    prop_assert!(after <= budget, "limit exceeded: {} > {}", after, budget);
    prop_assert_eq!(report.tokens_after, after);
    prop_assert_eq!(report.counts.len(), kept.len());
    prop_assert_eq!(report.messages_dropped, messages.len() - kept.len());

    // Unchanged when everything fits.
    let full = total(counter, &all);
    if full <= budget {
        prop_assert_eq!(kept.len(), messages.len());
        prop_assert_eq!(report.tokens_before, Some(full));
    }

    // Every system message survives, in place; order is kept.
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::System {
            prop_assert!(trim.is_kept(i, messages));
        }
    }
    let applied = trim.apply(messages.to_vec());
    prop_assert_eq!(applied.iter().collect::<Vec<_>>(), kept.clone());

    // The kept non-system messages are a contiguous suffix of whole turns.
    let first = trim.first_kept();
    prop_assert!(first == messages.len() || starts.contains(&first));
    for (i, m) in messages.iter().enumerate() {
        if m.role != Role::System {
            prop_assert_eq!(trim.is_kept(i, messages), i >= first);
        }
    }
    let dropped_turns = starts.iter().filter(|&&s| s < first).count();
    prop_assert_eq!(report.turns_dropped, dropped_turns);

    // Maximal: the next older turn would not fit.
    if let Some(&prev) = starts.iter().rev().find(|&&s| s < first) {
        let with_prev: Vec<&Message> = messages
            .iter()
            .enumerate()
            .filter(|&(i, m)| m.role == Role::System || i >= prev)
            .map(|(_, m)| m)
            .collect();
        prop_assert!(total(counter, &with_prev) > budget, "not maximal");
    }

    // No tool result is separated from its call.
    for m in &kept {
        if let Some(id) = &m.tool_call_id {
            let call_kept = kept
                .iter()
                .any(|a| a.tool_calls.iter().any(|c| &c.id == id));
            let call_exists = messages
                .iter()
                .any(|a| a.tool_calls.iter().any(|c| &c.id == id));
            prop_assert!(call_kept || !call_exists, "orphaned tool result {}", id);
        }
    }

    // Idempotent.
    let again = window.trim(&applied, i64::from(max_tokens)).unwrap();
    prop_assert_eq!(again.report().messages_dropped, 0);
    prop_assert_eq!(again.report().tokens_after, after);
    Ok(())
}

fn hcx() -> &'static sluice_core::Model {
    static MODEL: std::sync::OnceLock<sluice_core::Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| Profiles::builtin().model("HCX-003").unwrap())
}

/// HCX-003's tokenizer and template with a small context, so that short
/// generated histories get trimmed; `cache` is the shared count cache's capacity.
fn small_hcx(limit: u32, cache: usize) -> Model {
    let mut profile = Profiles::builtin().get("HCX-003").unwrap().clone();
    profile.context_limit = limit;
    profile.max_output = limit;
    Model::with_cache_capacity(profile, hcx().tokenizer().clone(), cache)
}

/// Grows a [`Conversation`] one message at a time (with some messages taken back
/// and dropped ones forgotten) and checks that every re-trim equals trimming the
/// same messages from scratch with an uncached model.
fn check_conversation(
    messages: &[Message],
    limit: u32,
    max_tokens: u32,
    ops: &[u8],
) -> Result<(), TestCaseError> {
    let reference = small_hcx(limit, 0);
    let mut chat = Conversation::new(small_hcx(limit, 1024)).full_report(ops.len() % 2 == 0);
    let window = reference.window().full_report(ops.len() % 2 == 0);
    let mut ops = ops.iter().cycle();
    for m in messages {
        chat.push(m.clone());
        let op = ops.next().copied().unwrap_or(0);
        if op % 7 == 0 {
            chat.pop();
        }
        let got = chat.trim(i64::from(max_tokens));
        let want = window.trim(chat.messages(), i64::from(max_tokens));
        prop_assert_eq!(&got, &want);
        if let (Ok(trim), 1) = (&got, op % 5) {
            let kept: Vec<Message> = trim.kept(chat.messages()).cloned().collect();
            chat.forget_dropped(trim);
            prop_assert_eq!(chat.messages(), &kept[..]);
            let again = chat.trim(i64::from(max_tokens)).unwrap();
            prop_assert_eq!(again.report().messages_dropped, 0);
            prop_assert_eq!(again.report().tokens_after, trim.report().tokens_after);
        }
    }
    chat.truncate(chat.len() / 2);
    if !chat.is_empty() {
        let want = window.trim(chat.messages(), i64::from(max_tokens));
        prop_assert_eq!(chat.trim(i64::from(max_tokens)), want);
    }
    Ok(())
}

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn contract_with_char_counter(messages in history(), max in 1u32..200, room in 1u32..500) {
        check_contract(&CharCounter, &messages, max + room, max)?;
    }

    #[test]
    fn contract_with_cl100k(messages in history(), max in 1u32..100, room in 1u32..350) {
        check_contract(hcx(), &messages, max + room, max)?;
    }

    #[test]
    fn conversation_retrims_like_a_fresh_trim(
        messages in history(),
        max in 1u32..100,
        room in 1u32..350,
        ops in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        check_conversation(&messages, max + room, max, &ops)?;
    }
}
