//! Peak memory of a class export: 10,000 and 100,000 results.
//!
//! ```text
//! cargo bench -p sluice-practice --bench export_memory
//! ```
//!
//! Each size runs in its own child process (this binary with `--child N`), so
//! neither sees the other's allocations. The child fills an SQLite file (WAL)
//! with one class whose results carry a realistic `request` (a system message,
//! two earlier turns and the prompt) and answer, then resets its peak RSS
//! (`/proc/self/clear_refs`), streams `Store::export_class` (JSONL, every kind)
//! into a reader that counts lines and bytes, and reports `VmHWM` above the RSS
//! it started from. The parent prints both and exits non-zero when a line is
//! missing or the 100,000-result peak is more than 16 MiB above the
//! 10,000-result one (constant memory: the peak must not grow with the class).

use std::process::Command;
use std::time::Instant;

use serde_json::json;
use sluice_practice::{
    ClassRole, ExportFormat, ExportKind, NewResult, NewSession, NewTurn, ResultUsage, Store,
    TurnSettings,
};

const SIZES: [u64; 2] = [10_000, 100_000];
const RESULTS_PER_TURN: u64 = 4;
/// How far the larger export's peak may sit above the smaller one's.
const SLACK_KIB: u64 = 16 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: u64 = args[i + 1].parse().expect("a size");
        child(n);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut peaks = Vec::new();
    println!(
        "results   lines     bytes        fill_s  export_s  rss_start_kib  peak_above_start_kib"
    );
    for n in SIZES {
        let out = Command::new(&exe)
            .args(["--child", &n.to_string()])
            .output()
            .expect("the child runs");
        assert!(
            out.status.success(),
            "child {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        println!("{}", fields.join("  "));
        let lines: u64 = fields[1].parse().unwrap();
        assert_eq!(lines, n + 1, "every result and the one vote");
        peaks.push(fields[6].parse::<u64>().unwrap());
    }
    assert!(
        peaks[1] <= peaks[0] + SLACK_KIB,
        "the export's peak grew with the class: {} KiB for {} results vs {} KiB for {}",
        peaks[1],
        SIZES[1],
        peaks[0],
        SIZES[0]
    );
}

