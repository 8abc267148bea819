//! The sliding window: trims a chat history, oldest turn first, to fit a context.

use serde::Serialize;

use crate::error::TrimError;
use crate::message::{Message, Role};

/// Counts the tokens of messages for a [`Window`].
///
/// [`crate::Model`] implements it with a real tokenizer and chat template; tests
/// and callers with their own tokenizer can plug in anything that is additive
/// over messages.
pub trait MessageCounter {
    /// Tokens of `message`, or `None` once they are known to exceed `budget`.
    /// An implementation may stop reading the message at that point.
    fn message_tokens(&self, message: &Message, budget: usize) -> Option<usize>;

    /// Tokens counted once per list of messages (the reply prefix).
    fn reply_tokens(&self) -> usize;
}

impl<C: MessageCounter + ?Sized> MessageCounter for &C {
    fn message_tokens(&self, message: &Message, budget: usize) -> Option<usize> {
        (**self).message_tokens(message, budget)
    }

    fn reply_tokens(&self) -> usize {
        (**self).reply_tokens()
    }
}

/// Trims chat histories to a context limit.
///
/// The rules:
/// - System messages are pinned: never removed, kept where they are.
/// - The other messages form turns: a turn starts at each `user` message and runs
///   to the next one, so replies, tool calls and tool results stay with the user
///   message that caused them. Messages before the first `user` message form the
///   oldest turn.
/// - If everything fits (`prompt tokens + maxTokens <= limit`), nothing changes.
///   Otherwise whole turns are removed, oldest first, the fewest that make it fit.
/// - The newest turn is never removed: if it does not fit with the system
///   messages, trimming fails with [`TrimError::ContextExceeded`].
///
/// Work is proportional to what is kept: turns are counted newest first and
/// counting stops inside the first message that does not fit. Dropped messages are
/// only looked at for their role.
///
/// ```
/// use sluice_core::{Message, MessageCounter, Window};
///
/// /// One token per character, no template.
/// struct Chars;
/// impl MessageCounter for Chars {
///     fn message_tokens(&self, m: &Message, budget: usize) -> Option<usize> {
///         Some(m.content.chars().count()).filter(|&n| n <= budget)
///     }
///     fn reply_tokens(&self) -> usize { 0 }
/// }
///
/// let history = vec![
///     Message::system("sys"),              // 3, pinned
///     Message::user("aaaa"),               // 4  } oldest turn
///     Message::assistant("bbbb"),          // 4  }
///     Message::user("cc"),                 // 2  } newest turn
/// ];
/// let trim = Window::new(&Chars, 10).trim(&history, 5).unwrap();
/// let kept: Vec<_> = trim.kept(&history).map(|m| m.content.as_str()).collect();
/// assert_eq!(kept, ["sys", "cc"]);
/// assert_eq!(trim.report().turns_dropped, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Window<'c, C: ?Sized> {
    counter: &'c C,
    context_limit: u32,
    max_output: u32,
    full_report: bool,
}

/// The outcome of [`Window::trim`]: which messages are kept, and a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    first_kept: usize,
    report: TrimReport,
}

/// What trimming did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrimReport {
    /// Prompt tokens of the input. `None` when turns were dropped and the window
    /// was not asked for a full report: dropped messages are not counted.
    pub tokens_before: Option<usize>,
    /// Prompt tokens of the result (messages plus the reply prefix).
    pub tokens_after: usize,
    /// `maxTokens` as given.
    pub max_tokens: u32,
    /// The context limit.
    pub limit: u32,
    /// Whole turns removed.
    pub turns_dropped: usize,
    /// Messages removed.
    pub messages_dropped: usize,
    /// Tokens of each kept message, in output order.
    pub counts: Vec<usize>,
}

impl Trim {
    /// True if the message at `index` of the input is kept.
    pub fn is_kept(&self, index: usize, messages: &[Message]) -> bool {
        index >= self.first_kept || messages[index].role == Role::System
    }

