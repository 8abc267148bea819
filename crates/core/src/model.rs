//! A model: a profile bound to its loaded tokenizer and a count cache.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use quick_cache::{sync, unsync};
use thread_local::ThreadLocal;

use crate::error::TrimError;
use crate::message::{Message, MessageView, Role};
use crate::profile::{ChatTemplate, ModelProfile};
use crate::tokenizer::Tokenizer;
use crate::window::{MessageCounter, Trim, Window, WindowMessage};

/// Default number of per-message counts a model remembers.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Where a [`Model`] remembers the token counts of messages it has counted.
///
/// Performance note: one cache shared by all threads gives the best hit rate when
/// the same history can arrive on any thread (a server), but every insert writes
/// memory that all threads read, which is what stops work from scaling across many
/// cores. Per-thread caches share nothing. On batch input of new conversations
/// (`sluice trim --jsonl`, 128 MB of generated chats, medians of 5–6 alternating
/// runs) two threads took 0.895 s with a shared cache, 0.855 s with per-thread
/// caches and 0.74 s with none; one thread 1.60, 1.57 and 1.40 s. So a cache costs
/// ~12% where nothing repeats, whatever its scope, and saves whole tokenizations
/// where histories do repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheScope {
    /// No cache: every message is counted every time.
    Off,
    /// One cache for all threads, of up to `capacity` messages.
    Shared {
        /// Messages remembered.
        capacity: usize,
    },
    /// One cache per thread, of up to `capacity` messages each: no contention
    /// between threads. For batch work, where the lines a thread handles are
    /// neighbours in the input (a history and its continuation).
    PerThread {
        /// Messages remembered by each thread.
        capacity: usize,
    },
}

