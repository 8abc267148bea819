//! `Window::trim` on arbitrary conversations, budgets and counters, checked
//! against an independent O(n^2) reference written from the rules in
//! docs/design.md and the doc comment of `Window`.
//!
//! With a truthful counter the result must be exactly the reference's (kept
//! indices, report, error). With a lying counter (counts above the budget,
//! `None` for messages that fit, arbitrary numbers, a huge reply prefix) it must
//! not panic, and whatever it keeps must fit the limit by the counts it reports.

#![no_main]

use std::cell::Cell;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_core::{Exceeded, Message, MessageCounter, Role, ToolCall, TrimError, Window};

/// How the counter answers.
#[derive(Debug, Clone, Copy, Arbitrary, PartialEq, Eq)]
enum Honesty {
    /// Always the full count.
    Full,
    /// The full count when it fits the budget, else `None` (the early stop the
    /// contract allows).
    EarlyStop,
    /// The full count, or any number above the budget when it does not fit.
    Above,
    /// Answers taken from the fuzz input, whatever the message.
    Lying,
}

#[derive(Debug)]
struct Input {
    messages: Vec<Message>,
    limit: usize,
    max_output: usize,
    max_tokens: i64,
    reply: usize,
    full_report: bool,
    honesty: Honesty,
    /// For `Honesty::Lying`: answers, used in turn (then `None` forever).
    lies: Vec<Option<usize>>,
}

fn small_usize(u: &mut Unstructured<'_>) -> arbitrary::Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => usize::MAX - usize::from(u.arbitrary::<u8>()?),
        1 => usize::from(u.arbitrary::<u16>()?),
        _ => usize::from(u.arbitrary::<u8>()?),
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0u8..=40)?;
        let mut messages = Vec::with_capacity(usize::from(n));
        let mut calls = 0u32;
        for _ in 0..n {
            let role = match u.int_in_range(0u8..=9)? {
                0 | 1 => Role::System,
                2..=4 => Role::User,
                5..=7 => Role::Assistant,
                _ => Role::Tool,
            };
            // The content's length drives the truthful count.
            let len = match u.int_in_range(0u8..=15)? {
                0 => usize::from(u.arbitrary::<u16>()? % 2048),
                k => usize::from(k) * usize::from(u.int_in_range(0u8..=12)?),
            };
            let mut m = Message::new(role, "x".repeat(len));
            if u.ratio(1u8, 8)? {
                m.name = Some(String::arbitrary(u)?);
            }
            match role {
                Role::Assistant if u.ratio(1u8, 3)? => {
                    for _ in 0..u.int_in_range(1u8..=2)? {
                        calls += 1;
                        m.tool_calls
                            .push(ToolCall::function(format!("c{calls}"), "f", "{}"));
                    }
                }
                // Usually answers a recent call; sometimes one never made.
                Role::Tool => {
                    let back = u32::from(u.int_in_range(0u8..=3)?);
                    m.tool_call_id = Some(format!("c{}", calls.saturating_sub(back)));
                }
                _ => {}
            }
            messages.push(m);
        }
        let limit = small_usize(u)?;
        let max_output = if u.ratio(1u8, 4)? {
            small_usize(u)?
        } else {
            limit
        };
        let max_tokens = match u.int_in_range(0u8..=9)? {
            0 => i64::arbitrary(u)?,
            1 => -1,
            _ => i64::from(u.arbitrary::<u8>()?),
        };
        let reply = if u.ratio(1u8, 16)? {
            usize::MAX
        } else {
            usize::from(u.int_in_range(0u8..=5)?)
        };
        let full_report = bool::arbitrary(u)?;
        let honesty = Honesty::arbitrary(u)?;
        let mut lies = Vec::new();
        if honesty == Honesty::Lying {
            for _ in 0..u.int_in_range(0u8..=64)? {
                lies.push(match u.int_in_range(0u8..=3)? {
                    0 => None,
                    1 => Some(usize::MAX - usize::from(u.arbitrary::<u8>()?)),
                    _ => Some(usize::from(u.arbitrary::<u16>()?)),
                });
            }
        }
        Ok(Input {
            messages,
            limit,
            max_output,
            max_tokens,
            reply,
            full_report,
            honesty,
            lies,
        })
    }
}

