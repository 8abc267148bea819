//! The sliding window: trims a chat history, oldest turn first, to fit a context.

use serde::Serialize;

use crate::error::{Exceeded, TrimError};
use crate::message::{Message, MessageView, Role};

/// Counts the tokens of messages for a [`Window`].
///
/// [`crate::Model`] implements it with a real tokenizer and chat template; tests
/// and callers with their own tokenizer can plug in anything that is additive
/// over messages: a list's tokens are the sum of its messages' tokens plus
/// [`MessageCounter::reply_tokens`] once.
///
/// The window does not trust the numbers it gets: it compares every count with
/// the budget it asked for before using it, and its arithmetic on counts is
/// checked or saturating. A wrong count can make it drop more turns than needed
/// or fail with [`TrimError::ContextExceeded`]; it cannot make it keep a history
/// over the limit, panic or wrap around, in debug or release builds.
///
/// Token counts are `usize` throughout the API (counts, budgets, limits,
/// reports and errors).
pub trait MessageCounter {
    /// Tokens of `message`, when at most `budget` tokens are left for it.
    ///
    /// - `Some(n)`: the message has `n` tokens. `n` may be larger than `budget`:
    ///   the window then treats the message as not fitting, exactly as for
    ///   `None`. Returning the full count is always correct.
    /// - `None`: the message has more than `budget` tokens. This exists so that
    ///   counting can stop as soon as that is known, and a huge message is not
    ///   tokenized to its end; it must not be returned for a message that fits.
    ///
    /// Where the window needs exact numbers (for [`TrimError::ContextExceeded`],
    /// or [`TrimReport::tokens_before`] with [`Window::full_report`]), it asks with
    /// `budget = usize::MAX`; `None` there makes the numbers saturate at
    /// `usize::MAX`.
    fn message_tokens(&self, message: &Message, budget: usize) -> Option<usize>;

    /// [`MessageCounter::message_tokens`] of a message given by its borrowed
    /// parts (a [`WireMessageRef`](crate::WireMessageRef), read without
    /// copying its text). The same contract and the same numbers; the default
    /// builds the [`Message`] and counts it, and counters that can count the
    /// parts as they are (like [`crate::Model`]) override it.
    fn view_tokens(&self, message: MessageView<'_>, budget: usize) -> Option<usize> {
        self.message_tokens(&message.to_message(), budget)
    }

    /// Tokens counted once per list of messages (the reply prefix). Checked like
    /// the message counts: if it plus `maxTokens` exceeds the limit, trimming
    /// fails with [`Exceeded::MaxTokens`].
    fn reply_tokens(&self) -> usize;
}

impl<C: MessageCounter + ?Sized> MessageCounter for &C {
    fn message_tokens(&self, message: &Message, budget: usize) -> Option<usize> {
        (**self).message_tokens(message, budget)
    }

    fn view_tokens(&self, message: MessageView<'_>, budget: usize) -> Option<usize> {
        (**self).view_tokens(message, budget)
    }

    fn reply_tokens(&self) -> usize {
        (**self).reply_tokens()
    }
}

/// A message a [`Window`] can trim: what it reads of each message is its role
/// (for turns and pinning) and, for the ones it keeps, its tokens.
///
/// Every `AsRef<Message>` is one ([`Message`], [`WireMessage`](crate::WireMessage));
/// so is a [`WireMessageRef`](crate::WireMessageRef), counted through
/// [`MessageCounter::view_tokens`] without building a [`Message`].
pub trait WindowMessage {
    /// Who wrote it.
    fn role(&self) -> Role;

    /// Its tokens by `counter`, with the contract of
    /// [`MessageCounter::message_tokens`].
    fn tokens<C: MessageCounter + ?Sized>(&self, counter: &C, budget: usize) -> Option<usize>;
}

impl<M: AsRef<Message>> WindowMessage for M {
    fn role(&self) -> Role {
        self.as_ref().role
    }

    fn tokens<C: MessageCounter + ?Sized>(&self, counter: &C, budget: usize) -> Option<usize> {
        counter.message_tokens(self.as_ref(), budget)
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
    context_limit: usize,
    max_output: usize,
    full_report: bool,
}

/// The outcome of [`Window::trim`]: which messages are kept, and a report.
///
/// A `Trim` knows which messages it keeps by index, without the messages: see
/// [`Trim::kept_indices`]. It remembers the length of the list it was made for
/// ([`Trim::input_len`]), and [`Trim::kept`] and [`Trim::apply`] panic when given
/// a list of another length rather than keep the wrong messages.
///
/// ```
/// use sluice_core::{Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let history = vec![
///     Message::system("Answer briefly."),
///     Message::user("first question"),
///     Message::assistant("first answer"),
///     Message::user("second question"),
/// ];
/// // Leave so little room that the oldest turn must go.
/// let trim = model.trim(&history, 4070).unwrap();
/// assert_eq!(trim.kept_indices().collect::<Vec<_>>(), [0, 3]);
/// assert_eq!(trim.apply(history), [Message::system("Answer briefly."), Message::user("second question")]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    first_kept: usize,
    /// Indices of the system messages before `first_kept`, ascending: kept though
    /// the turns around them are dropped. Stored so that the kept indices are
    /// known without the messages (usually zero or one entry).
    pinned: Vec<usize>,
    /// Length of the trimmed list.
    len: usize,
    report: TrimReport,
}