    /// The kept messages of `messages` (the same slice given to [`Window::trim`]),
    /// in order.
    pub fn kept<'m>(&self, messages: &'m [Message]) -> impl Iterator<Item = &'m Message> {
        let first_kept = self.first_kept;
        messages
            .iter()
            .enumerate()
            .filter(move |&(i, m)| i >= first_kept || m.role == Role::System)
            .map(|(_, m)| m)
    }

    /// Keeps the kept messages of `messages` (the same list given to
    /// [`Window::trim`]) and drops the rest, without copying any.
    pub fn apply(&self, mut messages: Vec<Message>) -> Vec<Message> {
        if self.report.messages_dropped > 0 {
            let mut i = 0;
            messages.retain(|m| {
                i += 1;
                i > self.first_kept || m.role == Role::System
            });
        }
        messages
    }

    /// Index of the first kept non-system message (the input's length if none).
    pub fn first_kept(&self) -> usize {
        self.first_kept
    }

    /// What trimming did.
    pub fn report(&self) -> &TrimReport {
        &self.report
    }

    /// The report, by value.
    pub fn into_report(self) -> TrimReport {
        self.report
    }
}

impl<'c, C: MessageCounter + ?Sized> Window<'c, C> {
    /// A window of `context_limit` tokens; `maxTokens` may be up to the limit.
    pub fn new(counter: &'c C, context_limit: u32) -> Self {
        Self {
            counter,
            context_limit,
            max_output: context_limit,
            full_report: false,
        }
    }

    /// The largest `maxTokens` accepted. Default: the context limit.
    pub fn max_output(mut self, max_output: u32) -> Self {
        self.max_output = max_output;
        self
    }

    /// Also count dropped messages, so that [`TrimReport::tokens_before`] is always
    /// set. Default: `false` (work stays proportional to what is kept).
    pub fn full_report(mut self, yes: bool) -> Self {
        self.full_report = yes;
        self
    }

    /// Trims `messages` so that their tokens plus `max_tokens` fit the limit.
    ///
    /// `max_tokens` is signed so that out-of-range input from the wire (`-1`)
    /// gets the same [`TrimError::MaxTokens`] as `0`.
    pub fn trim(&self, messages: &[Message], max_tokens: i64) -> Result<Trim, TrimError> {
        // The one pass over the whole history, reading roles only. Everything after
        // it touches only the messages that are kept.
        let layout = Layout::of(messages);
        self.trim_laid_out(messages, &layout, max_tokens, |i, budget| {
            self.counter.message_tokens(&messages[i], budget)
        })
    }