impl Default for CacheScope {
    fn default() -> Self {
        Self::Shared {
            capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

/// The cache behind a [`CacheScope`].
enum CountCache {
    Off,
    Shared(sync::Cache<u128, u32>),
    PerThread {
        capacity: usize,
        caches: Box<ThreadLocal<RefCell<ThreadCache>>>,
    },
}

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// The count, remembered.
    Hit(u32),
    /// Not there: count, then remember it under this key.
    Miss(u128),
    /// The cache is not in use for this message: count, and do not remember.
    Bypass,
}

/// Lookups a per-thread cache judges its hit rate over.
const PROBE_WINDOW: u32 = 1024;
/// Text bytes that hits must save per lookup, over a [`PROBE_WINDOW`], for the
/// cache to stay in use: about what a lookup that misses costs (hashing,
/// probing, inserting; ~0.2 µs), in bytes of counting (~250 MB/s on mixed
/// Korean and English chat).
const MIN_SAVED_PER_LOOKUP: u64 = 64;
/// Messages counted without the cache after a window that saved too little, before
/// it probes again.
const BYPASS_FOR: u32 = 16 * PROBE_WINDOW;

/// One thread's cache, which steps aside while it does not pay.
///
/// Performance notes:
/// - On batch input where messages do not repeat, the hash, the probe and the
///   insert of every message cost ~20% of `sluice trim --jsonl` (the 64 MB
///   `benches/batch/gen.py` corpus, 1 thread: 1.23–1.70 s with the cache,
///   1.01–1.26 s with `--cache 0`; a profile put 25% of the per-line work in
///   the cache). A hit saves the tokenization of its text and a lookup that
///   misses costs about as much as counting 50–60 bytes, so the cache pays
///   only when its hits save more text than that per lookup.
/// - It judges itself over each window of [`PROBE_WINDOW`] lookups by the text
///   its hits saved: with less than [`MIN_SAVED_PER_LOOKUP`] bytes per lookup,
///   the next [`BYPASS_FOR`] messages skip it (no hash, no probe, no insert),
///   then it probes again, so input that starts repeating gets its cache back
///   within ~17,000 messages. Counting hits instead (it stepped aside under 1
///   hit in 16) kept it in use on that corpus, where about one message in five
///   repeats but the repeats are short: the cache then cost ~17% of the
///   per-line work (a profile of the parse bench) and its hits saved less.
///   Counts never depend on it: the cache only remembers counts.
struct ThreadCache {
    cache: unsync::Cache<u128, u32>,
    /// Lookups in the current window.
    lookups: u32,
    /// Text bytes the hits of the current window saved counting.
    saved: u64,
    /// Messages still to count without the cache.
    bypass: u32,
}

impl ThreadCache {
    fn new(capacity: usize) -> Self {
        Self {
            cache: unsync::Cache::new(capacity),
            lookups: 0,
            saved: 0,
            bypass: 0,
        }
    }

    /// Looks up a message of `len` text bytes whose key `key` computes.
    fn lookup(&mut self, len: usize, key: impl FnOnce() -> u128) -> Lookup {
        if self.bypass > 0 {
            self.bypass -= 1;
            return Lookup::Bypass;
        }
        let key = key();
        let found = self.cache.get(&key).copied();
        self.lookups += 1;
        if found.is_some() {
            self.saved += len as u64;
        }
        if self.lookups == PROBE_WINDOW {
            if self.saved < MIN_SAVED_PER_LOOKUP * u64::from(PROBE_WINDOW) {
                self.bypass = BYPASS_FOR;
            }
            self.lookups = 0;
            self.saved = 0;
        }
        found.map_or(Lookup::Miss(key), Lookup::Hit)
    }
}

impl CountCache {
    fn new(scope: CacheScope) -> Self {
        match scope {
            CacheScope::Off
            | CacheScope::Shared { capacity: 0 }
            | CacheScope::PerThread { capacity: 0 } => Self::Off,
            CacheScope::Shared { capacity } => Self::Shared(sync::Cache::new(capacity)),
            CacheScope::PerThread { capacity } => Self::PerThread {
                capacity,
                caches: Box::default(),
            },
        }
    }

    fn is_off(&self) -> bool {
        matches!(self, Self::Off)
    }

    /// Looks up the message of `len` text bytes whose key `key` computes (only
    /// if the cache is in use for it).
    fn lookup(&self, len: usize, key: impl FnOnce() -> u128) -> Lookup {
        match self {
            Self::Off => Lookup::Bypass,
            Self::Shared(cache) => {
                let key = key();
                cache.get(&key).map_or(Lookup::Miss(key), Lookup::Hit)
            }
            Self::PerThread { capacity, caches } => caches
                .get_or(|| RefCell::new(ThreadCache::new(*capacity)))
                .borrow_mut()
                .lookup(len, key),
        }
    }

    fn insert(&self, key: u128, count: u32) {
        match self {
            Self::Off => {}
            Self::Shared(cache) => cache.insert(key, count),
            Self::PerThread { capacity, caches } => caches
                .get_or(|| RefCell::new(ThreadCache::new(*capacity)))
                .borrow_mut()
                .cache
                .insert(key, count),
        }
    }
}

/// Messages shorter than this are counted, not cached: hashing and a cache probe
/// cost about as much as encoding a few words.
const MIN_CACHED_LEN: usize = 64;

/// A model profile with its tokenizer, ready to count and trim.
///
/// Cloning is cheap and clones share the count cache, which is bounded and safe to
/// use from many threads. Counts are cached per message, keyed by a 128-bit hash
/// of the role and content, because messages are counted independently. The cache
/// is shared by all threads by default; see [`CacheScope`] for batch work.
///
/// ```
/// use sluice_core::{Message, Profiles};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let history = vec![
///     Message::system("You are a concise assistant."),
///     Message::user("What is the capital of Korea?"),
///     Message::assistant("Seoul."),
///     Message::user("And its population?"),
/// ];
/// let counts = model.count(&history);
/// assert_eq!(counts.total, counts.per_message.iter().sum::<usize>() + counts.reply);
///
/// let trim = model.trim(&history, 100).unwrap();
/// assert_eq!(trim.report().messages_dropped, 0); // it fits: nothing to drop
/// ```
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

struct Inner {
    profile: ModelProfile,
    tokenizer: Tokenizer,
    roles: [RoleFrame; 4],
    reply: usize,
    cache: CountCache,
}

/// The template around one role's content, split at the content: everything up to
/// the last marker before the content and after the first marker after it is a
/// fixed cost; the text touching the content is tokenized together with it.
#[derive(Debug, Clone)]
struct RoleFrame {
    fixed: usize,
    head: String,
    tail: String,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("profile", &self.inner.profile.name)
            .field("tokenizer", &self.inner.tokenizer.name())
            .finish()
    }
}

/// Token counts of a list of messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Counts {
    /// Tokens of each message, template included.
    pub per_message: Vec<usize>,
    /// Tokens of the reply prefix, counted once.
    pub reply: usize,
    /// The sum of all of the above: the prompt's size.
    pub total: usize,
}

impl Model {
    /// Binds a profile to a tokenizer, with a cache of [`DEFAULT_CACHE_CAPACITY`].
    pub fn new(profile: ModelProfile, tokenizer: Tokenizer) -> Self {
        Self::with_cache_capacity(profile, tokenizer, DEFAULT_CACHE_CAPACITY)
    }

    /// Binds a profile to a tokenizer with a shared count cache of `capacity`
    /// messages (0 disables the cache).
    pub fn with_cache_capacity(
        profile: ModelProfile,
        tokenizer: Tokenizer,
        capacity: usize,
    ) -> Self {
        Self::with_cache(profile, tokenizer, CacheScope::Shared { capacity })
    }

