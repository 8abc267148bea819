//! Blind runs, votes, ratings, the leaderboard and the export over a real
//! socket, against the scripted fake upstream.

use reqwest::Method;
use serde_json::{Value, json};
use sluice_practice::provider::ProviderKind;

use crate::fake::{Behavior, Script};
use crate::harness::PracticeServer;

const MODELS: [&str; 3] = ["alpha", "beta", "gamma"];

/// The one test server (`crate::harness`) with the sample router, three
/// OpenAI-compatible models and, besides the class's student and teacher, an
/// outsider in no class.
struct Env {
    server: PracticeServer,
    student: String,
    other: String,
    teacher: String,
    class_id: i64,
}

impl Env {
    async fn start(script: Script) -> Env {
        let server = PracticeServer::builder()
            .script(script)
            .models(&MODELS.map(|m| (m, ProviderKind::Openai)))
            .sample_router()
            .class("class")
            .start()
            .await;
        let (_, other) = server.store.create_user("outsider").await.unwrap();
        Env {
            student: server.key.clone(),
            other: other.key,
            teacher: server.teacher_key.clone(),
            class_id: server.class_id,
            server,
        }
    }

    async fn send(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self
            .server
            .http
            .request(method, self.server.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.server
            .send_json(Some(key), method, path, body.as_ref())
            .await
    }
}

/// Each model answers with a word that is not its name, so that the answer
/// does not give the model away.
fn script() -> Script {
    let mut script = Script::new();
    for _ in 0..4 {
        script = script
            .on("alpha", Behavior::reply("one"))
            .on("beta", Behavior::reply("two"))
            .on("gamma", Behavior::reply("three"));
    }
    script
}

fn text_of(model: &str) -> &'static str {
    match model {
        "alpha" => "one",
        "beta" => "two",
        _ => "three",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_run_hides_the_models_until_the_vote() {
    let env = Env::start(script()).await;
    let run = format!("/user/practice/sessions/run?class_id={}", env.class_id);
    let (status, body) = env
        .json(
            &env.student,
            Method::POST,
            &run,
            Some(json!({"prompt_text": "Say a number", "model_names": MODELS, "blind": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["blind"], true);
    let text = body.to_string();
    for model in MODELS {
        assert!(
            !text.contains(model),
            "{model} shows before the vote: {text}"
        );
    }
    let labels: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["A", "B", "C"]);
    let answers: Vec<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["response_text"].as_str().unwrap().to_string())
        .collect();
    let session_id = body["session_id"].as_i64().unwrap();
    let turn_id = body["turn_id"].as_i64().unwrap();

    // The server's own metrics count the models, not the labels.
    let metrics = env
        .server
        .http
        .get(format!("http://{}/metrics", env.server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("model=\"alpha\"") && !metrics.contains("model=\"A\""),
        "{metrics}"
    );

    // Reading the session shows no names either.
    let (status, session) = env
        .json(
            &env.student,
            Method::GET,
            &format!("/user/practice/sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let history = session["history"].to_string();
    for model in MODELS {
        assert!(!history.contains(&format!("\"{model}\"")), "{history}");
    }
    assert_eq!(session["history"][0]["revealed"], false);

    // Bad votes.
    let vote = format!("/user/practice/sessions/{session_id}/turns/{turn_id}/vote");
    let (student, other) = (env.student.as_str(), env.other.as_str());
    env.server
        .expect_statuses(vec![
            (
                "a label with a tie",
                student,
                Method::POST,
                vote.clone(),
                Some(json!({"verdict": "tie", "label": "A"})),
                422,
            ),
            (
                "no label with best",
                student,
                Method::POST,
                vote.clone(),
                Some(json!({"verdict": "best"})),
                422,
            ),
            (
                "another student's",
                other,
                Method::POST,
                vote.clone(),
                Some(json!({"verdict": "tie"})),
                404,
            ),
        ])
        .await;

    let (status, reveal) = env
        .json(
            &env.student,
            Method::POST,
            &vote,
            Some(json!({"verdict": "best", "label": "B"})),
        )
        .await;
    assert_eq!(status, 201, "{reveal}");
    // The reveal agrees with what each label answered.
    for (i, entry) in reveal["labels"].as_array().unwrap().iter().enumerate() {
        assert_eq!(entry["label"], labels[i]);
        assert_eq!(answers[i], text_of(entry["model_name"].as_str().unwrap()));
    }
    assert_eq!(reveal["best_model"], reveal["labels"][1]["model_name"]);
    env.server
        .expect_statuses(vec![(
            "a second vote",
            student,
            Method::POST,
            vote.clone(),
            Some(json!({"verdict": "skip"})),
            409,
        )])
        .await;
    let (_, session) = env
        .json(
            &env.student,
            Method::GET,
            &format!("/user/practice/sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(session["history"][0]["revealed"], true);
    assert_eq!(
        session["history"][0]["results"][1]["model_name"],
        reveal["labels"][1]["model_name"]
    );

    // Rating an answer; a stranger cannot; a bad body is 422.
    let response_id = session["history"][0]["results"][0]["response_id"]
        .as_i64()
        .unwrap();
    let rating = format!("/user/practice/results/{response_id}/rating");
    let rated = env
        .server
        .expect_statuses(vec![
            (
                "a rating",
                student,
                Method::POST,
                rating.clone(),
                Some(json!({"value": "up", "comment": "  clear  "})),
                200,
            ),
            (
                "a stranger's rating",
                other,
                Method::POST,
                rating.clone(),
                Some(json!({"value": "up"})),
                404,
            ),
            (
                "a bad rating",
                student,
                Method::POST,
                rating.clone(),
                Some(json!({"value": "sideways"})),
                422,
            ),
        ])
        .await;
    assert_eq!(rated[0]["comment"], "clear");

    // A blind run needs two models; an ordinary turn takes no vote.
    let turns = env
        .server
        .expect_statuses(vec![
            (
                "a blind run of one model",
                student,
                Method::POST,
                run.clone(),
                Some(json!({"prompt_text": "x", "blind": true})),
                400,
            ),
            (
                "an ordinary turn",
                student,
                Method::POST,
                format!("/user/practice/sessions/{session_id}/chat"),
                Some(json!({"prompt_text": "and again", "model_names": ["alpha", "beta"]})),
                201,
            ),
        ])
        .await;
    let plain = &turns[1];
    assert_eq!(plain["blind"], false);
    assert_eq!(plain["results"][0]["model_name"], "alpha");
    let plain_vote = format!(
        "/user/practice/sessions/{session_id}/turns/{}/vote",
        plain["turn_id"]
    );
    env.server
        .expect_statuses(vec![(
            "a vote on an ordinary turn",
            student,
            Method::POST,
            plain_vote,
            Some(json!({"verdict": "tie"})),
            400,
        )])
        .await;

    // The leaderboard: members only; the best model leads.
    let board = format!(
        "/user/practice/classes/{}/leaderboard?resamples=100",
        env.class_id
    );
    let boards = env
        .server
        .expect_statuses(vec![
            ("a member", student, Method::GET, board.clone(), None, 200),
            ("no member", other, Method::GET, board.clone(), None, 403),
            (
                "an unknown preset",
                student,
                Method::GET,
                format!("{board}&style_preset=loud"),
                None,
                422,
            ),
            (
                "a preset with no votes",
                student,
                Method::GET,
                format!("{board}&style_preset=creative"),
                None,
                200,
            ),
        ])
        .await;
    assert_eq!(boards[0]["rows"][0]["model_name"], reveal["best_model"]);
    assert_eq!(boards[0]["total_votes"], 1);
    assert_eq!(boards[3]["total_votes"], 0);

    // Streamed, a blind run names labels only: started in label order, tokens
    // and model_done by label, the result concealed.
    let response = env
        .server
        .http
        .post(format!("http://{}{run}", env.server.addr))
        .bearer_auth(&env.student)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"prompt_text": "Say it again", "model_names": ["gamma", "alpha", "beta"], "blind": true}).to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let events = response.text().await.unwrap();
    for model in MODELS {
        assert!(!events.contains(model), "{model} in the stream: {events}");
    }
    let data: Vec<Value> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let started = data
        .iter()
        .find(|d| d.get("run_id").is_some())
        .expect("a started event");
    assert_eq!(started["model_names"], json!(["A", "B", "C"]));
    let tokens: Vec<&str> = data
        .iter()
        .filter_map(|d| d.get("text").and(d["model_name"].as_str()))
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|l| ["A", "B", "C"].contains(l)),
        "{events}"
    );

    // The export: instructors only, streamed JSONL.
    let export = format!("/user/practice/classes/{}/export", env.class_id);
    let (status, _) = env.send(&env.student, Method::GET, &export, None).await;
    assert_eq!(status, 403);
    let (status, jsonl) = env.send(&env.teacher, Method::GET, &export, None).await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "result", "result", "result", "result", "result", "result", "result", "result", "vote",
            "rating"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["messages"].is_array() && l["id"].is_string())
    );
    let (status, csv) = env
        .send(
            &env.teacher,
            Method::GET,
            &format!("{export}?format=csv&kind=votes"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 2, "{csv}");
}
