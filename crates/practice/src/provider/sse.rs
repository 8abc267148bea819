//! A server-sent events parser that takes the body in whatever pieces the
//! network delivers.
//!
//! It follows the WHATWG rules that matter for chat completions: lines end in
//! `\n`, `\r\n` or `\r` (also when the pair is split between two pieces); a
//! field is `name:value` with at most one space after the colon dropped (CLOVA
//! Studio writes `event:result`, OpenAI writes `data: {...}`); several `data`
//! lines join with `\n`; a blank line ends an event; `:` starts a comment. Lines
//! are decoded only once complete, so a UTF-8 character split between pieces
//! (common with Korean text) survives.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Event {
    /// The `event:` field; `None` for the default type (`message`).
    pub(super) name: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub(super) data: String,
}

/// The parser state between pieces of the body.
#[derive(Debug, Default)]
pub(super) struct Parser {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last piece ended with `\r`: a `\n` opening the next one belongs to it.
    skip_lf: bool,
    /// The event being read.
    name: Option<String>,
    data: String,
    has_data: bool,
}

impl Parser {
    /// Parses the next piece of the body, appending complete events to `out`.
    pub(super) fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Event>) {
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line_end = bytes[end];
            if self.partial.is_empty() {
                self.line(&bytes[..end], out);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, out);
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
        self.partial.extend_from_slice(bytes);
    }

    /// Ends the body: an unterminated last line and event still count, since
    /// some servers close the stream without the final blank line.
    pub(super) fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => {
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
            parser.feed(chunk, &mut out);
        }
        parser.finish(&mut out);
        out
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
