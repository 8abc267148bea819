//! Table-driven routing cases from `tests/data/cases/*.toml`, run against the
//! sample router.

use std::collections::BTreeSet;

use serde::Deserialize;
use sluice_core::Message;
use sluice_router::{RouteRequest, Source};

use crate::support::{data, sample};

#[derive(Deserialize)]
struct File {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    tags: Vec<String>,
    #[serde(default = "one")]
    version: u32,
    query: String,
    #[serde(default)]
    history: Vec<Turn>,
    domain: String,
    #[serde(default)]
    blocked: Vec<String>,
    #[serde(default)]
    safety: Vec<String>,
    /// The chatHistory index that decided the domain.
    decided_by: Option<usize>,
    #[serde(default)]
    fired: Vec<Fired>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Turn {
    User(String),
    Message(Message),
}

#[derive(Deserialize)]
struct Fired {
    rule: String,
    text: String,
}

fn one() -> u32 {
    1
}

fn load_cases() -> Vec<(String, Case)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(data("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: File =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        out.extend(file.case.into_iter().map(|c| (stem.clone(), c)));
    }
    out
}

fn check(case: &Case) -> Result<(), String> {
    let router = sample(case.version);
    let mut request = RouteRequest::new(case.query.as_str());
    request.chat_history = case
        .history
        .iter()
        .map(|t| match t {
            Turn::User(s) => Message::user(s.as_str()),
            Turn::Message(m) => m.clone(),
        })
        .collect();
    let routed = router
        .route_explained(&request)
        .map_err(|e| e.to_string())?;
    let r = &routed.result;
    let got = (
        r.domain.result.as_str(),
        &r.blocked_content.result,
        &r.safety.result,
    );
    if got != (case.domain.as_str(), &case.blocked, &case.safety) {
        return Err(format!(
            "got domain {:?} blocked {:?} safety {:?}; explanation {:#?}",
            got.0, got.1, got.2, routed.explanation
        ));
    }
    if !r.domain.called {
        return Err("domain.called is false".into());
    }
    let matched = !case.domain.is_empty();
    if r.blocked_content.called != matched || r.safety.called != matched {
        return Err(format!(
            "filters called {} / {}, domain matched {matched}",
            r.blocked_content.called, r.safety.called
        ));
    }
    let expected_source = match (matched, case.decided_by) {
        (false, _) => None,
        (true, Some(i)) => Some(Source::ChatHistory(i)),
        (true, None) => Some(Source::Query),
    };
    if routed.explanation.decided_by != expected_source {
        return Err(format!(
            "decided by {:?}, expected {expected_source:?}",
            routed.explanation.decided_by
        ));
    }
    for f in &case.fired {
        if !routed
            .explanation
            .fired
            .iter()
            .any(|x| x.rule == f.rule && x.text == f.text)
        {
            return Err(format!(
                "rule {:?} did not fire on {:?}; fired: {:#?}",
                f.rule, f.text, routed.explanation.fired
            ));
        }
    }
    // The plain call agrees with the explained one.
    let plain = router.route(&request).map_err(|e| e.to_string())?;
    if plain != routed.result {
        return Err("route and route_explained disagree".into());
    }
    Ok(())
}

#[test]
fn routing_cases_from_data_files() {
    let cases = load_cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(file, c)| check(c).err().map(|e| format!("{file}: {}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn cases_cover_every_required_kind() {
    let tags: BTreeSet<String> = load_cases().into_iter().flat_map(|(_, c)| c.tags).collect();
    for required in [
        "particles",
        "mixed-scripts",
        "spacing",
        "zero-width",
        "full-width",
        "case",
        "history",
        "no-domain",
        "hosted-example",
        "safety",
        "filters",
    ] {
        assert!(tags.contains(required), "no case tagged {required}");
    }
}
