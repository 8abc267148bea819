//! Routing throughput with a large router: 50 domains, each with 20 keywords,
//! 20 patterns and 10 example queries, plus the built-in safety sets.
//!
//! Run: `cargo bench -p sluice-router --bench route`. Criterion reports the time
//! per query and, through `Throughput::Elements(1)`, queries per second.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_router::{RouteRequest, Router};

const DOMAINS: usize = 50;
const SYLLABLES: &[&str] = &[
    "가", "나", "다", "라", "마", "바", "사", "아", "자", "차", "카", "타", "파", "하", "서", "울",
    "부", "산", "날", "씨", "먼", "지", "쇼", "핑", "뉴", "스", "교", "통", "계", "정",
];

/// A deterministic pseudo-random word of `n` syllables.
fn word(seed: &mut u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            SYLLABLES[(*seed >> 33) as usize % SYLLABLES.len()]
        })
        .collect()
}

fn big_router() -> (Router, Vec<RouteRequest>) {
    let mut seed = 42u64;
    let mut toml = String::from("[router]\nid = \"bench\"\nversion = 1\n");
    let mut queries = Vec::new();
    for d in 0..DOMAINS {
        let keywords: Vec<String> = (0..20)
            .map(|k| {
                if k % 4 == 0 {
                    format!("topic{d}x{k}")
                } else {
                    format!("{}{d}", word(&mut seed, 3))
                }
            })
            .collect();
        let patterns: Vec<String> = (0..20)
            .map(|p| format!(r"주제{d}번?\s*{p}\d*(을|를|은|는)?"))
            .collect();
        let examples: Vec<String> = (0..10)
            .map(|_| {
                format!(
                    "{} {} 알려줘 {}",
                    word(&mut seed, 2),
                    word(&mut seed, 3),
                    word(&mut seed, 2)
                )
            })
            .collect();
        let quote = |v: &[String]| {
            v.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(toml, "[[domain]]\nname = \"domain{d}\"").unwrap();
        writeln!(toml, "keywords = [{}]", quote(&keywords)).unwrap();
        writeln!(toml, "patterns = [{}]", quote(&patterns)).unwrap();
        writeln!(toml, "examples = [{}]", quote(&examples)).unwrap();
        writeln!(toml, "safety = [\"Unethical\", \"Contentious\"]").unwrap();
        writeln!(
            toml,
            "[[domain.filter]]\nname = \"Filter{d}\"\nkeywords = ['{}']",
            word(&mut seed, 4)
        )
        .unwrap();
        // Queries: a keyword with a particle, a pattern, an example-like text.
        queries.push(RouteRequest::new(format!(
            "오늘 {}은 어때? 자세히 알려줘",
            keywords[5]
        )));
        queries.push(RouteRequest::new(format!(
            "주제{d}번 7을 찾아서 정리해 주세요 please"
        )));
        queries.push(RouteRequest::new(format!("{} 좀 알려줘", examples[3])));
    }
    queries.push(RouteRequest::new(
        "nothing here matches at all, just small talk 안녕하세요",
    ));
    queries.push(RouteRequest::new("그럼 그건?").with_user_turn("topic7x4 is what I asked about"));
    (
        Router::from_toml(&toml, "bench.toml").expect("bench router"),
        queries,
    )
}

fn bench(c: &mut Criterion) {
    let (router, queries) = big_router();
    // Assert the results once, so a broken fast path cannot look fast.
    assert_eq!(router.route(&queries[0]).unwrap().domain.result, "domain0");
    assert_eq!(router.route(&queries[4]).unwrap().domain.result, "domain1");
    assert_eq!(
        router
            .route(&queries[queries.len() - 2])
            .unwrap()
            .domain
            .result,
        ""
    );
    assert_eq!(
        router
            .route(&queries[queries.len() - 1])
            .unwrap()
            .domain
            .result,
        "domain7"
    );

    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("query", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(router.route(black_box(&queries[i])).unwrap())
        })
    });
    group.bench_function("query_explained", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(router.route_explained(black_box(&queries[i])).unwrap())
        })
    });
    group.finish();

    // Loading is rare (once per version); ten samples are enough.
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("50x(20+20+10)", |b| b.iter(|| black_box(big_router())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
