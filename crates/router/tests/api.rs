//! The wire shape, usage, errors and explanations.

use serde_json::json;
use sluice_core::{Message, Profiles};
use sluice_router::{
    BuildError, NotFound, RouteError, RouteRequest, RouteResult, Router, RouterStore, RuleKind,
    Source, Target,
};

use crate::support::{repo, sample};

#[test]
fn result_serialises_exactly_as_the_router_api() {
    let request: RouteRequest = serde_json::from_value(json!({
        "query": "미세먼지 정보 알려줘",
        "chatHistory": [{"role": "user", "content": "내일 서울의 강수 예보 알려줘"}]
    }))
    .unwrap();
    let result = sample(1).route(&request).unwrap();
    let tokens = result.usage.prompt_tokens;
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        json!({
            "domain": {"result": "지역 검색", "called": true},
            "blockedContent": {"result": ["UnsupportedRegion"], "called": true},
            "safety": {"result": [], "called": true},
            "usage": {"promptTokens": tokens, "completionTokens": 0, "totalTokens": tokens}
        })
    );
    // And it reads back.
    let back: RouteResult = serde_json::from_value(serde_json::to_value(&result).unwrap()).unwrap();
    assert_eq!(back, result);
}

#[test]
fn no_domain_serialises_with_filters_not_called() {
    let result = sample(1).route(&RouteRequest::new("안녕하세요")).unwrap();
    let v = serde_json::to_value(&result).unwrap();
    assert_eq!(v["domain"], json!({"result": "", "called": true}));
    assert_eq!(v["blockedContent"], json!({"result": [], "called": false}));
    assert_eq!(v["safety"], json!({"result": [], "called": false}));
}

#[test]
fn prompt_tokens_are_the_history_and_query_under_the_model_profile() {
    let model = Profiles::builtin().model("HCX-003").unwrap();
    let history = vec![
        Message::user("내일 서울의 강수 예보 알려줘"),
        Message::assistant("내일 서울은 오후에 비가 옵니다."),
    ];
    let mut request = RouteRequest::new("미세먼지 정보 알려줘");
    request.chat_history = history.clone();
    let mut messages = history;
    messages.push(Message::user("미세먼지 정보 알려줘"));
    let expected = model.count(&messages).total;
    let usage = sample(1).route(&request).unwrap().usage;
    assert_eq!(usage.prompt_tokens, expected);
    assert_eq!(usage.completion_tokens, 0);
    assert_eq!(usage.total_tokens, expected);
    // Longer history, more tokens.
    let longer = request.clone().with_user_turn("그리고 모레는?");
    assert!(sample(1).route(&longer).unwrap().usage.prompt_tokens > expected);
}