    /// Binds a profile to a tokenizer with the count cache `scope`.
    pub fn with_cache(profile: ModelProfile, tokenizer: Tokenizer, scope: CacheScope) -> Self {
        let template = &profile.template;
        let roles = [Role::System, Role::User, Role::Assistant, Role::Tool]
            .map(|role| RoleFrame::new(template, role.as_str(), &tokenizer));
        let reply = count_template_text(&template.reply_prefix, template, &tokenizer);
        Self {
            inner: Arc::new(Inner {
                profile,
                tokenizer,
                roles,
                reply,
                cache: CountCache::new(scope),
            }),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &ModelProfile {
        &self.inner.profile
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Tokens of one message, template included.
    pub fn count_message(&self, message: &Message) -> usize {
        self.count_view(message.view())
    }

    /// [`Model::count_message`] of a message given by its borrowed parts.
    pub fn count_view(&self, message: MessageView<'_>) -> usize {
        self.view_tokens(message, usize::MAX)
            .expect("no count exceeds usize::MAX")
    }

    /// Tokens of a list of messages: each message plus the reply prefix once.
    pub fn count<M: AsRef<Message>>(&self, messages: &[M]) -> Counts {
        let per_message: Vec<usize> = messages
            .iter()
            .map(|m| self.count_message(m.as_ref()))
            .collect();
        let total = per_message.iter().sum::<usize>() + self.inner.reply;
        Counts {
            per_message,
            reply: self.inner.reply,
            total,
        }
    }

    /// Trims `messages` so that their tokens plus `max_tokens` fit the profile's
    /// context limit; see [`Window::trim`] for the rules.
    pub fn trim<M: WindowMessage>(
        &self,
        messages: &[M],
        max_tokens: i64,
    ) -> Result<Trim, TrimError> {
        self.window().trim(messages, max_tokens)
    }

    /// A window over this model's limits, for more options than [`Model::trim`].
    pub fn window(&self) -> Window<'_, Self> {
        // Profile limits are `u32` (configuration); the window counts in `usize`.
        // The conversion cannot fail on a 32- or 64-bit target.
        let widen = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Window::new(self, widen(self.inner.profile.context_limit))
            .max_output(widen(self.inner.profile.max_output))
    }

    fn count_uncached(&self, message: MessageView<'_>, body: &str, budget: usize) -> Option<usize> {
        let named;
        let frame = match message.name {
            None => &self.inner.roles[role_index(message.role)],
            Some(name) => {
                named = RoleFrame::new(
                    &self.inner.profile.template,
                    &named_role(message.role, name),
                    &self.inner.tokenizer,
                );
                &named
            }
        };
        let budget = budget.checked_sub(frame.fixed)?;
        let n = if frame.head.is_empty() && frame.tail.is_empty() {
            self.inner.tokenizer.count_within(body, budget)?
        } else {
            let mut text = String::with_capacity(frame.head.len() + body.len() + frame.tail.len());
            text.push_str(&frame.head);
            text.push_str(body);
            text.push_str(&frame.tail);
            self.inner.tokenizer.count_within(&text, budget)?
        };
        Some(frame.fixed + n)
    }
}

impl MessageCounter for Model {
    fn message_tokens(&self, message: &Message, budget: usize) -> Option<usize> {
        self.view_tokens(message.view(), budget)
    }

    fn view_tokens(&self, message: MessageView<'_>, budget: usize) -> Option<usize> {
        if message.images.is_empty() {
            return self.text_tokens(message, budget);
        }
        // Images cost what the profile's rule says, beside the text: the
        // count cache keys on the text only.
        let images = self.inner.profile.images.count(message.images);
        let text = self.text_tokens(message, budget.checked_sub(images)?)?;
        Some(text + images)
    }

    fn reply_tokens(&self) -> usize {
        self.inner.reply
    }
}

impl Model {
    /// Tokens of a message's text and tool calls in its template, if at most
    /// `budget`.
    fn text_tokens(&self, message: MessageView<'_>, budget: usize) -> Option<usize> {
        let body = render_body(message);
        let cache = &self.inner.cache;
        if cache.is_off() || body.len() < MIN_CACHED_LEN {
            return self.count_uncached(message, &body, budget);
        }
        match cache.lookup(body.len(), || cache_key(message, &body)) {
            Lookup::Hit(n) => {
                let n = n as usize;
                (n <= budget).then_some(n)
            }
            Lookup::Bypass => self.count_uncached(message, &body, budget),
            Lookup::Miss(key) => {
                let n = self.count_uncached(message, &body, budget)?;
                if let Ok(small) = u32::try_from(n) {
                    cache.insert(key, small);
                }
                Some(n)
            }
        }
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::System => 0,
        Role::User => 1,
        Role::Assistant => 2,
        Role::Tool => 3,
    }
}

fn cache_key(message: MessageView<'_>, body: &str) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(role_index(message.role) as u64);
    if let Some(name) = message.name {
        // 0xFF never occurs in UTF-8: name and body cannot run into each other.
        hasher.update(name.as_bytes());
        hasher.update(&[0xFF]);
    }
    hasher.update(body.as_bytes());
    hasher.digest128()
}

/// What `{role}` stands for in a named message's template: ChatML's
/// `user name=alice`.
fn named_role(role: Role, name: &str) -> String {
    format!("{role} name={name}")
}

/// The text a message contributes between its template's prefix and suffix: the
/// content, then each tool call as `\n{name}\n{arguments as JSON}` (our rendering;
/// the hosted APIs do not document one).
fn render_body<'a>(message: MessageView<'a>) -> Cow<'a, str> {
    if message.tool_calls.is_empty() {
        return Cow::Borrowed(message.content);
    }
    let mut body = message.content.to_owned();
    for call in message.tool_calls {
        body.push('\n');
        body.push_str(&call.function.name);
        body.push('\n');
        match &call.function.arguments {
            serde_json::Value::String(s) => body.push_str(s),
            other => body.push_str(&other.to_string()),
        }
    }
    Cow::Owned(body)
}

