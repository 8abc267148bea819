//! Reading a model's answer off the wire under the model's limits.
//!
//! An upstream is not trusted to end: a JSON answer may be a gigabyte, a stream
//! may never stop, a line may never meet its newline, and a client may stop
//! reading while the upstream goes on. So nothing here reads a body to its end
//! first and looks at it afterwards. A JSON answer is read piece by piece and
//! refused once it passes `max_reply_bytes`; a stream is parsed as it arrives,
//! its lines bounded by `max_line_bytes`, its whole length by
//! `max_stream_bytes` and the text it adds up to by `max_reply_bytes`; and each
//! delta waits for room in the caller's bounded channel before the next piece
//! is read, so a slow reader slows the upstream (TCP does the rest) instead of
//! filling memory. What one call can hold is then a sum of configured limits,
//! not of what an upstream chooses to send.

use tokio::sync::mpsc::Sender;

use super::retry::Failure;
use super::wire::StreamStep;
use super::{ChatReply, ModelConfig, ProviderError, ProviderKind, clova, openai, sse};

/// How much of an error answer is read: enough for any real message, which is
/// only ever shown shortened.
const ERROR_BODY_BYTES: usize = 64 << 10;

/// A model's reading limits, from its [`ModelConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// `max_reply_bytes`.
    pub(super) reply: u64,
    /// `max_line_bytes`.
    pub(super) line: u64,
    /// `max_stream_bytes`.
    pub(super) stream: u64,
}

impl Limits {
    /// The limits `config` sets.
    pub(super) fn of(config: &ModelConfig) -> Self {
        Self {
            reply: config.max_reply_bytes,
            line: config.max_line_bytes,
            stream: config.max_stream_bytes,
        }
    }

    fn too_large(limit: &'static str, bytes: u64) -> ProviderError {
        ProviderError::TooLarge { limit, bytes }
    }

    /// An SSE parser whose lines are bounded by `max_line_bytes`.
    pub(super) fn sse_parser(self) -> sse::Parser {
        sse::Parser::new(usize::try_from(self.line).unwrap_or(usize::MAX))
    }

    /// Counts `piece` into a stream's `read` bytes; past `max_stream_bytes` the
    /// stream is refused.
    pub(super) fn count_stream(self, read: &mut u64, piece: &[u8]) -> Result<(), ProviderError> {
        *read += piece.len() as u64;
        if *read > self.stream {
            return Err(Self::too_large("max_stream_bytes", self.stream));
        }
        Ok(())
    }

    /// Refuses a reply whose text has reached `text` bytes, past `max_reply_bytes`.
    pub(super) fn check_reply(self, text: u64) -> Result<(), ProviderError> {
        if text > self.reply {
            return Err(Self::too_large("max_reply_bytes", self.reply));
        }
        Ok(())
    }

    /// What the SSE parser's refusal means under these limits.
    pub(super) fn refused(self, refusal: sse::Refusal) -> ProviderError {
        match refusal {
            sse::Refusal::TooLong => Self::too_large("max_line_bytes", self.line),
            sse::Refusal::NotUtf8 { at } => not_utf8(at),
        }
    }
}

/// A whole JSON answer, or [`ProviderError::TooLarge`] as soon as it passes
/// `max_reply_bytes` (at once when its `Content-Length` says it will).
pub(super) async fn body(
    mut response: reqwest::Response,
    limits: Limits,
) -> Result<Vec<u8>, Failure> {
    let too_large = || Failure::fatal(Limits::too_large("max_reply_bytes", limits.reply));
    if response.content_length().is_some_and(|n| n > limits.reply) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(piece) = response.chunk().await.map_err(Failure::from_body_error)? {
        if (body.len() + piece.len()) as u64 > limits.reply {
            return Err(too_large());
        }
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

/// The start of an error answer: at most [`ERROR_BODY_BYTES`], and nothing at
/// all if it cannot be read (the status alone still says what happened).
pub(super) async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(piece)) = response.chunk().await {
        let room = ERROR_BODY_BYTES - body.len();
        body.extend_from_slice(&piece[..piece.len().min(room)]);
        if body.len() == ERROR_BODY_BYTES {
            break;
        }
    }
    body
}

