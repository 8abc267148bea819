//! A [`MessageCounter`] the window cannot trust: counts above the budget,
//! `usize::MAX`, `None` where a count was asked for, a huge reply prefix. The
//! window must still never keep a history over the limit, never drop a system
//! message, and fail with the right [`Exceeded`] kind. These run in debug and
//! release builds (`cargo test -p sluice-core --release`): wrapping arithmetic
//! panics in one and goes unnoticed in the other.

use std::hash::{DefaultHasher, Hash, Hasher};

use proptest::prelude::*;
use serde_json::json;
use sluice_core::{
    Exceeded, FunctionCall, Message, MessageCounter, Role, ToolCall, Trim, TrimError, Window,
};

use crate::properties::{CharCounter, check_contract, config, history, turn_starts};

/// How a [`Hostile`] counter answers for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Like [`CharCounter`]: the count, or `None` above the budget.
    Honest,
    /// The full count, above the budget or not (allowed by the trait).
    Full,
    /// The count when it fits, else `usize::MAX`.
    MaxWhenOver,
    /// The count when it fits, else one more than the budget.
    JustOver,
    /// The count when it fits, else a number that wraps `budget - n` to about half
    /// of `usize::MAX`.
    WrapBait,
    /// `usize::MAX` always, even for a message that fits and without a budget.
    LiarMax,
    /// `None` always, even without a budget.
    LiarNone,
}

impl Mode {
    /// True if every count is the real one whenever it is within the budget, so
    /// that the window must behave exactly as with [`CharCounter`].
    fn truthful(self) -> bool {
        !matches!(self, Mode::LiarMax | Mode::LiarNone)
    }
}

const TRUTHFUL: &[Mode] = &[
    Mode::Honest,
    Mode::Full,
    Mode::MaxWhenOver,
    Mode::JustOver,
    Mode::WrapBait,
];

/// Picks a [`Mode`] per message (by hashing it, so that a message is always
/// answered the same way) and returns `reply` as the reply prefix.
#[derive(Debug, Clone)]
struct Hostile {
    modes: Vec<Mode>,
    seed: u64,
    reply: usize,
}

/// The real count: [`CharCounter`]'s.
fn real(m: &Message) -> usize {
    CharCounter.message_tokens(m, usize::MAX).unwrap()
}

impl Hostile {
    fn mode(&self, m: &Message) -> Mode {
        let mut h = DefaultHasher::new();
        (self.seed, m.role.as_str(), &m.content).hash(&mut h);
        self.modes[h.finish() as usize % self.modes.len()]
    }

    /// What the window can know of `m`: its count, or `None` for "never fits".
    fn seen(&self, m: &Message) -> Option<usize> {
        self.mode(m).truthful().then(|| real(m))
    }

    /// What the window reports for `m` in error numbers (asked with no budget).
    fn reported(&self, m: &Message) -> usize {
        self.seen(m).unwrap_or(usize::MAX)
    }
}

impl MessageCounter for Hostile {
    fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
        let n = real(m);
        let fits = n <= budget;
        match self.mode(m) {
            Mode::Honest => fits.then_some(n),
            Mode::Full => Some(n),
            Mode::MaxWhenOver => Some(if fits { n } else { usize::MAX }),
            Mode::JustOver => Some(if fits { n } else { budget + 1 }),
            Mode::WrapBait => Some(if fits {
                n
            } else {
                budget.wrapping_sub(usize::MAX / 2)
            }),
            Mode::LiarMax => Some(usize::MAX),
            Mode::LiarNone => None,
        }
    }

    fn reply_tokens(&self) -> usize {
        self.reply
    }
}

