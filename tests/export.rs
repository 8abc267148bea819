//! `sluice admin export` feeds offline evaluation: its JSONL goes straight into
//! `sluice trim --jsonl`, every line a request.

use std::process::Command;

use serde_json::{Value, json};
use sluice_practice::prompt::effective_params;
use sluice_practice::{
    ClassRole, NewResult, NewSession, NewTurn, ResultUsage, Store, TurnSettings, Verdict,
};

use crate::cli::sluice;

fn result(model: &str, primary: bool, messages: Value) -> NewResult {
    NewResult {
        model_name: model.into(),
        is_primary: primary,
        response_text: Some(format!("{model} says hi")),
        error: None,
        token_usage: ResultUsage {
            prompt_tokens: Some(9),
            completion_tokens: Some(3),
            total_tokens: Some(12),
            ..ResultUsage::default()
        },
        latency_ms: 5,
        generation_params: effective_params(&Default::default(), None, &Default::default(), 4096),
        request: Some(
            serde_json::from_value(json!({"messages": messages, "max_tokens": 256,
                "seed": null, "temperature": 0.7, "top_p": 1.0}))
            .unwrap(),
        ),
        finish_reason: Some("stop".into()),
        upstream_id: None,
    }
}

#[test]
fn an_export_pipes_into_sluice_trim() {
    let dir = std::env::temp_dir().join(format!("sluice-class-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("sluice.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let class_id = runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        let (teacher, _) = store.create_user("teacher").await.unwrap();
        let (student, _) = store.create_user("student").await.unwrap();
        let class = store
            .create_class("c", teacher.id, &["alpha".into(), "beta".into()], "alpha")
            .await
            .unwrap();
        store
            .add_member(class.id, student.id, ClassRole::Student)
            .await
            .unwrap();
        let sent = json!([
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "미세먼지 정보 알려줘"}
        ]);
        let turn = NewTurn {
            prompt_text: "미세먼지 정보 알려줘".into(),
            settings: TurnSettings {
                blind: true,
                blind_order: Some(vec!["beta".into(), "alpha".into()]),
                domain: Some(Some(String::new())),
                ..TurnSettings::default()
            },
            results: vec![
                result("alpha", true, sent.clone()),
                result("beta", false, sent),
            ],
        };
        let session = NewSession {
            user_id: student.id,
            class_id: class.id,
            project_id: None,
            agent_id: None,
            title: None,
            knowledge_ids: vec![],
        };
        let (session_id, stored) = store.create_session(&session, &turn).await.unwrap();
        store
            .vote(student.id, session_id, stored.turn_id, &Verdict::Tie)
            .await
            .unwrap();
        store
            .rate(
                student.id,
                stored.results[0].response_id,
                true,
                Some("good"),
            )
            .await
            .unwrap();
        class.id
    });
    let export = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["admin", "--database", &url, "export", &class_id.to_string()])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported = String::from_utf8(export.stdout).unwrap();
    let ids: Vec<String> = exported
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 4, "two results, a vote, a rating: {exported}");
    let trimmed = sluice(&["trim", "--jsonl", "--no-progress"], &exported);
    assert!(
        trimmed.status.success(),
        "{}",
        String::from_utf8_lossy(&trimmed.stderr)
    );
    let out: Vec<Value> = String::from_utf8(trimmed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), ids.len());
    for (line, id) in out.iter().zip(&ids) {
        assert_eq!(line["id"], json!(id));
        assert!(line.get("error").is_none(), "{line}");
        assert!(
            line["report"]["tokensAfter"].as_u64().unwrap() > 0,
            "{line}"
        );
    }
    // The results' messages are what the models were sent.
    assert_eq!(out[0]["messages"][1]["content"], "미세먼지 정보 알려줘");
    // CSV and a file as output.
    let csv = dir.join("class.csv");
    let status = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["admin", "--database", &url, "export", &class_id.to_string()])
        .args(["--format", "csv", "--output", csv.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("kind,id,class_id,"));
    assert_eq!(text.lines().count(), 5);
    // An unknown class is an error, not an empty file.
    let missing = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["admin", "--database", &url, "export", "999"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
