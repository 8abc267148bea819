//! Entry points for the fuzz targets in `fuzz/`: the reply parsers, the
//! stream decoder and the error-body reader, which are private to this
//! module. Hidden from the documentation and not part of the API.

use reqwest::header::HeaderMap;

use super::read::{Limits, StreamReader};
use super::retry::Failure;
use super::wire::Fault;
use super::{
    ChatReply, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_STREAM_BYTES,
    ProviderError, ProviderKind, clova, openai,
};

/// A whole (non-streamed) answer with HTTP 200, read as `kind`'s wire format
/// (OpenAI or CLOVA: a local model reads nothing off the wire).
pub fn parse_reply(kind: ProviderKind, body: &[u8]) -> Result<ChatReply, ProviderError> {
    match kind {
        ProviderKind::Openai => openai::parse_reply(body),
        ProviderKind::Clova => clova::parse_reply(body),
        ProviderKind::Local => unreachable!("a local provider reads nothing off the wire"),
    }
}

/// A streamed answer (an SSE body) delivered in `pieces`, read as `kind`'s wire
/// format to its end under the default limits, as a call reads it: the reply
/// or the error, and every delta forwarded on the way.
pub fn read_stream<'a>(
    kind: ProviderKind,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Result<ChatReply, ProviderError>, Vec<String>) {
    let limits = Limits {
        reply: DEFAULT_MAX_REPLY_BYTES,
        line: DEFAULT_MAX_LINE_BYTES,
        stream: DEFAULT_MAX_STREAM_BYTES,
    };
    let mut reader = StreamReader::new(kind, limits);
    let mut outcome = Ok(false);
    for piece in pieces {
        outcome = reader.feed(piece);
        if !matches!(outcome, Ok(false)) {
            break;
        }
    }
    if let Ok(false) = outcome {
        outcome = reader.end().map(|()| true);
    }
    let mut deltas = std::mem::take(&mut reader.deltas);
    let result = outcome.and_then(|_| reader.finish()).map(|(reply, whole)| {
        deltas.extend(whole);
        reply
    });
    (result, deltas)
}

/// The error a call reports for an error `status` with `body` (any of the
/// shapes upstreams use, or none).
pub fn error_for_status(status: u16, body: &[u8]) -> ProviderError {
    Failure::from_status(status, Fault::from_body(body), &HeaderMap::new()).error
}
