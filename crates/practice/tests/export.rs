//! A class's export read back equals what the database holds, on every backend.

use serde_json::{Value, json};
use sluice_practice::{
    CSV_COLUMNS, ClassRole, ExportFormat, ExportKind, ModelError, ModelErrorKind, NewResult,
    NewSession, NewTurn, ResultUsage, Store, TurnSettings, Verdict,
};

use crate::backends::stores;

fn result(model: &str, primary: bool, text: Option<&str>) -> NewResult {
    NewResult {
        model_name: model.into(),
        is_primary: primary,
        response_text: text.map(str::to_string),
        error: text.is_none().then(|| ModelError {
            kind: ModelErrorKind::Timeout,
            message: "late".into(),
            status: None,
        }),
        token_usage: ResultUsage {
            prompt_tokens: Some(11),
            completion_tokens: Some(5),
            total_tokens: Some(16),
            ..ResultUsage::default()
        },
        latency_ms: 40,
        generation_params: serde_json::from_value(json!({"temperature": 0.2, "top_p": 0.8,
            "max_tokens": 256, "max_completion_tokens": 256, "style_preset": "balanced"}))
        .unwrap(),
        request: Some(
            serde_json::from_value(json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "=1+1, \"quoted\"\nnext line"}
                ],
                "max_tokens": 256,
                "seed": null,
                "temperature": 0.2,
                "top_p": 0.8,
                "window": {"limit": 4096, "max_tokens": 256, "messages_before": 2,
                    "messages_dropped": 0, "tokens_after": 20, "turns_dropped": 0}
            }))
            .unwrap(),
        ),
        finish_reason: text.map(|_| "stop".to_string()),
        upstream_id: None,
    }
}

