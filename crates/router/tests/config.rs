//! Loading: labels, limits and rules are checked with file and line; the
//! directory layout; the linear-time pattern engine; lints.

use std::time::{Duration, Instant};

use sluice_router::{BuildError, LintKind, RouteRequest, Router, RouterStore};

use crate::support::data;

/// Loads `text` and returns the problems as `line: reason`.
fn problems(text: &str) -> Vec<(usize, String)> {
    match Router::from_toml(text, "bad.toml") {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => {
            assert_eq!(e.code(), "65001", "{e}");
            e.problems()
                .iter()
                .map(|p| (p.line, p.reason.clone()))
                .collect()
        }
    }
}

const HEAD: &str = "[router]\nid = \"t\"\nversion = 1\n";

/// Each invalid file (a header, then a domain) and the line and words of its problem.
#[test]
fn invalid_labels_and_limits_are_reported_with_their_line() {
    let long_name = "가".repeat(31);
    let long_desc = "d".repeat(401);
    let long_filter_desc = "d".repeat(201);
    let eight_filters: String = (0..8)
        .map(|i| format!("[[domain.filter]]\nname = \"F{i}\"\nkeywords = [\"k{i}\"]\n"))
        .collect();
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("[[domain]]\nname = \"{long_name}\"\nkeywords = [\"x\"]\n"), 5, "31 characters long, the limit is 30"),
        ("[[domain]]\nname = \"\"\n".into(), 5, "must not be empty"),
        ("[[domain]]\nname = \"a\"\n[[domain]]\nname = \"a\"\n".into(), 7, "used twice"),
        (format!("[[domain]]\nname = \"a\"\ndescription = \"{long_desc}\"\n"), 6, "401 characters long, the limit is 400"),
        (format!("[[domain]]\nname = \"a\"\n{eight_filters}"), 27, "8 content filters, the limit is 7"),
        ("[[domain]]\nname = \"a\"\n[[domain.filter]]\nname = \"Bad Name\"\n".into(), 7, "ASCII letters or digits"),
        ("[[domain]]\nname = \"a\"\n[[domain.filter]]\nname = \"지역\"\n".into(), 7, "ASCII letters or digits"),
        (format!("[[domain]]\nname = \"a\"\n[[domain.filter]]\nname = \"{}\"\n", "A".repeat(31)), 7, "ASCII letters or digits"),
        (format!("[[domain]]\nname = \"a\"\n[[domain.filter]]\nname = \"F\"\ndescription = \"{long_filter_desc}\"\n"), 8, "201 characters long, the limit is 200"),
        ("[[domain]]\nname = \"a\"\n[[domain.filter]]\nname = \"F\"\n[[domain.filter]]\nname = \"F\"\n".into(), 9, "used twice"),
        ("[[domain]]\nname = \"a\"\nsafety = [\"Unethical\", \"Politics\"]\n".into(), 6, "unknown safety category \"Politics\""),
        ("[[domain]]\nname = \"a\"\nsafety = [\"Unethical\", \"Unethical\"]\n".into(), 6, "listed twice"),
        ("[[domain]]\nname = \"a\"\nkeywords = [\"ok\",\n  \"\\u200B \"]\n".into(), 7, "empty after normalisation"),
        ("[[domain]]\nname = \"a\"\npatterns = ['(unclosed']\n".into(), 6, "invalid pattern"),
        ("[[domain]]\nname = \"a\"\npatterns = ['x*']\n".into(), 6, "matches the empty text"),
        ("[[domain]]\nname = \"a\"\nexamples = [\"?!\"]\n".into(), 6, "no letters or digits"),
        ("[[domain]]\nname = \"a\"\nkeyword = [\"typo\"]\n".into(), 6, "unknown field `keyword`"),
        ("[safety.Violence]\nkeywords = [\"x\"]\n".into(), 4, "unknown safety category"),
        ("[[domain]]\nname = 3\n".into(), 5, "invalid type"),
    ];
    for (body, line, words) in cases {
        let text = format!("{HEAD}{body}");
        let found = problems(&text);
        assert!(
            found.iter().any(|(l, r)| *l == line && r.contains(words)),
            "expected line {line} {words:?}, got {found:?} for\n{text}"
        );
    }
}

