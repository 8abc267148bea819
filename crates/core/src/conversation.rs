//! A conversation that grows one turn at a time and is re-trimmed after each.

use crate::error::TrimError;
use crate::message::Message;
use crate::model::Model;
use crate::window::{Layout, MessageCounter, Trim};

/// Marks a message whose count is not known yet.
const UNCOUNTED: u32 = u32::MAX;

/// A chat history that remembers what it has counted, for re-trimming a
/// conversation as it grows.
///
/// [`Model::trim`] takes any slice of messages, so it reads every message's role
/// once (system messages are pinned wherever they are) and finds earlier counts by
/// hashing each kept message into the model's count cache. A `Conversation` owns
/// its messages and keeps, as they are added, where the system messages and turns
/// are and the count of every message it has counted. Re-trimming after a new turn
/// then tokenizes only the new messages and reads nothing but the messages it
/// keeps, however long the conversation has become. The result is always the same
/// as [`Model::trim`] on [`Conversation::messages`] (a tested property).
///
/// Messages cannot be edited in place, since their counts are remembered: to
/// change one, [`Conversation::truncate`] to it and push again.
///
/// ```
/// use sluice_core::{Conversation, Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let mut chat = Conversation::new(model.clone());
/// chat.push(Message::system("Answer in Korean."));
/// for i in 0..300 {
///     chat.push(Message::user(format!("질문 {i}: 오늘 서울 날씨는 어때요?")));
///     chat.push(Message::assistant("맑고 따뜻합니다. 미세먼지는 보통입니다."));
///     let trim = chat.trim(1000).unwrap(); // counts only the two new messages
///     assert!(trim.report().tokens_after + 1000 <= 4096);
///     assert_eq!(&trim, &model.trim(chat.messages(), 1000).unwrap());
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Conversation {
    model: Model,
    messages: Vec<Message>,
    /// Tokens of each message, or [`UNCOUNTED`].
    counts: Vec<u32>,
    layout: Layout,
    full_report: bool,
}

impl Conversation {
    /// An empty conversation for `model`.
    pub fn new(model: Model) -> Self {
        Self::with_messages(model, Vec::new())
    }

    /// A conversation for `model` that starts with `messages`.
    pub fn with_messages(model: Model, messages: Vec<Message>) -> Self {
        Self {
            model,
            counts: vec![UNCOUNTED; messages.len()],
            layout: Layout::of(&messages),
            messages,
            full_report: false,
        }
    }

    /// Also count dropped messages when trimming, so that
    /// [`crate::TrimReport::tokens_before`] is always set (see
    /// [`crate::Window::full_report`]). Counts are remembered either way, so this
    /// costs each message's tokenization once.
    pub fn full_report(mut self, yes: bool) -> Self {
        self.full_report = yes;
        self
    }

    /// The model the conversation is counted and trimmed for.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// All messages, oldest first, trimmed or not.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The messages, by value.
    pub fn into_messages(self) -> Vec<Message> {
        self.messages
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True if there are no messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Appends a message. Nothing is counted until the next [`Conversation::trim`].
    pub fn push(&mut self, message: Message) {
        self.layout.push(self.messages.len(), message.role);
        self.messages.push(message);
        self.counts.push(UNCOUNTED);
    }

    /// Removes the newest message and returns it.
    pub fn pop(&mut self) -> Option<Message> {
        let message = self.messages.pop()?;
        self.counts.pop();
        self.layout.pop(self.messages.len(), message.role);
        Some(message)
    }

    /// Keeps the first `len` messages and drops the rest (a regenerated reply, an
    /// edited question).
    pub fn truncate(&mut self, len: usize) {
        while self.messages.len() > len {
            self.pop();
        }
    }

    /// Forgets the messages `trim` (from the last [`Conversation::trim`]) dropped,
    /// keeping the counts of the rest, so that a long-running conversation holds
    /// only what it still sends. Indices shift: earlier [`Trim`]s no longer apply.
    pub fn forget_dropped(&mut self, trim: &Trim) {
        if trim.report().messages_dropped == 0 {
            return;
        }
        let mut i = 0;
        let messages = &self.messages;
        self.counts.retain(|_| {
            i += 1;
            trim.is_kept(i - 1, messages)
        });
        self.messages = trim.apply(std::mem::take(&mut self.messages));
        self.layout = Layout::of(&self.messages);
    }

    /// Trims the conversation so that its tokens plus `max_tokens` fit the model's
    /// context limit: exactly [`Model::trim`] on [`Conversation::messages`], with
    /// every message counted at most once over the conversation's life.
    pub fn trim(&mut self, max_tokens: i64) -> Result<Trim, TrimError> {
        let Self {
            model,
            messages,
            counts,
            layout,
            full_report,
        } = self;
        let window = model.window().full_report(*full_report);
        window.trim_laid_out(messages, layout, max_tokens, |i, budget| {
            match counts[i] {
                UNCOUNTED => {
                    // Counting stops once `budget` is passed: only full counts are
                    // remembered.
                    let n = model.message_tokens(&messages[i], budget)?;
                    if let Some(small) = u32::try_from(n).ok().filter(|&c| c != UNCOUNTED) {
                        counts[i] = small;
                    }
                    Some(n)
                }
                n => Some(n as usize).filter(|&n| n <= budget),
            }
        })
    }
}

// `Model::conversation` lives here, beside the type it builds, so that the
// model knows nothing of conversations: a conversation holds its model, not
// the other way round.
impl Model {
    /// An empty [`Conversation`] for this model: for a history that grows and is
    /// re-trimmed after every turn.
    pub fn conversation(&self) -> Conversation {
        Conversation::new(self.clone())
    }
}

impl Extend<Message> for Conversation {
    fn extend<I: IntoIterator<Item = Message>>(&mut self, messages: I) {
        for message in messages {
            self.push(message);
        }
    }
}