/// Everything `export_class` writes, as text.
async fn export(store: &Store, class_id: i64, format: ExportFormat, kind: ExportKind) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let collect = async {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        all
    };
    let (stats, bytes) = tokio::join!(store.export_class(class_id, format, kind, tx), collect);
    let stats = stats.unwrap();
    assert_eq!(stats.bytes, bytes.len() as u64);
    assert!(!stats.cancelled);
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn exported_jsonl_reads_back_as_the_database_content() {
    for store in stores().await {
        let (teacher, _) = store.create_user("teacher").await.unwrap();
        let (student, _) = store.create_user("student, \"one\"").await.unwrap();
        let class = store
            .create_class("c", teacher.id, &["a".into(), "b".into()], "a")
            .await
            .unwrap();
        let other_class = store
            .create_class("other", teacher.id, &["a".into()], "a")
            .await
            .unwrap();
        for c in [class.id, other_class.id] {
            store
                .add_member(c, student.id, ClassRole::Student)
                .await
                .unwrap();
        }
        let new = |class_id| NewSession {
            user_id: student.id,
            class_id,
            project_id: None,
            agent_id: None,
            title: Some("t".into()),
            knowledge_ids: vec![],
        };
        let blind = NewTurn {
            prompt_text: "=1+1, \"quoted\"\nnext line".into(),
            settings: TurnSettings {
                style_preset: "accurate",
                domain: Some(Some("math".into())),
                blind: true,
                blind_order: Some(vec!["b".into(), "a".into()]),
                ..TurnSettings::default()
            },
            results: vec![result("a", true, Some("two")), result("b", false, None)],
        };
        let (s1, t1) = store.create_session(&new(class.id), &blind).await.unwrap();
        let plain = NewTurn {
            prompt_text: "안녕하세요".into(),
            settings: TurnSettings::default(),
            results: vec![result("a", true, Some("반갑습니다"))],
        };
        store.append_turn(student.id, s1, &plain).await.unwrap();
        let vote = store
            .vote(student.id, s1, t1.turn_id, &Verdict::Best("B".into()))
            .await
            .unwrap();
        let rating = store
            .rate(
                student.id,
                t1.results[0].response_id,
                false,
                Some("too short"),
            )
            .await
            .unwrap();
        // Another class's work stays out.
        store
            .create_session(&new(other_class.id), &plain)
            .await
            .unwrap();

        let text = export(&store, class.id, ExportFormat::Jsonl, ExportKind::All).await;
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3 + 1 + 1, "{text}");

        // Results: every field equals the stored session's.
        let detail = store.session(student.id, s1).await.unwrap();
        let stored: Vec<_> = detail
            .history
            .iter()
            .flat_map(|turn| turn.results.iter().map(move |r| (turn, r)))
            .collect();
        let results: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "result").collect();
        assert_eq!(results.len(), stored.len());
        for (line, (turn, r)) in results.iter().zip(&stored) {
            assert_eq!(line["id"], format!("result-{}", r.response_id));
            assert_eq!(line["response_id"], r.response_id);
            assert_eq!(line["turn_id"], turn.turn_id);
            assert_eq!(line["position"], turn.position);
            assert_eq!(line["session_id"], s1);
            assert_eq!(line["class_id"], class.id);
            assert_eq!(line["user_id"], student.id);
            assert_eq!(line["user_name"], student.name);
            assert_eq!(line["session_title"], json!(detail.summary.session_title));
            assert_eq!(line["prompt_text"], turn.prompt_text);
            assert_eq!(line["settings"], json!(turn.settings));
            assert_eq!(line["model_name"], r.model_name);
            assert_eq!(line["is_primary"], r.is_primary);
            assert_eq!(line["response_text"], json!(r.response_text));
            assert_eq!(line["error"], json!(r.error));
            assert_eq!(line["token_usage"], json!(r.token_usage));
            assert_eq!(line["latency_ms"], r.latency_ms);
            assert_eq!(line["generation_params"], json!(r.generation_params));
            assert_eq!(line["request"], json!(r.request));
            let sent = r.request.as_ref().unwrap();
            assert_eq!(line["messages"], json!(sent.messages));
            assert_eq!(line["finish_reason"], json!(r.finish_reason));
            assert_eq!(line["created_at"], r.created_at);
            assert!(line.get("model").is_none(), "model would pick a profile");
        }
        // The vote and the rating, as stored.
        let v = lines.iter().find(|l| l["kind"] == "vote").unwrap();
        assert_eq!(v["vote_id"], vote.vote_id);
        assert_eq!(v["verdict"], "best");
        assert_eq!(v["best_label"], "B");
        assert_eq!(v["best_model"], "a");
        assert_eq!(v["models"], json!(["b", "a"]));
        assert_eq!(v["domain"], "math");
        assert_eq!(v["style_preset"], "accurate");
        assert_eq!(v["prompt_text"], blind.prompt_text);
        assert_eq!(
            v["messages"],
            json!([{"role": "user", "content": blind.prompt_text}])
        );
        assert_eq!(v["created_at"], vote.created_at);
        let g = lines.iter().find(|l| l["kind"] == "rating").unwrap();
        assert_eq!(g["rating_id"], rating.rating_id);
        assert_eq!(g["response_id"], t1.results[0].response_id);
        assert_eq!(g["model_name"], "a");
        assert_eq!(g["value"], "down");
        assert_eq!(g["comment"], "too short");

        // One kind alone.
        let votes = export(&store, class.id, ExportFormat::Jsonl, ExportKind::Votes).await;
        assert_eq!(votes.lines().count(), 1);

        // CSV: a header and one row per record, quoted where needed, formulas
        // defused.
        let csv = export(&store, class.id, ExportFormat::Csv, ExportKind::All).await;
        assert!(csv.starts_with(&format!("{}\r\n", CSV_COLUMNS.join(","))));
        let rows = csv_rows(&csv);
        assert_eq!(rows.len(), 1 + 5);
        assert!(
            rows.iter().all(|r| r.len() == CSV_COLUMNS.len()),
            "{rows:?}"
        );
        let prompt = CSV_COLUMNS
            .iter()
            .position(|c| *c == "prompt_text")
            .unwrap();
        assert_eq!(rows[1][prompt], "'=1+1, \"quoted\"\nnext line");
        let name = CSV_COLUMNS.iter().position(|c| *c == "user_name").unwrap();
        assert_eq!(rows[1][name], "student, \"one\"");
        let domain = CSV_COLUMNS.iter().position(|c| *c == "domain").unwrap();
        assert_eq!(rows[1][domain], "math");
    }
}

/// A small RFC 4180 reader, for the test.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