#[test]
fn router_header_is_checked() {
    for (text, line, words) in [
        (
            "[router]\nid = \"t\"\nversion = 0\n",
            3,
            "version must be an integer >= 1",
        ),
        (
            "[router]\nid = \"t\"\nversion = -4\n",
            3,
            "version must be an integer >= 1",
        ),
        ("[router]\nid = \"bad id!\"\nversion = 1\n", 2, "router id"),
        ("[router]\nversion = 1\n", 1, "router id missing"),
        (
            "[router]\nid = \"t\"\nversion = 1\nthreshold = 0.0\n",
            4,
            "threshold",
        ),
        (
            "[router]\nid = \"t\"\nversion = 1\ntoken_limit = 0\n",
            4,
            "token_limit",
        ),
        (
            "[router]\nid = \"t\"\nversion = 1\n\nmodel = \"GPT-9\"\n",
            5,
            "model not found",
        ),
    ] {
        let found = problems(text);
        assert!(
            found.iter().any(|(l, r)| *l == line && r.contains(words)),
            "{text}: {found:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_and_display_has_file_and_line() {
    let text =
        format!("{HEAD}[[domain]]\nname = \"\"\n[[domain]]\nname = \"b\"\nsafety = [\"Nope\"]\n");
    let err = Router::from_toml(&text, "routers/x/1.toml").unwrap_err();
    assert_eq!(err.problems().len(), 2);
    let msg = err.to_string();
    assert!(
        msg.starts_with("routers/x/1.toml:5: domain name must not be empty"),
        "{msg}"
    );
    assert!(msg.contains("(and 1 more problems)"), "{msg}");
}

#[test]
fn directory_layout_gives_id_and_version() {
    let dir = std::env::temp_dir().join(format!("sluice-router-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(
        dir.join("shop/1.toml"),
        "[[domain]]\nname = \"s\"\nkeywords = [\"price\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("shop/2.toml"),
        "[[domain]]\nname = \"s2\"\nkeywords = [\"price\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("shop/notes.txt"), "ignored").unwrap();
    let store = RouterStore::load_dir(&dir).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("shop", 2).unwrap().domains().next(), Some("s2"));
    assert_eq!(store.get("shop", 3).unwrap_err().code(), "40400");

    // A file whose [router] table disagrees with its path, and a badly named file.
    std::fs::write(
        dir.join("shop/3.toml"),
        "[router]\nid = \"other\"\nversion = 4\n",
    )
    .unwrap();
    std::fs::write(dir.join("shop/v4.toml"), "").unwrap();
    let err = RouterStore::load_dir(&dir).unwrap_err();
    let text = err.to_string();
    let all: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert!(
        all.iter()
            .any(|p| p
                .ends_with("3.toml:2: router id \"other\" does not match its directory \"shop\"")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|p| p.contains("3.toml:3: version 4 does not match its file name 3.toml")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|p| p.contains("v4.toml:0: a router file must be named <version>.toml")),
        "{all:?}"
    );
    assert_eq!(err.code(), "65001", "{text}");

    assert!(matches!(
        RouterStore::load_dir(dir.join("missing")),
        Err(BuildError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_version_in_one_store_is_rejected() {
    let mut store = RouterStore::embedded_sample();
    let again = Router::from_toml(sluice_router::SAMPLE_V1, "copy.toml").unwrap();
    let err = store.insert(again).unwrap_err();
    assert!(err.to_string().contains("versions are immutable"), "{err}");
}

/// `(a+)+$` takes exponential time in a backtracking engine on "aaaa…ab". The
/// regex crate is a finite-automaton engine, so the pattern is accepted and
/// runs in time linear in the input.
#[test]
fn catastrophic_backtracking_pattern_runs_in_linear_time() {
    let router = Router::from_toml(
        &format!("{HEAD}[[domain]]\nname = \"a\"\npatterns = ['(a+)+$', '^(\\w+\\s?)+$']\n"),
        "t.toml",
    )
    .unwrap();
    let time = |n: usize| {
        let text = format!("{}!", "a".repeat(n));
        let start = Instant::now();
        let result = router.route_explained(&RouteRequest::new(text)).unwrap();
        (start.elapsed(), result)
    };
    // 30 characters already take minutes for a backtracking engine.
    let (small, _) = time(30);
    let (large, routed) = time(20_000);
    assert!(small < Duration::from_millis(500), "{small:?}");
    assert!(large < Duration::from_secs(2), "{large:?}");
    // It still matches where it should.
    assert_eq!(routed.result.domain.result, "");
    let hit = router
        .route(&RouteRequest::new("a".repeat(20_000)))
        .unwrap();
    assert_eq!(hit.domain.result, "a");
}

#[test]
fn backtracking_only_features_and_huge_patterns_are_rejected() {
    for (pattern, words) in [
        (r"(a)\1", "backreferences are not supported"),
        (r"foo(?=bar)", "look-around"),
        (r"\w{1000}{1000}", "exceeds size limit"),
    ] {
        let text = format!("{HEAD}[[domain]]\nname = \"a\"\npatterns = ['{pattern}']\n");
        let found = problems(&text);
        assert!(
            found.iter().any(|(l, r)| *l == 6 && r.contains(words)),
            "{pattern}: {found:?}"
        );
    }
    let long = "a".repeat(sluice_router::MAX_PATTERN + 1);
    let found = problems(&format!(
        "{HEAD}[[domain]]\nname = \"a\"\npatterns = ['{long}']\n"
    ));
    assert!(found[0].1.contains("the limit is 1000"), "{found:?}");
}

#[test]
fn lints_find_duplicate_shadowed_and_unreachable_rules() {
    let router = Router::from_file(data("lint/1.toml")).unwrap();
    let lints: Vec<(LintKind, usize)> = router.lints().iter().map(|l| (l.kind, l.line)).collect();
    assert_eq!(
        lints,
        [
            (LintKind::Duplicate, 8),
            (LintKind::Duplicate, 9),
            (LintKind::Shadowed, 14),
            (LintKind::Unreachable, 17),
            (LintKind::Shadowed, 18),
            (LintKind::Unreachable, 21),
            (LintKind::Unreachable, 24),
            (LintKind::Unreachable, 28),
        ],
        "{:#?}",
        router.lints()
    );
}
