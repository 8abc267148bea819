//! The instructor routes (issue 25) in-process: review with the access
//! record, usage, budgets (429 with the numbers, a reset at the period
//! boundary with an injected clock), and the per-class metrics. The models
//! are the scripted fake upstream, whose requests are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use sluice_practice::ClassRole;
use sluice_practice::budget::{Clock, parse_time};
use sluice_practice::provider::ProviderKind;

use crate::harness::PracticeServer;
use crate::support::{Reply, call};

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The one test server (`crate::harness`), called in-process: class A of
/// `teacher-a` with the student `kim`, class B of `teacher-b` with `lee`, both
/// allowing `m1` (priced) and `m2` (not), and a clock the test moves.
struct Env {
    server: PracticeServer,
    clock: Arc<TestClock>,
    class_a: i64,
    class_b: i64,
    teacher_a: String,
    teacher_b: String,
    kim: (i64, String),
    lee: (i64, String),
}

impl Env {
    async fn start() -> Env {
        let clock = Arc::new(TestClock(AtomicI64::new(
            parse_time("2026-12-09T10:59:59.500Z").unwrap(),
        )));
        let practice_clock = clock.clone();
        let server = PracticeServer::builder()
            .models(&[("m1", ProviderKind::Openai), ("m2", ProviderKind::Openai)])
            .configure(|name, config| {
                if name == "m1" {
                    config.input_price_per_million = Some(1.0);
                    config.output_price_per_million = Some(4.0);
                }
            })
            .practice(move |practice| practice.with_clock(practice_clock))
            .teacher("teacher-a")
            .students(["kim"])
            .class("A")
            .start()
            .await;
        let store = &server.store;
        let (tb, teacher_b) = store.create_user("teacher-b").await.unwrap();
        let (lee, lee_key) = store.create_user("lee").await.unwrap();
        let models = ["m1".to_string(), "m2".to_string()];
        let b = store.create_class("B", tb.id, &models, "m1").await.unwrap();
        store
            .add_member(b.id, lee.id, ClassRole::Student)
            .await
            .unwrap();
        Env {
            clock,
            class_a: server.class_id,
            class_b: b.id,
            teacher_a: server.teacher_key.clone(),
            teacher_b: teacher_b.key,
            kim: (server.user_id, server.key.clone()),
            lee: (lee.id, lee_key.key),
            server,
        }
    }

    async fn send(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        call(&self.server.app, method, path, &headers, body).await
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let reply = self.send(key, "GET", path, None).await;
        (reply.status.as_u16(), reply.json())
    }

    async fn run(&self, key: &str, class: i64, prompt: &str) -> Reply {
        let body = json!({"prompt_text": prompt, "model_names": ["m1", "m2"],
                          "generation_params": {"max_tokens": 16}});
        self.send(
            key,
            "POST",
            &format!("/user/practice/sessions/run?class_id={class}"),
            Some(body),
        )
        .await
    }
}