#[test]
fn over_the_token_limit_is_65400() {
    let router = Router::from_toml(
        "[router]\nid = \"t\"\nversion = 1\ntoken_limit = 20\n[[domain]]\nname = \"a\"\nkeywords = [\"a\"]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(router.token_limit(), 20);
    assert!(router.route(&RouteRequest::new("a")).is_ok());
    let err = router
        .route(&RouteRequest::new("a ".repeat(100)))
        .unwrap_err();
    assert!(
        matches!(err, RouteError::TokenLimit { limit: 20, tokens } if tokens > 20),
        "{err}"
    );
    assert_eq!(err.code(), "65400");
    // History counts too.
    let mut req = RouteRequest::new("a");
    for _ in 0..10 {
        req = req.with_user_turn("another turn of history");
    }
    assert_eq!(router.route(&req).unwrap_err().code(), "65400");
    // The default limit is the profile's context limit.
    assert_eq!(sample(1).token_limit(), 4096);
}

#[test]
fn empty_query_is_an_error() {
    for q in ["", "   ", "\n\t"] {
        let err = sample(1).route(&RouteRequest::new(q)).unwrap_err();
        assert_eq!(err, RouteError::EmptyQuery);
        assert_eq!(err.code(), "40004");
    }
}

#[test]
fn unknown_router_or_version_is_40400() {
    let store = RouterStore::embedded_sample();
    for (id, version) in [("sample", 3), ("sample", 0), ("nope", 1)] {
        let err = store.get(id, version).unwrap_err();
        assert_eq!(err, NotFound::new(id, version));
        assert_eq!(err.code(), "40400");
    }
    assert_eq!(store.latest("sample").unwrap().version(), 2);
    assert!(store.latest("nope").is_none());
}

#[test]
fn embedded_sample_is_the_shipped_directory() {
    let dir = RouterStore::load_dir(repo("routers")).unwrap();
    let embedded = RouterStore::embedded_sample();
    for v in [1, 2] {
        let a = dir.get("sample", v).unwrap();
        let b = embedded.get("sample", v).unwrap();
        assert_eq!(
            a.domains().collect::<Vec<_>>(),
            b.domains().collect::<Vec<_>>()
        );
        assert_eq!(
            std::fs::read_to_string(repo(&format!("routers/sample/{v}.toml"))).unwrap(),
            [sluice_router::SAMPLE_V1, sluice_router::SAMPLE_V2][v as usize - 1]
        );
    }
    // The shipped sample is lint-clean.
    for r in embedded.iter() {
        assert_eq!(r.lints(), vec![], "{}", r.file());
    }
}

#[test]
fn explanation_has_scores_runner_up_and_spans() {
    let text = "내일 부산 날씨 어때? 우산 챙길까, 근처 편의점도";
    let routed = sample(1).route_explained(&RouteRequest::new(text)).unwrap();
    let e = &routed.explanation;
    assert_eq!(routed.result.domain.result, "날씨");
    assert_eq!(e.decided_by, Some(Source::Query));
    assert_eq!(e.threshold, 1.0);
    assert_eq!(e.scores[0].domain, "날씨");
    // 날씨 + 우산 (2 keywords) + the example "내일 서울 날씨 어때?".
    assert_eq!(e.scores[0].keywords, 2);
    assert!(e.scores[0].similarity > 0.0);
    let runner = e.runner_up.as_ref().unwrap();
    assert_eq!(runner.domain, "지역 검색");
    assert_eq!(runner.keywords, 1); // 근처
    assert!(runner.score > 1.0 && runner.score < e.scores[0].score);
    assert!(e.scores.windows(2).all(|w| w[0].score >= w[1].score));
    for f in &e.fired {
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert_eq!(&text[f.start..f.end], f.text);
    }
    let umbrella = e.fired.iter().find(|f| f.rule == "우산").unwrap();
    assert_eq!(
        (umbrella.kind, &umbrella.target),
        (
            RuleKind::Keyword,
            &Target::Domain {
                domain: "날씨".into()
            }
        )
    );
    assert_eq!(&text[umbrella.start..umbrella.end], "우산");
    let example = e
        .fired
        .iter()
        .find(|f| f.kind == RuleKind::Example && f.rule == "내일 서울 날씨 어때?")
        .unwrap();
    assert!(example.similarity.unwrap() > 0.1);
    // The explanation serialises.
    let v = serde_json::to_value(&routed).unwrap();
    assert_eq!(v["explanation"]["decidedBy"], json!("query"));
    assert_eq!(
        v["explanation"]["fired"][0]["target"]["type"],
        json!("domain")
    );
}

#[test]
fn ties_go_to_the_domain_declared_first() {
    let toml = |first: &str, second: &str| {
        format!(
            "[router]\nid = \"t\"\nversion = 1\n[[domain]]\nname = \"{first}\"\nkeywords = [\"same\"]\n[[domain]]\nname = \"{second}\"\nkeywords = [\"same\"]\n"
        )
    };
    for (a, b) in [("a", "b"), ("b", "a")] {
        let router = Router::from_toml(&toml(a, b), "t.toml").unwrap();
        let routed = router
            .route_explained(&RouteRequest::new("the same thing"))
            .unwrap();
        assert_eq!(routed.result.domain.result, a);
        assert_eq!(routed.explanation.runner_up.unwrap().domain, b);
    }
}

#[test]
fn threshold_decides_between_a_domain_and_none() {
    let router = |threshold: f64| {
        Router::from_toml(
            &format!("[router]\nid = \"t\"\nversion = 1\nthreshold = {threshold}\n[[domain]]\nname = \"w\"\nkeywords = [\"rain\"]\npatterns = ['\\d+ ?mm']\n"),
            "t.toml",
        )
        .unwrap()
    };
    let q = RouteRequest::new("rain 30mm");
    assert_eq!(router(2.5).route(&q).unwrap().domain.result, "w"); // 1.0 + 1.5
    assert_eq!(router(2.6).route(&q).unwrap().domain.result, "");
}

#[test]
fn history_turns_setting_limits_the_fallback() {
    let router = |turns: usize| {
        Router::from_toml(
            &format!("[router]\nid = \"t\"\nversion = 1\nhistory_turns = {turns}\n[[domain]]\nname = \"w\"\nkeywords = [\"rain\"]\n"),
            "t.toml",
        )
        .unwrap()
    };
    let req = RouteRequest::new("and tomorrow?")
        .with_user_turn("rain today?")
        .with_user_turn("hm")
        .with_user_turn("ok");
    assert_eq!(router(3).route(&req).unwrap().domain.result, "w");
    assert_eq!(router(2).route(&req).unwrap().domain.result, "");
    assert_eq!(router(0).route(&req).unwrap().domain.result, "");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Router>();
    check::<RouterStore>();
    check::<RouteRequest>();
    check::<RouteResult>();
    check::<sluice_router::Routed>();
    check::<BuildError>();
    check::<RouteError>();
    check::<NotFound>();
}