/// The truthful count of a message: a pure function of it.
fn true_count(m: &Message) -> usize {
    1 + m.content.len()
        + m.name.as_ref().map_or(0, |n| n.len() + 1)
        + 3 * m.tool_calls.len()
        + m.tool_call_id.as_ref().map_or(0, |_| 1)
}

struct Counter<'i> {
    honesty: Honesty,
    reply: usize,
    lies: &'i [Option<usize>],
    next_lie: Cell<usize>,
    calls: Cell<usize>,
}

impl MessageCounter for Counter<'_> {
    fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
        self.calls.set(self.calls.get() + 1);
        let n = true_count(m);
        match self.honesty {
            Honesty::Full => Some(n),
            Honesty::EarlyStop => Some(n).filter(|&n| n <= budget),
            Honesty::Above => Some(if n <= budget {
                n
            } else {
                budget.saturating_add(n)
            }),
            Honesty::Lying => {
                let i = self.next_lie.get();
                self.next_lie.set(i + 1);
                self.lies.get(i).copied().flatten()
            }
        }
    }

    fn reply_tokens(&self) -> usize {
        self.reply
    }
}

/// The reference: what the rules say, computed the slow and obvious way.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    kept: Vec<usize>,
    turns_dropped: usize,
    tokens_after: usize,
    tokens_before: usize,
}

/// The start index of every turn, oldest first.
fn turn_starts(messages: &[Message]) -> Vec<usize> {
    let mut starts = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        if starts.is_empty() || m.role == Role::User {
            starts.push(i);
        }
    }
    starts
}

fn reference(input: &Input) -> Result<Expected, TrimError> {
    let messages = &input.messages;
    let max_tokens = usize::try_from(input.max_tokens)
        .ok()
        .filter(|&m| m >= 1 && m <= input.max_output)
        .ok_or(TrimError::MaxTokens {
            got: input.max_tokens,
            max: input.max_output,
        })?;
    if messages.is_empty() {
        return Err(TrimError::EmptyMessages);
    }
    let counts: Vec<u128> = messages.iter().map(|m| true_count(m) as u128).collect();
    let limit = input.limit as u128;
    let reserved = input.reply as u128 + max_tokens as u128;
    let exceeded = |kind, message_tokens: u128| TrimError::ContextExceeded {
        kind,
        message_tokens: message_tokens as usize,
        reply_tokens: input.reply,
        max_tokens,
        limit: input.limit,
    };
    if reserved > limit {
        return Err(exceeded(Exceeded::MaxTokens, 0));
    }
    let systems: u128 = (0..messages.len())
        .filter(|&i| messages[i].role == Role::System)
        .map(|i| counts[i])
        .sum();
    if systems + reserved > limit {
        return Err(exceeded(Exceeded::SystemMessages, systems));
    }
    let all: u128 = counts.iter().sum();
    let starts = turn_starts(messages);
    // Drop k oldest turns, k = 0, 1, ...; never the newest turn.
    let droppable = starts.len().saturating_sub(1);
    for k in 0..=droppable {
        let first = starts.get(k).copied().unwrap_or(messages.len());
        let kept: Vec<usize> = (0..messages.len())
            .filter(|&i| messages[i].role == Role::System || i >= first)
            .collect();
        let total: u128 = kept.iter().map(|&i| counts[i]).sum::<u128>() + input.reply as u128;
        if total + max_tokens as u128 <= limit {
            return Ok(Expected {
                kept,
                turns_dropped: k,
                tokens_after: total as usize,
                tokens_before: (all + input.reply as u128) as usize,
            });
        }
    }
    let newest_start = *starts.last().expect("no turn would have fit");
    let newest: u128 = (newest_start..messages.len())
        .filter(|&i| messages[i].role != Role::System)
        .map(|i| counts[i])
        .sum();
    Err(exceeded(Exceeded::NewestTurn, systems + newest))
}

