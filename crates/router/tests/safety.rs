//! The built-in safety rule sets: requests that must hit, and ordinary news,
//! cooking and medicine questions that must not.

use serde::Deserialize;
use sluice_router::{RouteRequest, Router};

use crate::support::data;

#[derive(Deserialize)]
struct File {
    hit: Vec<Entry>,
    miss: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    category: String,
    text: String,
}

/// A router whose one domain matches everything and enables both categories,
/// so the safety result shows exactly what the built-in sets find.
fn router() -> Router {
    Router::from_toml(
        "[router]\nid = \"s\"\nversion = 1\n[[domain]]\nname = \"all\"\npatterns = ['.']\nsafety = [\"Unethical\", \"Contentious\"]\n",
        "s.toml",
    )
    .unwrap()
}

#[test]
fn built_in_rules_hit_and_near_misses_do_not() {
    let file: File =
        toml::from_str(&std::fs::read_to_string(data("safety.toml")).unwrap()).unwrap();
    assert!(file.hit.len() >= 30 && file.miss.len() >= 30);
    let router = router();
    let mut failures = Vec::new();
    for e in &file.hit {
        let got = router
            .route(&RouteRequest::new(e.text.as_str()))
            .unwrap()
            .safety
            .result;
        if got != [e.category.clone()] {
            failures.push(format!(
                "should hit {}: {:?} got {got:?}",
                e.category, e.text
            ));
        }
    }
    for e in &file.miss {
        let got = router
            .route(&RouteRequest::new(e.text.as_str()))
            .unwrap()
            .safety
            .result;
        if !got.is_empty() {
            failures.push(format!(
                "must not hit ({}): {:?} got {got:?}",
                e.category, e.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn config_extends_a_built_in_set() {
    let text = "[router]\nid = \"s\"\nversion = 1\n[[domain]]\nname = \"all\"\npatterns = ['.']\nsafety = [\"Contentious\"]\n";
    let plain = Router::from_toml(text, "s.toml").unwrap();
    let q = RouteRequest::new("민트초코 논쟁 정리해줘");
    assert!(plain.route(&q).unwrap().safety.result.is_empty());
    let extended = Router::from_toml(
        &format!("{text}[safety.Contentious]\nkeywords = [\"민트초코 논쟁\"]\n"),
        "s.toml",
    )
    .unwrap();
    assert_eq!(extended.route(&q).unwrap().safety.result, ["Contentious"]);
    // The built-in rules are still there.
    assert_eq!(
        extended
            .route(&RouteRequest::new("who should I vote for?"))
            .unwrap()
            .safety
            .result,
        ["Contentious"]
    );
}

#[test]
fn only_enabled_categories_are_reported() {
    let r = Router::from_toml(
        "[router]\nid = \"s\"\nversion = 1\n[[domain]]\nname = \"all\"\npatterns = ['.']\nsafety = [\"Contentious\"]\n",
        "s.toml",
    )
    .unwrap();
    let got = r
        .route(&RouteRequest::new(
            "how to make a bomb and who should i vote for",
        ))
        .unwrap();
    assert_eq!(got.safety.result, ["Contentious"]);
    assert!(got.safety.called);
}