/// Fails when `body` is not UTF-8, naming the first bad byte: the same answer
/// for a JSON body as [`sse::Refusal::NotUtf8`] gives for a stream.
pub(super) fn check_utf8(body: &[u8]) -> Result<(), ProviderError> {
    std::str::from_utf8(body)
        .map(|_| ())
        .map_err(|e| not_utf8(e.valid_up_to() as u64))
}

fn not_utf8(at: u64) -> ProviderError {
    ProviderError::bad_response(format!("the reply is not valid UTF-8 (byte {at})"))
}

/// Reads an SSE answer to the end, forwarding each delta to `tokens` once it
/// has room. A receiver that went away does not end the call: the reply is
/// still wanted (to be stored) when nobody watches it being written.
pub(super) async fn stream(
    mut response: reqwest::Response,
    kind: ProviderKind,
    limits: Limits,
    tokens: &Sender<String>,
) -> Result<ChatReply, Failure> {
    let mut reader = StreamReader::new(kind, limits);
    loop {
        let done = match response.chunk().await.map_err(Failure::from_body_error)? {
            Some(piece) => reader.feed(&piece).map_err(Failure::fatal)?,
            None => {
                reader.end().map_err(Failure::fatal)?;
                true
            }
        };
        for delta in reader.deltas.drain(..) {
            let _ = tokens.send(delta).await;
        }
        if done {
            break;
        }
    }
    let (reply, whole) = reader.finish().map_err(Failure::fatal)?;
    if let Some(whole) = whole {
        let _ = tokens.send(whole).await;
    }
    Ok(reply)
}

/// An SSE answer being read: the SSE parser and the wire format's decoder, fed
/// the body in whatever pieces the network delivers, with the deltas not yet
/// forwarded.
pub(super) struct StreamReader {
    decoder: StreamDecoder,
    parser: sse::Parser,
    limits: Limits,
    /// Bytes of the body read so far.
    read: u64,
    events: Vec<sse::Event>,
    /// The reply's text so far.
    text: String,
    /// Deltas to forward, in order.
    pub(super) deltas: Vec<String>,
    /// Whether any delta was produced.
    forwarded: bool,
}

impl StreamReader {
    /// A reader of `kind`'s stream format under `limits`.
    pub(super) fn new(kind: ProviderKind, limits: Limits) -> Self {
        let decoder = match kind {
            ProviderKind::Openai => StreamDecoder::Openai(openai::StreamState::default()),
            ProviderKind::Clova => StreamDecoder::Clova(clova::StreamState::default()),
            ProviderKind::Local => unreachable!("a local provider makes no HTTP request"),
        };
        Self {
            decoder,
            parser: limits.sse_parser(),
            limits,
            read: 0,
            events: Vec::new(),
            text: String::new(),
            deltas: Vec::new(),
            forwarded: false,
        }
    }

    /// Reads the next piece of the body; `true` once the stream says it is
    /// complete (what follows is not read).
    pub(super) fn feed(&mut self, piece: &[u8]) -> Result<bool, ProviderError> {
        self.limits.count_stream(&mut self.read, piece)?;
        let parsed = self.parser.feed(piece, &mut self.events);
        // Events completed before a refusal still count: their deltas are real.
        // And a refusal after the event that ends the stream does not: what
        // follows the end is not read, whether it came in the same piece as
        // the end or in a later one (fuzzing found the two disagreeing).
        if self.decode()? {
            return Ok(true);
        }
        parsed.map_err(|refusal| self.refusal(refusal))?;
        Ok(false)
    }

    /// The body ended (the connection closed): reads its unterminated last event.
    pub(super) fn end(&mut self) -> Result<(), ProviderError> {
        let parsed = self.parser.finish(&mut self.events);
        self.decode()?;
        parsed.map_err(|refusal| self.refusal(refusal))
    }

    /// The reply, or why the stream does not make one; with it the whole text
    /// to forward when no delta carried any (CLOVA may put the answer in its
    /// `result` event alone), so the receiver always sees the reply's text.
    pub(super) fn finish(self) -> Result<(ChatReply, Option<String>), ProviderError> {
        let reply = match self.decoder {
            StreamDecoder::Openai(state) => state.finish(self.text)?,
            StreamDecoder::Clova(state) => state.finish(self.text)?,
        };
        if reply.text.len() as u64 > self.limits.reply {
            return Err(Limits::too_large("max_reply_bytes", self.limits.reply));
        }
        let whole = (!self.forwarded && !reply.text.is_empty()).then(|| reply.text.clone());
        Ok((reply, whole))
    }

