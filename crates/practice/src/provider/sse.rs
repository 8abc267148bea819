//! A server-sent events parser that takes the body in whatever pieces the
//! network delivers.
//!
//! It follows the WHATWG rules that matter for chat completions: lines end in
//! `\n`, `\r\n` or `\r` (also when the pair is split between two pieces); a
//! field is `name:value` with at most one space after the colon dropped (CLOVA
//! Studio writes `event:result`, OpenAI writes `data: {...}`); several `data`
//! lines join with `\n`; a blank line ends an event; `:` starts a comment. Lines
//! are decoded only once complete, so a UTF-8 character split between pieces
//! (common with Korean text) survives; a complete line that is not UTF-8 is an
//! error, as it is in a JSON answer.
//!
//! A line, and the data of one event, may not grow past the parser's limit: an
//! upstream that never sends a newline would otherwise fill memory.

/// Why the body is not a stream of events the parser will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A line, or an event's data, longer than the limit.
    TooLong,
    /// A line that is not UTF-8; `at` is the offset of its first bad byte in
    /// the body.
    NotUtf8 {
        /// Offset in the whole body.
        at: u64,
    },
}

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Event {
    /// The `event:` field; `None` for the default type (`message`).
    pub(super) name: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub(super) data: String,
}

/// The parser state between pieces of the body.
#[derive(Debug)]
pub(super) struct Parser {
    /// The longest line, and the most data one event may carry.
    max_line: usize,
    /// Bytes of the body before the current piece, for error offsets.
    offset: u64,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last piece ended with `\r`: a `\n` opening the next one belongs to it.
    skip_lf: bool,
    /// The event being read.
    name: Option<String>,
    data: String,
    has_data: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl Parser {
    /// A parser that refuses lines, and events' data, longer than `max_line` bytes.
    pub(super) fn new(max_line: usize) -> Self {
        Self {
            max_line,
            offset: 0,
            partial: Vec::new(),
            skip_lf: false,
            name: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// Parses the next piece of the body, appending complete events to `out`.
    pub(super) fn feed(&mut self, piece: &[u8], out: &mut Vec<Event>) -> Result<(), Refusal> {
        let mut bytes = piece;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line_end = bytes[end];
            let start =
                self.offset + (piece.len() - bytes.len()) as u64 - self.partial.len() as u64;
            if self.partial.is_empty() {
                self.line(&bytes[..end], start, out)?;
            } else {
                self.check_length(self.partial.len() + end)?;
                self.partial.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, start, out)?;
            }
            bytes = &bytes[end + 1..];
            if line_end == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.check_length(self.partial.len() + bytes.len())?;
        self.partial.extend_from_slice(bytes);
        self.offset += piece.len() as u64;
        Ok(())
    }

    /// Ends the body: an unterminated last line and event still count, since
    /// some servers close the stream without the final blank line.
    pub(super) fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), Refusal> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let start = self.offset - line.len() as u64;
            self.line(&line, start, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn check_length(&self, length: usize) -> Result<(), Refusal> {
        if length > self.max_line {
            return Err(Refusal::TooLong);
        }
        Ok(())
    }

    /// One complete line, which starts at `start` in the body.
    fn line(&mut self, line: &[u8], start: u64, out: &mut Vec<Event>) -> Result<(), Refusal> {
        self.check_length(line.len())?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|e| Refusal::NotUtf8 {
            at: start + e.valid_up_to() as u64,
        })?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => {
                // Many short data lines must not add up to an event past the limit.
                self.check_length(self.data.len() + 1 + value.len())?;
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id` and `retry` only matter to a client that reconnects; a chat
            // completion cannot be resumed.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let name = self.name.take();
        if std::mem::take(&mut self.has_data) {
            out.push(Event {
                name,
                data: std::mem::take(&mut self.data),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<Event> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in body.chunks(piece) {
            parser.feed(chunk, &mut out).unwrap();
        }
        parser.finish(&mut out).unwrap();
        out
    }

    fn refusal_in_pieces(body: &[u8], piece: usize, max_line: usize) -> Option<Refusal> {
        let mut parser = Parser::new(max_line);
        let mut out = Vec::new();
        for chunk in body.chunks(piece) {
            if let Err(refusal) = parser.feed(chunk, &mut out) {
                return Some(refusal);
            }
        }
        parser.finish(&mut out).err()
    }

    #[test]
    fn a_line_or_an_event_past_the_limit_is_refused_in_any_pieces() {
        let ok = b"data: 12345\n\n";
        let long_line = b"data: 123456\n\n";
        let unterminated = b"data: 1234567890";
        let many_lines = b"data: 1234\ndata: 5678\ndata: 9012\n\n";
        for piece in 1..=16 {
            assert_eq!(refusal_in_pieces(ok, piece, 11), None, "piece {piece}");
            for body in [&long_line[..], &unterminated[..], &many_lines[..]] {
                assert_eq!(
                    refusal_in_pieces(body, piece, 11),
                    Some(Refusal::TooLong),
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_with_its_offset() {
        let mut body = b"data: ok\n\ndata: \xea\xb0".to_vec();
        body.extend_from_slice(b"\xff\n\n");
        for piece in 1..=body.len() {
            assert_eq!(
                refusal_in_pieces(&body, piece, 100),
                Some(Refusal::NotUtf8 { at: 16 }),
                "piece {piece}"
            );
        }
    }

    fn event(name: Option<&str>, data: &str) -> Event {
        Event {
            name: name.map(str::to_string),
            data: data.to_string(),
        }
    }

    #[test]
    fn fields_with_and_without_a_space_after_the_colon() {
        let body = "event:token\ndata:{\"a\":1}\n\nevent: result\ndata: {\"b\":2}\n\n";
        for piece in 1..=body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                [
                    event(Some("token"), "{\"a\":1}"),
                    event(Some("result"), "{\"b\":2}")
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn every_line_ending_and_split_pairs() {
        let body = "data: a\r\n\r\ndata: b\r\rdata: c\n\ndata:  two spaces\n\n";
        for piece in 1..=body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                [
                    event(None, "a"),
                    event(None, "b"),
                    event(None, "c"),
                    event(None, " two spaces")
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn multi_line_data_comments_and_empty_events() {
        let body = ": keep-alive\n\nid: 7\nevent: signal\n\ndata: one\ndata: two\n\n";
        assert_eq!(
            parse_in_pieces(body.as_bytes(), 5),
            [event(None, "one\ntwo")]
        );
    }

    #[test]
    fn utf8_split_between_pieces_and_an_unterminated_last_event() {
        let body = "event:token\ndata:{\"content\":\"안녕하세요\"}";
        for piece in 1..=body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                [event(Some("token"), "{\"content\":\"안녕하세요\"}")]
            );
        }
    }
}