fn check(input: &Input) {
    let counter = Counter {
        honesty: input.honesty,
        reply: input.reply,
        lies: &input.lies,
        next_lie: Cell::new(0),
        calls: Cell::new(0),
    };
    let window = Window::new(&counter, input.limit)
        .max_output(input.max_output)
        .full_report(input.full_report);
    let messages = &input.messages;
    let got = window.trim(messages, input.max_tokens);

    // Invariants that hold whatever the counter says.
    if let Ok(trim) = &got {
        let kept: Vec<usize> = trim.kept_indices().collect();
        let r = trim.report();
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "order: {kept:?}");
        assert_eq!(trim.input_len(), messages.len());
        for (i, m) in messages.iter().enumerate() {
            if m.role == Role::System {
                assert!(kept.contains(&i), "system message {i} dropped");
            }
        }
        // The kept non-system messages are a suffix of whole turns.
        let first = trim.first_kept();
        let starts = turn_starts(messages);
        assert!(
            first == messages.len() || starts.contains(&first),
            "first kept {first} does not start a turn ({starts:?})"
        );
        assert!(
            starts.is_empty() || first <= *starts.last().unwrap(),
            "the newest turn was dropped"
        );
        let non_system_kept: Vec<usize> = kept
            .iter()
            .copied()
            .filter(|&i| messages[i].role != Role::System)
            .collect();
        let suffix: Vec<usize> = (first..messages.len())
            .filter(|&i| messages[i].role != Role::System)
            .collect();
        assert_eq!(non_system_kept, suffix);
        // No orphaned tool result: a kept result's call, when it is in the same
        // turn (where the rules keep calls and results together), is kept.
        for &i in &non_system_kept {
            let Some(id) = &messages[i].tool_call_id else {
                continue;
            };
            let turn_start = starts.iter().rev().find(|&&s| s <= i).copied().unwrap_or(0);
            for j in turn_start..i {
                if messages[j].tool_calls.iter().any(|c| &c.id == id) {
                    assert!(
                        kept.contains(&j),
                        "tool result {i} kept without its call {j}"
                    );
                }
            }
        }
        // Never over the limit, by the counts it reports.
        assert_eq!(r.counts.len(), kept.len());
        let sum = r
            .counts
            .iter()
            .try_fold(0usize, |a, &n| a.checked_add(n))
            .expect("overflow");
        assert_eq!(
            r.tokens_after,
            sum.checked_add(input.reply).expect("overflow")
        );
        let max_tokens = usize::try_from(input.max_tokens).unwrap();
        assert!(
            r.tokens_after
                .checked_add(max_tokens)
                .is_some_and(|t| t <= input.limit),
            "over the limit: {} + {max_tokens} > {}",
            r.tokens_after,
            input.limit
        );
        assert_eq!(r.max_tokens, max_tokens);
        assert_eq!(r.limit, input.limit);
        assert_eq!(r.messages_dropped, messages.len() - kept.len());
        // The kept messages come back whole through `kept` and `apply`.
        let via_kept: Vec<&Message> = trim.kept(messages).collect();
        let via_apply = trim.apply(messages.clone());
        assert_eq!(via_kept.len(), via_apply.len());
        assert!(via_kept.iter().zip(&via_apply).all(|(a, b)| *a == b));
    }

    if input.honesty == Honesty::Lying {
        return;
    }
    // A truthful counter: exactly the reference.
    let want = reference(input);
    match (&got, &want) {
        (Ok(trim), Ok(want)) => {
            let r = trim.report();
            let kept: Vec<usize> = trim.kept_indices().collect();
            assert_eq!(kept, want.kept, "kept indices");
            assert_eq!(r.turns_dropped, want.turns_dropped);
            assert_eq!(r.tokens_after, want.tokens_after);
            let counts: Vec<usize> = kept.iter().map(|&i| true_count(&messages[i])).collect();
            assert_eq!(r.counts, counts);
            let expected_before =
                (r.messages_dropped == 0 || input.full_report).then_some(want.tokens_before);
            assert_eq!(r.tokens_before, expected_before);
            // Trimming what was kept keeps it all.
            let again: Vec<Message> = trim.kept(messages).cloned().collect();
            let second = window
                .trim(&again, input.max_tokens)
                .expect("re-trim fails");
            assert_eq!(second.report().messages_dropped, 0, "not idempotent");
        }
        (Err(e), Err(w)) => assert_eq!(e, w),
        _ => panic!("window {got:?}, reference {want:?}"),
    }
}

fuzz_target!(|input: Input| {
    check(&input);
});