impl RoleFrame {
    /// The frame of a message whose `{role}` is written as `role`.
    fn new(template: &ChatTemplate, role: &str, tokenizer: &Tokenizer) -> Self {
        let prefix = template.message_prefix.replace("{role}", role);
        let (prefix_fixed, head) = split_at_last_marker(&prefix, template);
        let (tail, suffix_fixed) = split_at_first_marker(&template.message_suffix, template);
        Self {
            fixed: count_template_text(prefix_fixed, template, tokenizer)
                + count_template_text(suffix_fixed, template, tokenizer),
            head: head.to_string(),
            tail: tail.to_string(),
        }
    }
}

/// Splits `text` after the end of its last marker.
fn split_at_last_marker<'a>(text: &'a str, template: &ChatTemplate) -> (&'a str, &'a str) {
    let end = template
        .special_tokens
        .iter()
        .filter_map(|m| text.rfind(m.as_str()).map(|i| i + m.len()))
        .max()
        .unwrap_or(0);
    text.split_at(end)
}

/// Splits `text` at the start of its first marker.
fn split_at_first_marker<'a>(text: &'a str, template: &ChatTemplate) -> (&'a str, &'a str) {
    let start = template
        .special_tokens
        .iter()
        .filter_map(|m| text.find(m.as_str()))
        .min()
        .unwrap_or(text.len());
    text.split_at(start)
}

/// Tokens of template text: each marker is one token, the text between markers is
/// encoded as ordinary text.
fn count_template_text(mut text: &str, template: &ChatTemplate, tokenizer: &Tokenizer) -> usize {
    let mut n = 0;
    while !text.is_empty() {
        let next = template
            .special_tokens
            .iter()
            .filter_map(|m| text.find(m.as_str()).map(|i| (i, m.len())))
            .min_by_key(|&(i, len)| (i, std::cmp::Reverse(len)));
        match next {
            Some((i, len)) => {
                n += tokenizer.count(&text[..i]) + 1;
                text = &text[i + len..];
            }
            None => {
                n += tokenizer.count(text);
                break;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_cache_steps_aside_while_it_saves_too_little_and_comes_back_when_it_saves() {
        let long = MIN_SAVED_PER_LOOKUP as usize;
        let mut thread = ThreadCache::new(1 << 16);
        for k in 0..PROBE_WINDOW {
            let key = u128::from(k);
            assert_eq!(thread.lookup(long, || key), Lookup::Miss(key));
            thread.cache.insert(key, 7);
        }
        // A window without hits: the next messages skip the cache, unhashed.
        let bypass = |thread: &mut ThreadCache| {
            for _ in 0..BYPASS_FOR {
                assert_eq!(
                    thread.lookup(long, || unreachable!("no key is computed while bypassing")),
                    Lookup::Bypass
                );
            }
        };
        bypass(&mut thread);
        // Probing again, on input that repeats: hits, and it stays in use.
        for round in 0..3 {
            for k in 0..PROBE_WINDOW {
                let hit = thread.lookup(long, || u128::from(k));
                assert_eq!(hit, Lookup::Hit(7), "round {round}");
            }
        }
        // Every message a hit, but short ones: too little saved, it steps aside.
        for k in 0..PROBE_WINDOW {
            thread.lookup(long - 1, || u128::from(k));
        }
        bypass(&mut thread);
        // A window that saves exactly enough keeps the cache: a quarter of the
        // lookups hit messages four times the threshold.
        for k in 0..PROBE_WINDOW {
            let key = if k % 4 == 0 {
                0
            } else {
                u128::from(k) + (1 << 40)
            };
            thread.lookup(4 * long, || key);
        }
        assert_eq!(thread.lookup(long, || 0), Lookup::Hit(7));
    }
}