/// What trimming did.
///
/// ```
/// use sluice_core::{Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let history = [Message::user("hello")];
/// let report = model.trim(&history, 100).unwrap().into_report();
/// assert_eq!((report.limit, report.max_tokens, report.turns_dropped), (4096, 100, 0));
/// assert_eq!(report.tokens_before, Some(report.tokens_after)); // nothing dropped
/// assert!(serde_json::to_string(&report).unwrap().contains("\"tokensAfter\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TrimReport {
    /// Prompt tokens of the input. `None` when turns were dropped and the window
    /// was not asked for a full report: dropped messages are not counted.
    pub tokens_before: Option<usize>,
    /// Prompt tokens of the result (messages plus the reply prefix).
    pub tokens_after: usize,
    /// `maxTokens` as given.
    pub max_tokens: usize,
    /// The context limit.
    pub limit: usize,
    /// Whole turns removed.
    pub turns_dropped: usize,
    /// Messages removed.
    pub messages_dropped: usize,
    /// Tokens of each kept message, in output order.
    pub counts: Vec<usize>,
}

impl Trim {
    /// True if the message at `index` of the input is kept (`false` past its end).
    ///
    /// `messages` is the list given to [`Window::trim`]; the answer does not
    /// depend on it, since the `Trim` knows its kept indices.
    pub fn is_kept<M>(&self, index: usize, messages: &[M]) -> bool {
        debug_assert_eq!(messages.len(), self.len, "{}", OTHER_LIST);
        index < self.len && (index >= self.first_kept || self.pinned.binary_search(&index).is_ok())
    }

    /// Indices of the kept messages in the input, ascending: the system messages
    /// before [`Trim::first_kept`], then every index from it to the end.
    pub fn kept_indices(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.pinned.iter().copied().chain(self.first_kept..self.len)
    }

    /// The kept messages of `messages` (the same slice given to [`Window::trim`]),
    /// in order.
    ///
    /// # Panics
    ///
    /// If `messages` is not as long as the trimmed list.
    pub fn kept<'m, M: WindowMessage>(&self, messages: &'m [M]) -> impl Iterator<Item = &'m M> {
        self.check_list(messages);
        self.kept_indices().map(move |i| &messages[i])
    }

    /// Keeps the kept messages of `messages` (the same list given to
    /// [`Window::trim`]) and drops the rest, without copying any.
    ///
    /// # Panics
    ///
    /// If `messages` is not as long as the trimmed list.
    pub fn apply<M: WindowMessage>(&self, mut messages: Vec<M>) -> Vec<M> {
        self.check_list(&messages);
        if self.report.messages_dropped > 0 {
            let mut i = 0;
            messages.retain(|_| {
                i += 1;
                i > self.first_kept || self.pinned.binary_search(&(i - 1)).is_ok()
            });
        }
        messages
    }

    /// Index of the first kept non-system message (the input's length if none).
    pub fn first_kept(&self) -> usize {
        self.first_kept
    }

    /// Number of messages in the list that was trimmed.
    pub fn input_len(&self) -> usize {
        self.len
    }

    /// What trimming did.
    pub fn report(&self) -> &TrimReport {
        &self.report
    }

    /// The report, by value.
    pub fn into_report(self) -> TrimReport {
        self.report
    }

    /// Panics if `messages` cannot be the list this `Trim` was made for: keeping
    /// by index from another list would silently keep the wrong messages.
    fn check_list<M: WindowMessage>(&self, messages: &[M]) {
        assert_eq!(messages.len(), self.len, "{}", OTHER_LIST);
        debug_assert!(
            self.pinned
                .iter()
                .all(|&i| messages[i].role() == Role::System),
            "{}",
            OTHER_LIST
        );
    }
}

const OTHER_LIST: &str = "a Trim applied to a list other than the one trimmed";

impl<'c, C: MessageCounter + ?Sized> Window<'c, C> {
    /// A window of `context_limit` tokens; `maxTokens` may be up to the limit.
    pub fn new(counter: &'c C, context_limit: usize) -> Self {
        Self {
            counter,
            context_limit,
            max_output: context_limit,
            full_report: false,
        }
    }