fn child(n: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("sluice-export-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("class.db").display());
        let started = Instant::now();
        let class_id = fill(&url, n).await;
        let fill_s = started.elapsed().as_secs_f64();
        let store = Store::connect(&url).await.unwrap();
        // Measure from here: the peak is reset, the start is what the process
        // already holds (runtime, pool, the fill's leftovers).
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
        let start = status_kib("VmRSS:");
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let read = async {
            let (mut lines, mut bytes) = (0u64, 0u64);
            while let Some(chunk) = rx.recv().await {
                lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                bytes += chunk.len() as u64;
            }
            (lines, bytes)
        };
        let (stats, (lines, bytes)) = tokio::join!(
            store.export_class(class_id, ExportFormat::Jsonl, ExportKind::All, tx),
            read
        );
        let stats = stats.unwrap();
        assert_eq!(stats.bytes, bytes);
        let export_s = started.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:");
        println!(
            "{n} {lines} {bytes} {fill_s:.1} {export_s:.2} {start} {}",
            peak.saturating_sub(start)
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// One class, one student, `n` results in turns of four, and one vote; made
/// with one store call for the first turn and plain SQL in one transaction for
/// the rest (the store's per-turn transactions would take minutes).
async fn fill(url: &str, n: u64) -> i64 {
    let store = Store::connect(url).await.unwrap();
    let (teacher, _) = store.create_user("teacher").await.unwrap();
    let (student, _) = store.create_user("student").await.unwrap();
    let models: Vec<String> = (0..RESULTS_PER_TURN)
        .map(|i| format!("model-{i}"))
        .collect();
    let class = store
        .create_class("bench", teacher.id, &models, &models[0])
        .await
        .unwrap();
    store
        .add_member(class.id, student.id, ClassRole::Student)
        .await
        .unwrap();
    let prompt = "서울의 미세먼지 농도가 높을 때 야외 활동을 어떻게 조절해야 하는지 알려주세요.";
    let request = json!({
        "messages": [
            {"role": "system", "content": "Answer precisely, rely on the given context, say so when unsure."},
            {"role": "user", "content": "오늘 날씨 어때?"},
            {"role": "assistant", "content": "오늘 서울은 맑고 기온은 12도 안팎입니다. 오후에는 바람이 조금 붑니다."},
            {"role": "user", "content": prompt}
        ],
        "temperature": 0.2, "top_p": 0.8, "max_tokens": 512, "seed": null,
        "window": {"messages_before": 4, "messages_dropped": 0, "turns_dropped": 0, "tokens_after": 120, "max_tokens": 512, "limit": 4096}
    });
    let answer = "미세먼지 농도가 '나쁨' 이상이면 장시간 야외 활동을 줄이고, 외출할 때는 KF94 마스크를 쓰세요. \
                  민감군은 실내 활동으로 바꾸는 것이 좋습니다.";
    let result = |i: u64| NewResult {
        model_name: models[i as usize].clone(),
        is_primary: i == 0,
        response_text: Some(answer.to_string()),
        error: None,
        token_usage: ResultUsage {
            prompt_tokens: Some(120),
            completion_tokens: Some(64),
            total_tokens: Some(184),
            ..ResultUsage::default()
        },
        latency_ms: 850,
        generation_params: serde_json::from_value(json!({"temperature": 0.2, "top_p": 0.8,
            "max_tokens": 512, "max_completion_tokens": 512, "style_preset": "accurate"}))
        .unwrap(),
        request: Some(serde_json::from_value(request.clone()).unwrap()),
        finish_reason: Some("stop".into()),
        upstream_id: None,
    };
    let turn = NewTurn {
        prompt_text: prompt.into(),
        settings: TurnSettings {
            style_preset: "accurate",
            domain: Some(Some("weather".into())),
            blind: true,
            blind_order: Some(models.clone()),
            ..TurnSettings::default()
        },
        results: (0..RESULTS_PER_TURN).map(result).collect(),
    };
    let session = NewSession {
        user_id: student.id,
        class_id: class.id,
        project_id: None,
        agent_id: None,
        title: Some("bench".into()),
        knowledge_ids: vec![],
    };
    let (session_id, first) = store.create_session(&session, &turn).await.unwrap();
    store
        .vote(
            student.id,
            session_id,
            first.turn_id,
            &sluice_practice::Verdict::Best("A".into()),
        )
        .await
        .unwrap();
    drop(store);
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let models_of: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, model_name FROM session_models WHERE session_id = $1 ORDER BY position",
    )
    .bind(session_id)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let settings = serde_json::to_string(&turn.settings).unwrap();
    let request = request.to_string();
    for position in 1..n / RESULTS_PER_TURN {
        let turn_id: i64 = sqlx::query_scalar(
            "INSERT INTO turns (session_id, position, prompt_text, settings, created_at) \
             VALUES ($1, $2, $3, $4, '2026-01-01T00:00:00Z') RETURNING id",
        )
        .bind(session_id)
        .bind(position as i64)
        .bind(prompt)
        .bind(&settings)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        for (i, (model_id, model)) in models_of.iter().enumerate() {
            sqlx::query(
                "INSERT INTO results (turn_id, session_model_id, model_name, is_primary, response_text, \
                 error, token_usage, latency_ms, generation_params, request, finish_reason, upstream_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, 850, $7, $8, 'stop', NULL, '2026-01-01T00:00:00Z')",
            )
            .bind(turn_id)
            .bind(model_id)
            .bind(model)
            .bind(i == 0)
            .bind(answer)
            .bind(r#"{"prompt_tokens":120,"completion_tokens":64,"total_tokens":184}"#)
            .bind(r#"{"temperature":0.2,"top_p":0.8,"max_tokens":512}"#)
            .bind(&request)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    pool.close().await;
    class.id
}