/// The contract worked out the slow, obvious way from what the window can know
/// of each message ([`Hostile::seen`]): the kept indices, or the error's kind and
/// message tokens.
fn expected(
    counter: &Hostile,
    messages: &[Message],
    limit: usize,
    max_tokens: usize,
) -> Result<Vec<usize>, (Exceeded, usize)> {
    let Some(budget) = counter
        .reply
        .checked_add(max_tokens)
        .and_then(|r| limit.checked_sub(r))
    else {
        return Err((Exceeded::MaxTokens, 0));
    };
    // Sums over indices: of what the window sees (`None`: never fits), and of
    // what it reports in errors (saturating).
    let sum_seen = |ix: &mut dyn Iterator<Item = usize>| -> Option<usize> {
        let mut acc = 0usize;
        for i in ix {
            acc = acc.checked_add(counter.seen(&messages[i])?)?;
        }
        Some(acc)
    };
    let sum_reported = |ix: &mut dyn Iterator<Item = usize>| -> usize {
        let mut acc = 0usize;
        for i in ix {
            acc = acc.saturating_add(counter.reported(&messages[i]));
        }
        acc
    };
    let systems: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].role == Role::System)
        .collect();
    let system_tokens = match sum_seen(&mut systems.iter().copied()) {
        Some(n) if n <= budget => n,
        _ => {
            return Err((
                Exceeded::SystemMessages,
                sum_reported(&mut systems.iter().copied()),
            ));
        }
    };
    let starts = turn_starts(messages);
    let from = |start: usize| (start..messages.len()).filter(|&i| messages[i].role != Role::System);
    // The oldest start whose suffix of turns still fits.
    let first_kept = match starts.iter().find(|&&s| {
        sum_seen(&mut from(s)).is_some_and(|n| n.saturating_add(system_tokens) <= budget)
    }) {
        Some(&s) => s,
        None => match starts.last() {
            Some(&newest) => {
                let needed = system_tokens.saturating_add(sum_reported(&mut from(newest)));
                return Err((Exceeded::NewestTurn, needed));
            }
            None => messages.len(),
        },
    };
    Ok((0..messages.len())
        .filter(|&i| i >= first_kept || messages[i].role == Role::System)
        .collect())
}

/// Trims with `counter` and checks the result against [`expected`] and, by the
/// real counts, against the limit.
fn check_hostile(
    counter: &Hostile,
    messages: &[Message],
    limit: usize,
    max_tokens: usize,
    full_report: bool,
) -> Result<(), TestCaseError> {
    let window = Window::new(counter, limit).full_report(full_report);
    let got = window.trim(messages, max_tokens as i64);
    let want = expected(counter, messages, limit, max_tokens);
    match (&got, &want) {
        (Ok(trim), Ok(kept)) => {
            prop_assert_eq!(&trim.kept_indices().collect::<Vec<_>>(), kept);
            // Never over the limit, by the real counts.
            let real_total: usize = kept.iter().map(|&i| real(&messages[i])).sum();
            prop_assert!(
                real_total + counter.reply + max_tokens <= limit,
                "over the limit: {} + {} + {} > {}",
                real_total,
                counter.reply,
                max_tokens,
                limit
            );
            let report = trim.report();
            prop_assert_eq!(report.tokens_after, real_total + counter.reply);
            prop_assert_eq!(report.messages_dropped, messages.len() - kept.len());
            for (i, m) in messages.iter().enumerate() {
                if m.role == Role::System {
                    prop_assert!(trim.is_kept(i, messages), "system message {} dropped", i);
                }
            }
        }
        (
            Err(TrimError::ContextExceeded {
                kind,
                message_tokens,
                reply_tokens,
                max_tokens: max,
                limit: l,
            }),
            Err((want_kind, want_tokens)),
        ) => {
            prop_assert_eq!(kind, want_kind);
            prop_assert_eq!(message_tokens, want_tokens);
            prop_assert_eq!(
                (*reply_tokens, *max, *l),
                (counter.reply, max_tokens, limit)
            );
            // The text is built without overflowing, whatever the numbers.
            prop_assert!(
                got.as_ref()
                    .unwrap_err()
                    .to_string()
                    .contains("the limit is")
            );
        }
        _ => prop_assert!(false, "got {:?}, expected {:?}", got, want),
    }
    Ok(())
}

fn modes(pool: &'static [Mode]) -> impl Strategy<Value = Vec<Mode>> {
    prop::collection::vec(prop::sample::select(pool), 1..4)
}

const ALL: &[Mode] = &[
    Mode::Honest,
    Mode::Full,
    Mode::MaxWhenOver,
    Mode::JustOver,
    Mode::WrapBait,
    Mode::LiarMax,
    Mode::LiarNone,
];