    /// The largest `maxTokens` accepted. Default: the context limit.
    pub fn max_output(mut self, max_output: usize) -> Self {
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
    /// `max_tokens` is the one token number that is not `usize`: it is signed so
    /// that a value as it comes from the wire (`-1`, or above `usize::MAX` on a
    /// 32-bit target) gets the same [`TrimError::MaxTokens`] as `0`, with the value
    /// sent, and callers need no conversion of their own.
    pub fn trim<M: WindowMessage>(
        &self,
        messages: &[M],
        max_tokens: i64,
    ) -> Result<Trim, TrimError> {
        // The one pass over the whole history, reading roles only. Everything after
        // it touches only the messages that are kept.
        let layout = Layout::of(messages);
        self.trim_laid_out(messages, &layout, max_tokens, |i, budget| {
            messages[i].tokens(self.counter, budget)
        })
    }

    /// [`Window::trim`] with the history's [`Layout`] known and messages counted by
    /// index through `count` (which may remember counts; see
    /// [`crate::Conversation`]). Only ever asks for the messages it keeps, plus the
    /// first one that does not fit.
    pub(crate) fn trim_laid_out<M: WindowMessage>(
        &self,
        messages: &[M],
        layout: &Layout,
        max_tokens: i64,
        mut count: impl FnMut(usize, usize) -> Option<usize>,
    ) -> Result<Trim, TrimError> {
        let max_tokens = usize::try_from(max_tokens)
            .ok()
            .filter(|&m| m >= 1 && m <= self.max_output)
            .ok_or(TrimError::MaxTokens {
                got: max_tokens,
                max: self.max_output,
            })?;
        if messages.is_empty() {
            return Err(TrimError::EmptyMessages);
        }
        // Counts come from a counter we do not control. Each is checked here,
        // once, against the budget it was asked for: a count above it means "does
        // not fit", like `None`. Every subtraction below takes away a count that
        // passed this check from the budget it was checked against, so none can
        // wrap, whatever the counter returns.
        let mut count = move |i: usize, budget: usize| count(i, budget).filter(|&n| n <= budget);
        let limit = self.context_limit;
        let reply_tokens = self.counter.reply_tokens();
        let exceeded = |kind, message_tokens| TrimError::ContextExceeded {
            kind,
            message_tokens,
            reply_tokens,
            max_tokens,
            limit,
        };
        let mut budget = reply_tokens
            .checked_add(max_tokens)
            .and_then(|reserved| limit.checked_sub(reserved))
            .ok_or_else(|| exceeded(Exceeded::MaxTokens, 0))?;

        // Pinned messages first: they are kept whatever else happens.
        let systems = &layout.systems;
        let mut system_counts = Vec::with_capacity(systems.len());
        for &i in systems {
            let Some(n) = count(i, budget) else {
                let needed = full_count(systems.iter().copied(), &mut count);
                return Err(exceeded(Exceeded::SystemMessages, needed));
            };
            budget -= n;
            system_counts.push(n);
        }

        // Then turns, newest first, until one does not fit. `turn_tokens` never
        // exceeds `budget`: each count in it was checked against what was left.
        let mut suffix_counts = Vec::new(); // newest first
        let mut first_kept = messages.len();
        let mut turn_start_len = 0; // suffix_counts.len() when the current turn began
        let mut turn_tokens = 0;
        let mut turns_kept = 0;
        if let Some(first) = layout.first_non_system {
            for i in (first..messages.len()).rev() {
                let role = messages[i].role();
                if role == Role::System {
                    continue;
                }
                let Some(n) = count(i, budget - turn_tokens) else {
                    if turns_kept == 0 {
                        let start = messages[first..=i]
                            .iter()
                            .rposition(|m| m.role() == Role::User)
                            .map_or(first, |p| first + p);
                        // The system counts all fit in the budget: no overflow.
                        let system: usize = system_counts.iter().sum();
                        let newest = full_count(
                            (start..messages.len()).filter(|&j| messages[j].role() != Role::System),
                            &mut count,
                        );
                        let needed = system.saturating_add(newest);
                        return Err(exceeded(Exceeded::NewestTurn, needed));
                    }
                    suffix_counts.truncate(turn_start_len);
                    break;
                };
                turn_tokens += n;
                suffix_counts.push(n);
                if role == Role::User || i == first {
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
        // Every kept count fit the budget, and the budget plus the reply prefix
        // is at most the limit: this sum cannot overflow.
        let tokens_after = counts.iter().sum::<usize>() + reply_tokens;
        let tokens_before = if messages_dropped == 0 {
            Some(tokens_after)
        } else if self.full_report {
            let dropped = (0..first_kept).filter(|&j| messages[j].role() != Role::System);
            Some(tokens_after.saturating_add(full_count(dropped, &mut count)))
        } else {
            None
        };
        Ok(Trim {
            first_kept,
            pinned: systems[..systems_before].to_vec(),
            len: messages.len(),
            report: TrimReport {
                tokens_before,
                tokens_after,
                max_tokens,
                limit,
                turns_dropped,
                messages_dropped,
                counts,
            },
        })
    }
}

/// Tokens of the messages at `indices`, counted to the end, for reports and
/// errors. A counter that cannot count a message even without a budget makes the
/// total `usize::MAX`, a number that is plainly not real, rather than a panic.
fn full_count(
    indices: impl Iterator<Item = usize>,
    count: &mut impl FnMut(usize, usize) -> Option<usize>,
) -> usize {
    indices
        .map(|i| count(i, usize::MAX).unwrap_or(usize::MAX))
        .fold(0, usize::saturating_add)
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
    pub(crate) fn of<M: WindowMessage>(messages: &[M]) -> Self {
        let mut layout = Self::default();
        for (i, m) in messages.iter().enumerate() {
            layout.push(i, m.role());
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
