//! Invariants over arbitrary input.

use proptest::prelude::*;
use sluice_router::{RouteRequest, normalize};

use crate::support::sample;

/// Text built from pieces that exercise the matcher: sample keywords, particles,
/// spacing, invisible and full-width characters, plus arbitrary Unicode.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("미세먼지".to_string()),
        Just("서울".to_string()),
        Just("의".to_string()),
        Just("날씨".to_string()),
        Just("weather".to_string()),
        Just("ＷＥＡＴＨＥＲ".to_string()),
        Just("짝퉁".to_string()),
        Just("가격".to_string()),
        Just("마약 구매".to_string()),
        Just("010-1234-5678".to_string()),
        Just(" ".to_string()),
        Just("\u{200B}".to_string()),
        Just("\u{3000}".to_string()),
        Just("\u{1112}\u{1161}".to_string()),
        Just("e\u{301}".to_string()),
        Just("ﬁ".to_string()),
        Just("İ".to_string()),
        any::<String>(),
        "[a-z0-9 ]{1,8}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn request() -> impl Strategy<Value = RouteRequest> {
    (text(), prop::collection::vec(text(), 0..3)).prop_map(|(q, h)| {
        let mut r = RouteRequest::new(format!("q {q}"));
        for t in h {
            r = r.with_user_turn(t);
        }
        r
    })
}

proptest! {
    #[test]
    fn normalisation_never_panics_and_is_idempotent(s in any::<String>()) {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone());
        prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
    }

    #[test]
    fn normalisation_of_built_text(s in text()) {
        let n = normalize(&s);
        prop_assert!(!n.chars().any(|c| c.is_whitespace() && c != ' '));
        let zwsp = '\u{200B}';
        prop_assert!(!n.contains(zwsp));
    }

    #[test]
    fn exactly_one_decision_and_spans_on_char_boundaries(req in request()) {
        let router = sample(1);
        let routed = router.route_explained(&req).unwrap();
        let r = &routed.result;
        let domains: Vec<&str> = router.domains().collect();
        // One decision: a single domain of the router, or none.
        prop_assert!(r.domain.called);
        prop_assert!(r.domain.result.is_empty() || domains.contains(&r.domain.result.as_str()));
        let matched = !r.domain.result.is_empty();
        prop_assert_eq!(r.blocked_content.called, matched);
        prop_assert_eq!(r.safety.called, matched);
        if !matched {
            prop_assert!(r.blocked_content.result.is_empty() && r.safety.result.is_empty());
        } else {
            let filters: Vec<&str> = router.filters(&r.domain.result).collect();
            prop_assert!(r.blocked_content.result.iter().all(|f| filters.contains(&f.as_str())));
        }
        prop_assert_eq!(r.usage.total_tokens, r.usage.prompt_tokens);
        prop_assert_eq!(r.usage.completion_tokens, 0);
        // The winner is the first of the ranking.
        if matched {
            prop_assert_eq!(&routed.explanation.scores[0].domain, &r.domain.result);
        }
        // Spans lie inside their original text, on char boundaries.
        for f in &routed.explanation.fired {
            let text = match f.source {
                sluice_router::Source::Query => req.query.as_str(),
                sluice_router::Source::ChatHistory(i) => req.chat_history[i].content.as_str(),
            };
            prop_assert!(f.start <= f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            prop_assert_eq!(&text[f.start..f.end], f.text.as_str());
        }
    }

    #[test]
    fn routing_is_deterministic(req in request()) {
        let a = sample(1).route_explained(&req).unwrap();
        let b = sample(1).route_explained(&req).unwrap();
        prop_assert_eq!(&a, &b);
        // A freshly loaded router decides the same.
        let fresh = sluice_router::Router::from_toml(sluice_router::SAMPLE_V1, "fresh.toml").unwrap();
        prop_assert_eq!(fresh.route(&req).unwrap(), a.result);
    }
}