proptest! {
    #![proptest_config(config())]

    /// A counter that is right whenever a message fits, whatever it returns when
    /// it does not, trims exactly like the honest one.
    #[test]
    fn counts_above_the_budget_change_nothing(
        messages in history(),
        modes in modes(TRUTHFUL),
        seed in any::<u64>(),
        max in 1u32..200,
        room in 1u32..500,
        full_report in any::<bool>(),
    ) {
        let counter = Hostile { modes, seed, reply: CharCounter.reply_tokens() };
        let limit = (max + room) as usize;
        let got = Window::new(&counter, limit)
            .full_report(full_report)
            .trim(&messages, i64::from(max));
        let honest = Window::new(&CharCounter, limit).full_report(full_report);
        prop_assert_eq!(got, honest.trim(&messages, i64::from(max)));
        check_contract(&counter, &messages, max + room, max)?;
    }

    /// Counts that lie (`usize::MAX` or `None` for messages that fit), mixed with
    /// the rest, and any reply prefix: the window keeps what the counts it was
    /// given allow, never more than the limit, and fails with the right kind.
    #[test]
    fn lying_counts_never_overfill_the_window(
        messages in history(),
        modes in modes(ALL),
        seed in any::<u64>(),
        max in 1usize..200,
        room in 0usize..500,
        reply in prop_oneof![
            4 => 0usize..5,
            1 => Just(usize::MAX),
            1 => Just(usize::MAX - 1),
            1 => 0usize..700,
        ],
        full_report in any::<bool>(),
    ) {
        let counter = Hostile { modes, seed, reply };
        check_hostile(&counter, &messages, max + room, max, full_report)?;
    }
}

/// Answers every message with one fixed answer, whatever the budget.
struct Fixed(Option<usize>, usize);

impl MessageCounter for Fixed {
    fn message_tokens(&self, _: &Message, _: usize) -> Option<usize> {
        self.0
    }

    fn reply_tokens(&self) -> usize {
        self.1
    }
}

/// `usize::MAX` for user and assistant messages, the real count for the rest.
struct MaxForTurns;

impl MessageCounter for MaxForTurns {
    fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
        match m.role {
            Role::User | Role::Assistant => Some(usize::MAX),
            _ => CharCounter.message_tokens(m, budget),
        }
    }

    fn reply_tokens(&self) -> usize {
        2
    }
}

fn chat() -> Vec<Message> {
    vec![
        Message::system("sys"),
        Message::user("aaaa"),
        Message::assistant("bbbb"),
        Message::user("cc"),
    ]
}

#[test]
fn max_counts_for_every_message_are_a_system_error_not_a_panic() {
    for answer in [Some(usize::MAX), Some(usize::MAX - 1), Some(1 << 40), None] {
        let err = Window::new(&Fixed(answer, 2), 100)
            .trim(&chat(), 10)
            .unwrap_err();
        let TrimError::ContextExceeded {
            kind,
            message_tokens,
            ..
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!(kind, Exceeded::SystemMessages, "{answer:?}");
        // The count given without a budget is reported; `None` there saturates.
        assert_eq!(message_tokens, answer.unwrap_or(usize::MAX), "{answer:?}");
        assert_eq!(err.needed(), Some(message_tokens.saturating_add(2 + 10)));
        assert!(
            err.to_string()
                .starts_with("context length exceeded: the system messages need")
        );
    }
}

#[test]
fn max_counts_for_the_newest_turn_are_a_newest_turn_error() {
    let err = Window::new(&MaxForTurns, 100)
        .trim(&chat(), 10)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TrimError::ContextExceeded {
                kind: Exceeded::NewestTurn,
                message_tokens: usize::MAX,
                reply_tokens: 2,
                max_tokens: 10,
                limit: 100,
            }
        ),
        "{err:?}"
    );
}

#[test]
fn over_budget_counts_for_older_turns_drop_them() {
    // The older turn is counted `budget + 1`: subtracting it would wrap.
    struct OlderOver;
    impl MessageCounter for OlderOver {
        fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
            match m.content.as_str() {
                "aaaa" | "bbbb" => Some(budget.saturating_add(1)),
                _ => CharCounter.message_tokens(m, budget),
            }
        }
        fn reply_tokens(&self) -> usize {
            2
        }
    }
    let messages = chat();
    let trim = Window::new(&OlderOver, 100).trim(&messages, 10).unwrap();
    assert_eq!(trim.kept_indices().collect::<Vec<_>>(), [0, 3]);
    assert_eq!(trim.report().tokens_after, 6 + 5 + 2);
    assert_eq!(trim.report().turns_dropped, 1);
    // With a full report the dropped turn is counted without a budget, and the
    // counter's answer there (`usize::MAX`) makes the total saturate.
    let full = Window::new(&OlderOver, 100)
        .full_report(true)
        .trim(&messages, 10)
        .unwrap();
    assert_eq!(full.report().tokens_before, Some(usize::MAX));
}

#[test]
fn a_huge_reply_prefix_is_a_max_tokens_error() {
    for reply in [usize::MAX, usize::MAX - 9, 91] {
        let err = Window::new(&Fixed(Some(1), reply), 100)
            .trim(&chat(), 10)
            .unwrap_err();
        assert_eq!(
            err,
            TrimError::ContextExceeded {
                kind: Exceeded::MaxTokens,
                message_tokens: 0,
                reply_tokens: reply,
                max_tokens: 10,
                limit: 100,
            }
        );
    }
    let err = Window::new(&CharCounter, 100)
        .trim(&chat(), 99)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "context length exceeded: the reply prefix and maxTokens need 101 tokens \
         (2 for the reply prefix, maxTokens 99), the limit is 100"
    );
    assert_eq!(err.needed(), Some(101));
}

