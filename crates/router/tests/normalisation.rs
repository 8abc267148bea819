//! Regressions of normalisation seen through routing.

use sluice_router::{RouteRequest, normalize};

use crate::support::sample;

#[test]
fn jamo_split_by_an_invisible_character_route_like_the_syllable() {
    let plain = sample(1)
        .route(&RouteRequest::new("미세먼지 정보 알려줘"))
        .unwrap();
    assert!(!plain.domain.result.is_empty(), "{plain:?}");
    for split in [
        "\u{1106}\u{200B}\u{1175}세먼지 정보 알려줘",
        "\u{1106}\u{FEFF}\u{1175}세먼지 정보 알려줘",
        "미\u{200B}세먼지 정보 알려줘",
    ] {
        let routed = sample(1).route(&RouteRequest::new(split)).unwrap();
        assert_eq!(routed.domain, plain.domain, "{split:?}");
        assert_eq!(routed.blocked_content, plain.blocked_content, "{split:?}");
    }
}

#[test]
fn normalisation_found_by_fuzzing_is_idempotent() {
    let once = normalize("\u{614}\u{61C}\u{618}");
    assert_eq!(normalize(&once), once);
}