#[tokio::test]
async fn instructors_read_their_class_and_nothing_else() {
    let env = Env::start().await;
    let (a, b) = (env.class_a, env.class_b);
    let first = env.run(&env.kim.1, a, "Explain the moon").await;
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let kim_session = first.json()["session_id"].as_i64().unwrap();
    let lee_session = env.run(&env.lee.1, b, "Explain the sun").await.json()["session_id"]
        .as_i64()
        .unwrap();

    // The instructor of A sees A's students and their sessions.
    let (status, students) = env
        .get(
            &env.teacher_a,
            &format!("/user/practice/classes/{a}/students"),
        )
        .await;
    assert_eq!(status, 200, "{students}");
    assert_eq!(students["items"][0]["user_name"], "kim");
    assert_eq!(students["items"][0]["sessions"], 1);
    let (status, list) = env
        .get(
            &env.teacher_a,
            &format!(
                "/user/practice/classes/{a}/sessions?model_name=m2&has_errors=false&from=2020-01-01"
            ),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["session_id"], kim_session);
    assert_eq!(list["items"][0]["student_name"], "kim");
    let (_, none) = env
        .get(
            &env.teacher_a,
            &format!("/user/practice/classes/{a}/sessions?to=2020-01-01"),
        )
        .await;
    assert_eq!(none["total"], 0);
    let path = format!("/user/practice/classes/{a}/sessions/{kim_session}");
    let (status, read) = env.get(&env.teacher_a, &path).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["read_only"], true);
    assert_eq!(read["student_name"], "kim");
    assert_eq!(read["history"][0]["results"].as_array().unwrap().len(), 2);
    // Reading is all an instructor can do: the session routes stay the owner's.
    let change = env
        .send(
            &env.teacher_a,
            "PATCH",
            &format!("/user/practice/sessions/{kim_session}"),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_eq!(change.status, 404);

    // Of class B: 404, exactly as for a class that does not exist.
    for path in [
        format!("/user/practice/classes/{a}/sessions"),
        format!("/user/practice/classes/{a}/sessions/{kim_session}"),
        format!("/user/practice/classes/{a}/students"),
        format!("/user/practice/classes/{a}/usage"),
        format!("/user/practice/classes/{a}/usage/daily"),
        format!("/user/practice/classes/{a}/usage/events"),
        format!("/user/practice/classes/{b}/sessions/{kim_session}"),
    ] {
        let (status, body) = env.get(&env.teacher_b, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let (status, missing) = env
            .get(
                &env.teacher_b,
                &path.replacen(&format!("/classes/{a}/"), "/classes/999/", 1),
            )
            .await;
        assert_eq!(
            (status, &missing),
            (404, &body),
            "{path}: the same answer as no class"
        );
        // A student of the class is no instructor.
        assert_eq!(env.get(&env.kim.1, &path).await.0, 404, "{path}");
    }
    assert_eq!(
        env.get(
            &env.lee.1,
            &format!("/user/practice/sessions/{kim_session}")
        )
        .await
        .0,
        404,
        "a student never sees another's session"
    );
    let (status, _) = env
        .get(
            &env.teacher_b,
            &format!("/user/practice/classes/{b}/sessions/{lee_session}"),
        )
        .await;
    assert_eq!(status, 200);

    // The access record: kim sees the one read of A's instructor; lee sees B's.
    let (status, reads) = env.get(&env.kim.1, "/user/practice/session-reads").await;
    assert_eq!(status, 200, "{reads}");
    assert_eq!(reads["total"], 1, "{reads}");
    assert_eq!(reads["items"][0]["reader_name"], "teacher-a");
    assert_eq!(reads["items"][0]["session_id"], kim_session);
    let (_, reads) = env.get(&env.lee.1, "/user/practice/session-reads").await;
    assert_eq!(reads["total"], 1);
    assert_eq!(reads["items"][0]["reader_name"], "teacher-b");
    let (_, reads) = env
        .get(&env.teacher_a, "/user/practice/session-reads")
        .await;
    assert_eq!(reads["total"], 0);

    // Bad filters are 422 in FastAPI's shape.
    for (query, field) in [
        ("has_errors=maybe", "has_errors"),
        ("from=yesterday", "from"),
        ("student_id=0", "student_id"),
        ("model_name=", "model_name"),
    ] {
        let (status, body) = env
            .get(
                &env.teacher_a,
                &format!("/user/practice/classes/{a}/sessions?{query}"),
            )
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }

    // Usage: two calls of one run, priced for m1 only.
    let (status, usage) = env
        .get(&env.teacher_a, &format!("/user/practice/classes/{a}/usage"))
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["totals"]["runs"], 1);
    assert_eq!(usage["totals"]["calls"], 2);
    assert_eq!(usage["by_model"][0]["model_name"], "m1");
    assert!(usage["by_model"][0]["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(usage["by_model"][1]["cost"], Value::Null);
    let (_, events) = env
        .get(
            &env.teacher_a,
            &format!("/user/practice/classes/{a}/usage/events?size=1&model_name=m2"),
        )
        .await;
    assert_eq!(
        (
            events["total"].as_i64(),
            events["items"][0]["model_name"].as_str()
        ),
        (Some(1), Some("m2"))
    );
    let (_, daily) = env
        .get(
            &env.teacher_a,
            &format!("/user/practice/classes/{a}/usage/daily"),
        )
        .await;
    assert_eq!(daily["items"][0]["day"], "2026-12-09");
}

#[tokio::test]
async fn budgets_refuse_runs_with_429_before_any_model_call_and_reset_at_the_boundary() {
    let env = Env::start().await;
    let a = env.class_a;
    let kim = env.kim.0;
    // Only an instructor sets limits; unknown fields and negative limits are 422.
    let path = format!("/user/practice/classes/{a}/students/{kim}/budget");
    let set = env
        .send(&env.kim.1, "PUT", &path, Some(json!({"runs_per_hour": 1})))
        .await;
    assert_eq!(set.status, 404);
    let set = env
        .send(
            &env.teacher_a,
            "PUT",
            &path,
            Some(json!({"runs_per_hour": -1, "tokens": 5})),
        )
        .await;
    assert_eq!(set.status, 422);
    let set = env
        .send(
            &env.teacher_a,
            "PUT",
            &path,
            Some(json!({"runs_per_hour": 1, "tokens_per_day": null})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", String::from_utf8_lossy(&set.body));
    assert_eq!(set.json()["limits"]["runs_per_hour"], 1);

    let ok = env.run(&env.kim.1, a, "One run this hour").await;
    assert_eq!(ok.status, 201);
    assert_eq!(env.server.fake.requests().len(), 2);
    let refused = env.run(&env.kim.1, a, "A second one").await;
    let detail = refusal(
        "a second run in the hour",
        &refused,
        ("runs_per_hour", "student", "2026-12-09T11:00:00Z"),
    );
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "half a second to the hour, rounded up"
    );
    assert_eq!(detail["limit_value"], 1.0);
    assert_eq!(detail["remaining"], 0.0);
    assert_eq!(
        env.server.fake.requests().len(),
        2,
        "no model was called for the refused run"
    );
    // Streamed, the refusal is the same JSON answer: nothing started.
    let streamed = {
        let auth = format!("Bearer {}", env.kim.1);
        call(
            &env.server.app,
            "POST",
            &format!("/user/practice/sessions/run?class_id={a}"),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("accept", "text/event-stream"),
            ],
            json!({"prompt_text": "streamed", "model_names": ["m1"]}).to_string(),
        )
        .await
    };
    assert_eq!(streamed.status, 429);
    assert_eq!(streamed.json()["detail"]["limit"], "runs_per_hour");

    // The student sees the class's budget and their own, with nothing left.
    let (status, budgets) = env
        .get(&env.kim.1, &format!("/user/practice/classes/{a}/budgets"))
        .await;
    assert_eq!(status, 200);
    let items = budgets["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{budgets}");
    assert_eq!(items[1]["user_name"], "kim");
    assert_eq!(items[1]["status"][2]["remaining"], 0.0);
    assert_eq!(
        env.get(&env.lee.1, &format!("/user/practice/classes/{a}/budgets"))
            .await
            .0,
        404
    );

    // At the top of the hour the limit resets.
    env.clock.0.store(
        parse_time("2026-12-09T11:00:00Z").unwrap(),
        Ordering::SeqCst,
    );
    let ok = env.run(&env.kim.1, a, "The next hour").await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(env.server.fake.requests().len(), 4);

    // A class-wide cap on cost holds too: m1 is priced.
    let set = env
        .send(
            &env.teacher_a,
            "PUT",
            &format!("/user/practice/classes/{a}/budget"),
            Some(json!({"cost_per_month": 0.000001})),
        )
        .await;
    assert_eq!(set.status, 200);
    env.clock.0.store(
        parse_time("2026-12-09T12:00:00Z").unwrap(),
        Ordering::SeqCst,
    );
    let refused = env.run(&env.kim.1, a, "Too expensive").await;
    refusal(
        "past the class's cost",
        &refused,
        ("cost_per_month", "class", "2027-01-01T00:00:00Z"),
    );

    // /metrics counts per class.
    let metrics = call(&env.server.app, "GET", "/metrics", &[], "").await;
    let text = String::from_utf8(metrics.body).unwrap();
    for line in [
        format!("sluice_class_runs_total{{class=\"{a}\"}} 2\n"),
        format!("sluice_class_calls_total{{class=\"{a}\",outcome=\"ok\"}} 4\n"),
        format!("sluice_class_budget_refusals_total{{class=\"{a}\",limit=\"runs_per_hour\"}} 2\n"),
        format!("sluice_class_budget_refusals_total{{class=\"{a}\",limit=\"cost_per_month\"}} 1\n"),
    ] {
        assert!(text.contains(&line), "no {line:?} in {text}");
    }
}

/// Asserts that `reply` is a budget's refusal, 429 with `(limit, scope,
/// resets_at)` in its detail, and returns the detail.
fn refusal(case: &str, reply: &Reply, (limit, scope, resets_at): (&str, &str, &str)) -> Value {
    assert_eq!(
        reply.status,
        429,
        "{case}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let detail = reply.json()["detail"].clone();
    assert_eq!(
        (&detail["limit"], &detail["scope"], &detail["resets_at"]),
        (&json!(limit), &json!(scope), &json!(resets_at)),
        "{case}: {detail}"
    );
    detail
}