#[test]
fn system_error_numbers_leave_out_the_reply_prefix_and_max_tokens() {
    let messages = vec![Message::system("s".repeat(60)), Message::user("hi")];
    let err = Window::new(&CharCounter, 50)
        .trim(&messages, 10)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "context length exceeded: the system messages need 75 tokens \
         (63 for the messages, 2 for the reply prefix, maxTokens 10), the limit is 50"
    );
}

#[test]
fn kept_indices_need_no_messages() {
    let mut messages = chat();
    messages.insert(2, Message::system("mid"));
    messages.push(Message::system("end"));
    // [sys, user aaaa, sys mid, assistant bbbb, user cc, sys end]
    let trim = Window::new(&CharCounter, 6 + 6 + 6 + 5 + 2 + 5)
        .trim(&messages, 5)
        .unwrap();
    assert_eq!(trim.input_len(), 6);
    assert_eq!(trim.first_kept(), 4);
    assert_eq!(trim.kept_indices().collect::<Vec<_>>(), [0, 2, 4, 5]);
    assert_eq!(trim.kept_indices().next_back(), Some(5));
    let kept: Vec<_> = trim.kept(&messages).map(|m| m.content.as_str()).collect();
    assert_eq!(kept, ["sys", "mid", "cc", "end"]);
    assert!(trim.is_kept(2, &messages) && !trim.is_kept(3, &messages));
    assert!(!trim.is_kept(6, &messages), "past the end");
    let applied = trim.apply(messages.clone());
    let by_index: Vec<Message> = trim.kept_indices().map(|i| messages[i].clone()).collect();
    assert_eq!(applied, by_index);
}

#[test]
fn nothing_dropped_keeps_every_index() {
    let messages = chat();
    let trim: Trim = Window::new(&CharCounter, 1000).trim(&messages, 5).unwrap();
    assert_eq!(trim.kept_indices().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(trim.input_len(), 4);
}

#[test]
#[should_panic(expected = "other than the one trimmed")]
fn a_trim_refuses_a_shorter_list() {
    let messages = chat();
    let trim = Window::new(&CharCounter, 20).trim(&messages, 5).unwrap();
    let _ = trim.kept(&messages[..3]).count();
}

#[test]
#[should_panic(expected = "other than the one trimmed")]
fn a_trim_refuses_a_longer_list_to_apply() {
    let mut messages = chat();
    let trim = Window::new(&CharCounter, 20).trim(&messages, 5).unwrap();
    messages.push(Message::user("new"));
    let _ = trim.apply(messages);
}

#[test]
fn tool_call_constructors() {
    let call = ToolCall::function("call_1", "weather", json!({"city": "Seoul"}));
    assert_eq!(
        (call.id.as_str(), call.kind.as_str()),
        ("call_1", "function")
    );
    assert_eq!(
        call.function,
        FunctionCall::new("weather", json!({"city": "Seoul"}))
    );
    assert_eq!(
        serde_json::to_value(&call).unwrap(),
        json!({"id": "call_1", "type": "function",
               "function": {"name": "weather", "arguments": {"city": "Seoul"}}})
    );
    // OpenAI's arguments: a string holding JSON, passed through as a string.
    let openai = FunctionCall::new("weather", r#"{"city":"Seoul"}"#);
    assert_eq!(openai.arguments, json!(r#"{"city":"Seoul"}"#));

    let ask =
        Message::assistant_tool_calls("", [call.clone(), ToolCall::function("c2", "f", json!({}))]);
    assert_eq!(ask.role, Role::Assistant);
    assert_eq!(ask.content, "");
    assert_eq!(ask.tool_calls.len(), 2);
    assert_eq!(ask.tool_calls[0], call);
    assert_eq!(ask.tool_call_id, None);
    // A tool call and its answer stay together through trimming.
    let messages = vec![
        Message::user("old question"),
        Message::user("q"),
        ask,
        Message::tool("call_1", "23"),
        Message::tool("c2", "{}"),
    ];
    let trim = Window::new(&CharCounter, 30).trim(&messages, 5).unwrap();
    assert_eq!(trim.kept_indices().collect::<Vec<_>>(), [1, 2, 3, 4]);
}