    /// [`Window::trim`] with the history's [`Layout`] known and messages counted by
    /// index through `count` (which may remember counts; see
    /// [`crate::Conversation`]). Only ever asks for the messages it keeps, plus the
    /// first one that does not fit.
    pub(crate) fn trim_laid_out(
        &self,
        messages: &[Message],
        layout: &Layout,
        max_tokens: i64,
        mut count: impl FnMut(usize, usize) -> Option<usize>,
    ) -> Result<Trim, TrimError> {
        let max_tokens = u32::try_from(max_tokens)
            .ok()
            .filter(|&m| m >= 1 && m <= self.max_output)
            .ok_or(TrimError::MaxTokens {
                got: max_tokens,
                max: self.max_output,
            })?;
        if messages.is_empty() {
            return Err(TrimError::EmptyMessages);
        }
        let limit = self.context_limit as usize;
        let exceeded = |what, needed| TrimError::ContextExceeded {
            what,
            needed,
            max_tokens,
            limit: self.context_limit,
        };
        let reserved = self.counter.reply_tokens() + max_tokens as usize;
        let mut budget = limit
            .checked_sub(reserved)
            .ok_or_else(|| exceeded("the reply prefix and maxTokens", reserved))?;

        // Pinned messages first: they are kept whatever else happens.
        let systems = &layout.systems;
        let mut system_counts = Vec::with_capacity(systems.len());
        for &i in systems {
            match count(i, budget) {
                Some(n) => {
                    budget -= n;
                    system_counts.push(n);
                }
                None => {
                    let needed = reserved + full_count(systems.iter().copied(), &mut count);
                    return Err(exceeded("the system messages", needed));
                }
            }
        }

        // Then turns, newest first, until one does not fit.
        let mut suffix_counts = Vec::new(); // newest first
        let mut first_kept = messages.len();
        let mut turn_start_len = 0; // suffix_counts.len() when the current turn began
        let mut turn_tokens = 0;
        let mut turns_kept = 0;
        if let Some(first) = layout.first_non_system {
            for i in (first..messages.len()).rev() {
                let m = &messages[i];
                if m.role == Role::System {
                    continue;
                }
                let Some(n) = count(i, budget - turn_tokens) else {
                    if turns_kept == 0 {
                        let start = messages[first..=i]
                            .iter()
                            .rposition(|m| m.role == Role::User)
                            .map_or(first, |p| first + p);
                        let system = limit - reserved - budget;
                        let newest = full_count(
                            (start..messages.len()).filter(|&j| messages[j].role != Role::System),
                            &mut count,
                        );
                        let needed = reserved + system + newest;
                        return Err(exceeded("the system messages and the newest turn", needed));
                    }
                    suffix_counts.truncate(turn_start_len);
                    break;
                };
                turn_tokens += n;
                suffix_counts.push(n);
                if m.role == Role::User || i == first {
                    budget -= turn_tokens;
                    turn_tokens = 0;
                    turns_kept += 1;
                    first_kept = i;
                    turn_start_len = suffix_counts.len();
                }
            }
        }

        let turns_dropped = layout.turns - turns_kept;
        let systems_before = systems.partition_point(|&i| i < first_kept);
        let messages_dropped = first_kept - systems_before;

        // Counts in output order: merge the pinned messages into the kept suffix.
        let mut counts = Vec::with_capacity(systems.len() + suffix_counts.len());
        counts.extend_from_slice(&system_counts[..systems_before]);
        let mut later_systems = systems[systems_before..]
            .iter()
            .zip(&system_counts[systems_before..])
            .peekable();
        let mut suffix = suffix_counts.into_iter().rev();
        for i in first_kept..messages.len() {
            match later_systems.next_if(|&(&s, _)| s == i) {
                Some((_, &n)) => counts.push(n),
                None => counts.extend(suffix.next()),
            }
        }
        let tokens_after = counts.iter().sum::<usize>() + self.counter.reply_tokens();
        let tokens_before = if messages_dropped == 0 {
            Some(tokens_after)
        } else if self.full_report {
            let dropped = (0..first_kept).filter(|&j| messages[j].role != Role::System);
            Some(tokens_after + full_count(dropped, &mut count))
        } else {
            None
        };
        Ok(Trim {
            first_kept,
            report: TrimReport {
                tokens_before,
                tokens_after,
                max_tokens,
                limit: self.context_limit,
                turns_dropped,
                messages_dropped,
                counts,
            },
        })
    }
}

/// Tokens of the messages at `indices`, counted to the end.
fn full_count(
    indices: impl Iterator<Item = usize>,
    count: &mut impl FnMut(usize, usize) -> Option<usize>,
) -> usize {
    indices
        .map(|i| count(i, usize::MAX).expect("no count exceeds usize::MAX"))
        .sum()
}

/// What trimming needs to know about a whole history without counting it: where
/// the pinned system messages are, where the first turn starts and how many turns
/// there are. [`Window::trim`] finds it with one pass over the roles;
/// [`crate::Conversation`] keeps it up to date as messages are added, so that
/// re-trimming a long conversation does not read its dropped messages at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Indices of the system messages, ascending.
    systems: Vec<usize>,
    /// Index of the first non-system message: the start of the oldest turn.
    first_non_system: Option<usize>,
    /// Number of turns.
    turns: usize,
}

impl Layout {
    /// The layout of `messages`.
    pub(crate) fn of(messages: &[Message]) -> Self {
        let mut layout = Self::default();
        for (i, m) in messages.iter().enumerate() {
            layout.push(i, m.role);
        }
        layout
    }

    /// Accounts for a message with `role` appended at index `i`.
    #[inline]
    pub(crate) fn push(&mut self, i: usize, role: Role) {
        match role {
            Role::System => self.systems.push(i),
            role => match self.first_non_system {
                None => {
                    self.first_non_system = Some(i);
                    self.turns = 1;
                }
                Some(_) => self.turns += usize::from(role == Role::User),
            },
        }
    }

    /// Undoes [`Layout::push`] of the last message, at index `i`, with `role`.
    pub(crate) fn pop(&mut self, i: usize, role: Role) {
        match role {
            Role::System => {
                let last = self.systems.pop();
                debug_assert_eq!(last, Some(i));
            }
            _ if self.first_non_system == Some(i) => {
                self.first_non_system = None;
                self.turns = 0;
            }
            role => self.turns -= usize::from(role == Role::User),
        }
    }
}
