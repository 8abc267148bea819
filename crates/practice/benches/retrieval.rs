//! Retrieval latency over a 10,000-passage knowledge base in a SQLite file
//! (issue target: ≤ 5 ms per query). The corpus is generated: Korean words
//! built from common syllables with particles, plus a few Latin terms, so both
//! term kinds and common and rare bigrams are exercised.
//!
//! `cargo bench -p sluice-practice --bench retrieval`

#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_practice::{KnowledgeInput, Store};

const PASSAGES: usize = 10_000;

fn corpus() -> String {
    // About 400 distinct syllables: real Korean prose uses a few thousand, so
    // this corpus's bigrams are more common (and postings longer) than real ones.
    let mut syllables: Vec<char> =
        "서울부산날씨미세먼지모델여행음식역사바다학교공부시험수학과학문제풀이"
            .chars()
            .collect();
    syllables.extend((0..400u32).filter_map(|i| char::from_u32(0xAC00 + i * 28)));
    const PARTICLES: [&str; 6] = ["", "에서", "은", "의", "를", "와"];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = String::new();
    for i in 0..PASSAGES {
        let mut text = String::new();
        for _ in 0..(20 + next() % 30) {
            let len = 2 + next() % 2;
            for _ in 0..len {
                text.push(syllables[(next() % syllables.len() as u64) as usize]);
            }
            text.push_str(PARTICLES[(next() % PARTICLES.len() as u64) as usize]);
            text.push(' ');
        }
        if i % 7 == 0 {
            text.push_str("HCX-005 model rain ");
        }
        out.push_str(&serde_json::json!({ "text": text.trim_end() }).to_string());
        out.push('\n');
    }
    out
}

fn retrieval(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let (store, user, kb) = runtime.block_on(async {
        let store = Store::open_file(&path).await.unwrap();
        let (user, _) = store.create_user("bench").await.unwrap();
        let input = KnowledgeInput {
            name: "bench".into(),
            ..KnowledgeInput::default()
        };
        let kb = store.create_knowledge(user.id, &input).await.unwrap();
        let docs = store
            .add_document(user.id, kb.id, "corpus.jsonl", None, corpus().as_bytes())
            .await
            .unwrap();
        assert_eq!(docs.len(), PASSAGES);
        // The store that took the upload indexed it as it wrote it; another
        // replica (a second store on the file) rebuilds the index from the
        // passages' text on its first search.
        let first = std::time::Instant::now();
        let hits = store.search(user.id, &[kb.id], "날씨", 8).await.unwrap();
        let first = first.elapsed();
        let replica = Store::open_file(&path).await.unwrap();
        let rebuilt = std::time::Instant::now();
        let again = replica.search(user.id, &[kb.id], "날씨", 8).await.unwrap();
        let rebuilt = rebuilt.elapsed();
        assert!(!hits.is_empty() && again == hits, "the same hits everywhere");
        eprintln!(
            "first search after the upload: {first:?} on the same store, {rebuilt:?} on another (index rebuilt)"
        );
        (store, user.id, kb.id)
    });
    let mut group = c.benchmark_group("retrieval_10k_passages_sqlite");
    for (name, query) in [
        ("two_syllables", "날씨"),
        ("sentence", "서울에서 부산까지 여행 음식 알려줘"),
        ("mixed", "HCX-005 모델 성능"),
        ("rare", "풀이문제"),
    ] {
        // Assert once, so a broken search cannot look fast.
        let hits = runtime
            .block_on(store.search(user, &[kb], query, 8))
            .unwrap();
        assert!(!hits.is_empty(), "{query}");
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(store.search(user, &[kb], query, 8))
                    .unwrap()
            })
        });
    }
    group.finish();
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, retrieval);
criterion_main!(benches);