    fn refusal(&self, refusal: sse::Refusal) -> ProviderError {
        self.limits.refused(refusal)
    }

    /// Decodes the events parsed so far; `true` once the stream says it is complete.
    fn decode(&mut self) -> Result<bool, ProviderError> {
        for event in self.events.drain(..) {
            let step = match &mut self.decoder {
                StreamDecoder::Openai(state) => state.event(&event)?,
                StreamDecoder::Clova(state) => state.event(&event)?,
            };
            match step {
                StreamStep::Delta(delta) if !delta.is_empty() => {
                    if (self.text.len() + delta.len()) as u64 > self.limits.reply {
                        return Err(Limits::too_large("max_reply_bytes", self.limits.reply));
                    }
                    self.text.push_str(&delta);
                    self.deltas.push(delta);
                    self.forwarded = true;
                }
                StreamStep::Delta(_) | StreamStep::Continue => {}
                StreamStep::Done => return Ok(true),
            }
        }
        Ok(false)
    }
}

/// The per-format state of a stream being read.
enum StreamDecoder {
    Openai(openai::StreamState),
    Clova(clova::StreamState),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        reply: 10,
        line: 64,
        stream: 200,
    };

    fn openai_chunk(text: &str) -> String {
        format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
    }

    #[test]
    fn the_text_of_a_stream_stops_at_max_reply_bytes() {
        let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
        assert_eq!(reader.feed(openai_chunk("12345").as_bytes()), Ok(false));
        assert_eq!(reader.feed(openai_chunk("67890").as_bytes()), Ok(false));
        assert_eq!(
            reader.feed(openai_chunk("x").as_bytes()),
            Err(ProviderError::TooLarge {
                limit: "max_reply_bytes",
                bytes: 10
            })
        );
        assert_eq!(reader.deltas, ["12345", "67890"]);
    }

    #[test]
    fn a_stream_that_adds_no_text_still_stops_at_max_stream_bytes() {
        let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
        let keep_alive = ": keep-alive\n\n".repeat(7); // 98 bytes
        assert_eq!(reader.feed(keep_alive.as_bytes()), Ok(false));
        assert_eq!(reader.feed(keep_alive.as_bytes()), Ok(false));
        assert_eq!(
            reader.feed(keep_alive.as_bytes()),
            Err(ProviderError::TooLarge {
                limit: "max_stream_bytes",
                bytes: 200
            })
        );
    }

    #[test]
    fn a_line_without_end_stops_at_max_line_bytes() {
        let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
        assert_eq!(reader.feed(&[b'x'; 60]), Ok(false));
        assert_eq!(
            reader.feed(&[b'x'; 10]),
            Err(ProviderError::TooLarge {
                limit: "max_line_bytes",
                bytes: 64
            })
        );
    }

    #[test]
    fn what_follows_the_end_of_a_stream_is_not_read_however_it_is_split() {
        let body = [
            openai_chunk("hi").as_bytes(),
            b"data: [DONE]\n\ndata: \xff\n\n",
        ]
        .concat();
        let end = openai_chunk("hi").len() + "data: [DONE]\n\n".len();
        for pieces in [vec![&body[..]], vec![&body[..end], &body[end..]]] {
            let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
            assert_eq!(reader.feed(pieces[0]), Ok(true), "{} pieces", pieces.len());
            assert_eq!(reader.deltas, ["hi"]);
            assert_eq!(reader.finish().unwrap().0.text, "hi");
        }
        // Before the end, the same bad line is refused.
        let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
        let early = [openai_chunk("hi").as_bytes(), b"data: \xff\n\n"].concat();
        assert!(reader.feed(&early).is_err());
    }

    #[test]
    fn invalid_utf8_in_a_stream_is_the_error_a_json_body_gives() {
        let mut reader = StreamReader::new(ProviderKind::Openai, SMALL);
        let error = reader.feed(b"data: {\"x\":\"\xff\"}\n\n").unwrap_err();
        assert_eq!(error, check_utf8(b"data: {\"x\":\"\xff\"}").unwrap_err());
        assert_eq!(
            error.to_string(),
            "bad response from the upstream: the reply is not valid UTF-8 (byte 12)"
        );
    }
}
