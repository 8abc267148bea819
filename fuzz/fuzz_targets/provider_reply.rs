//! Arbitrary bytes as what an upstream model answers, through
//! sluice-practice's provider layer: the OpenAI-compatible and CLOVA v3 reply
//! parsers, the SSE stream decoder, and the reader of error bodies.
//!
//! Never a panic, and every failure typed:
//! - a whole reply parses or is `bad_response` (CLOVA's error envelope under
//!   200 may also carry its own status: `rate_limited`/`upstream_4xx`/`5xx`);
//! - a stream gives the same outcome and the same deltas however the body is
//!   split into pieces (the network decides), and a streamed reply's text is
//!   exactly the concatenation of the deltas forwarded;
//! - an error status with any body is the error of that status.
//!
//! Input: byte 0 picks the wire format and what to read; byte 1 seeds the
//! split points of a stream; the rest is the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_practice::provider::fuzzing::{error_for_status, parse_reply, read_stream};
use sluice_practice::provider::{ProviderError, ProviderKind};

/// The kinds an answer read off the wire can fail with (no timeout or
/// transport error: those come from the clock and the socket).
fn typed(e: &ProviderError) {
    assert!(
        matches!(
            e.kind(),
            "bad_response" | "rate_limited" | "upstream_4xx" | "upstream_5xx"
        ),
        "{e:?}"
    );
    assert!(!e.to_string().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let &[selector, split, ref body @ ..] = data else {
        return;
    };
    let kind = if selector & 1 == 0 {
        ProviderKind::Openai
    } else {
        ProviderKind::Clova
    };
    match (selector >> 1) % 3 {
        0 => {
            if let Err(e) = parse_reply(kind, body) {
                typed(&e);
            }
        }
        1 => {
            let (whole, whole_deltas) = read_stream(kind, [body]);
            // Pieces of 1 to 8 bytes, cut after every `step`-th byte.
            let step = usize::from(split % 8) + 1;
            let (pieces, piece_deltas) = read_stream(kind, body.chunks(step));
            match &whole {
                Ok(reply) => assert_eq!(reply.text, whole_deltas.concat()),
                Err(e) => typed(e),
            }
            assert_eq!(whole, pieces, "split every {step} bytes");
            assert_eq!(whole_deltas.concat(), piece_deltas.concat());
        }
        _ => {
            // Every status upstreams send on errors, and a few they should not.
            let status = [
                400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529,
            ][usize::from(split) % 14];
            let e = error_for_status(status, body);
            let expected = match status {
                429 => "rate_limited",
                400..=499 => "upstream_4xx",
                _ => "upstream_5xx",
            };
            assert_eq!(e.kind(), expected, "{e:?}");
            assert_eq!(e.status(), Some(status));
        }
    }
});
