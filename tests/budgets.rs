//! Budgets that hold (issue 25): 50 concurrent runs against one student's
//! small budget, sent to two `sluice serve` processes on one database (a
//! SQLite file, and PostgreSQL when `SLUICE_TEST_POSTGRES_URL` is set), with a
//! fake upstream counting the model calls. The usage recorded never passes
//! the limit, every refusal is a 429 with the numbers, and no model is called
//! for a refused run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::practice::fake::{Behavior, FakeUpstream, Script};
use crate::practice::{
    Server, TempDir, admin_ok, count, fresh_postgres_url, http_client, toml_string,
};

const RUNS: usize = 50;

/// POST a run; (status, Retry-After, body).
async fn run(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    prompt: &str,
) -> (u16, Option<String>, Value) {
    let body = json!({
        "prompt_text": prompt,
        "model_names": ["m1"],
        "generation_params": {"max_tokens": 24},
    });
    let response = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// Checks a 429's body and header: which limit, what is left, when it resets.
fn assert_refusal(retry_after: Option<&str>, body: &Value, limit: f64) {
    let detail = &body["detail"];
    assert_eq!(detail["limit"], "tokens_per_day", "{body}");
    assert_eq!(detail["scope"], "student", "{body}");
    assert_eq!(detail["limit_value"].as_f64(), Some(limit), "{body}");
    let used = detail["used"].as_f64().expect("used");
    let remaining = detail["remaining"].as_f64().expect("remaining");
    let requested = detail["requested"].as_f64().expect("requested");
    assert_eq!(remaining, (limit - used).max(0.0), "{body}");
    assert!(
        requested > remaining,
        "refused only when it does not fit: {body}"
    );
    assert!(detail["msg"].as_str().unwrap().contains("tokens_per_day"));
    let resets_at = detail["resets_at"].as_str().expect("resets_at");
    assert!(resets_at.ends_with("T00:00:00Z"), "{resets_at}");
    let seconds: u64 = retry_after
        .expect("a 429 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=86_400).contains(&seconds), "{seconds}");
    assert_eq!(detail["retry_after"].as_u64(), Some(seconds));
}

async fn budget_holds_across_two_servers(url: &str) {
    let dir = TempDir::new("budget");
    let teacher = admin_ok(url, &["user", "create", "teacher"]);
    let key = admin_ok(url, &["user", "create", "student"]);
    let class = admin_ok(
        url,
        &[
            "class",
            "create",
            "budgeted",
            "--instructor",
            "teacher",
            "--models",
            "m1",
            "--primary",
            "m1",
        ],
    );
    admin_ok(url, &["class", "add-member", &class, "student"]);

    // Every answer takes a while, so that many runs are in flight at once.
    let mut script = Script::new();
    for _ in 0..RUNS + 2 {
        script = script.on(
            "m1",
            Behavior::reply("a short answer of six words").with_delay(Duration::from_millis(400)),
        );
    }
    let upstream = FakeUpstream::start(script).await;
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "database = {}\n\n[models.m1]\nprovider = \"openai\"\nbase_url = {}\nprofile = \"HCX-003\"\n\
             timeout_ms = 20000\nmax_retries = 0\nmax_concurrency = 64\n\
             input_price_per_million = 2.0\noutput_price_per_million = 8.0\n",
            toml_string(url),
            toml_string(&upstream.openai_base_url())
        ),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
    ];
    let http = http_client();
    let servers = [
        Server::start(&args, &[], dir.join("one.log")),
        Server::start(&args, &[], dir.join("two.log")),
    ];
    for server in &servers {
        server.healthy(&http).await;
    }
    let run_urls: Vec<String> = servers
        .iter()
        .map(|s| s.url(&format!("/user/practice/sessions/run?class_id={class}")))
        .collect();
    let prompt = "Explain budgets in simple words";

    // A limit of one token: the refusal says what one run needs at worst,
    // and no model is called.
    admin_ok(
        url,
        &[
            "budget",
            "set",
            &class,
            "--student",
            "student",
            "--tokens-per-day",
            "1",
        ],
    );
    let (status, retry_after, body) = run(&http, &run_urls[0], &key, prompt).await;
    assert_eq!(status, 429, "{body}");
    assert_refusal(retry_after.as_deref(), &body, 1.0);
    let worst = body["detail"]["requested"].as_f64().unwrap();
    assert!(worst > 24.0, "the prompt plus the answer's maximum: {body}");
    assert_eq!(upstream.requests().len(), 0, "a refused run calls no model");

    // Room for five runs at their worst case (and a half).
    let limit = (worst * 5.5).floor();
    admin_ok(
        url,
        &[
            "budget",
            "set",
            &class,
            "--student",
            "student",
            "--tokens-per-day",
            &format!("{limit}"),
        ],
    );
    // The instructor sees the limit through the API too.
    let (status, body) = crate::practice::get(
        &http,
        &servers[1],
        &teacher,
        &format!("/user/practice/classes/{class}/budgets"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"][1]["limits"]["tokens_per_day"].as_f64(),
        Some(limit)
    );

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let (http, url, key) = (http.clone(), run_urls[i % 2].clone(), key.clone());
        tasks.spawn(async move { run(&http, &url, &key, prompt).await });
    }
    let (mut granted, mut refused, mut used) = (0usize, 0usize, 0i64);
    while let Some(outcome) = tasks.join_next().await {
        let (status, retry_after, body) = outcome.unwrap();
        match status {
            201 => {
                granted += 1;
                let usage = &body["results"][0]["token_usage"];
                used += usage["total_tokens"]
                    .as_i64()
                    .expect("the upstream's counts");
            }
            429 => {
                refused += 1;
                assert_refusal(retry_after.as_deref(), &body, limit);
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert_eq!(granted + refused, RUNS);
    assert!(granted >= 5, "five runs fit at their worst case: {granted}");
    assert!(
        refused >= 1,
        "the budget held no run back: {granted} granted"
    );
    // One model call per granted run: none for a refused one.
    assert_eq!(upstream.requests().len(), granted, "model calls");

    // Every run is settled: the usage recorded is what the upstream reported,
    // and it never passed the limit.
    let pending = count(url, "SELECT COUNT(*) FROM usage_runs WHERE NOT settled").await;
    assert_eq!(pending, 0);
    let recorded = count(
        url,
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM usage_runs",
    )
    .await;
    assert_eq!(recorded, used, "recorded usage is the upstream's");
    assert!(
        recorded as f64 <= limit,
        "recorded {recorded} tokens over the limit of {limit}"
    );
    let runs = count(url, "SELECT COUNT(*) FROM usage_runs").await;
    assert_eq!(runs as usize, granted);

    // `sluice admin usage` reads the same numbers, with the cost from the prices.
    let summary: Value = serde_json::from_str(&admin_ok(url, &["usage", &class])).expect("JSON");
    assert_eq!(summary["totals"]["calls"].as_u64(), Some(granted as u64));
    assert_eq!(summary["totals"]["errors"].as_u64(), Some(0));
    let tokens = summary["totals"]["prompt_tokens"].as_i64().unwrap()
        + summary["totals"]["completion_tokens"].as_i64().unwrap();
    assert_eq!(tokens, used);
    let cost = summary["totals"]["cost"]
        .as_f64()
        .expect("a cost: m1 has prices");
    let expected = (summary["totals"]["prompt_tokens"].as_f64().unwrap() * 2.0
        + summary["totals"]["completion_tokens"].as_f64().unwrap() * 8.0)
        / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    assert_eq!(summary["by_student"][0]["user_name"], "student");
    let events: Value = serde_json::from_str(&admin_ok(
        url,
        &["usage", &class, "--events", "--model", "m1", "--size", "3"],
    ))
    .unwrap();
    assert_eq!(events["total"].as_u64(), Some(granted as u64));
    assert_eq!(events["items"].as_array().unwrap().len(), 3);
    let shown: Value = serde_json::from_str(&admin_ok(url, &["budget", "show", &class])).unwrap();
    let status = &shown["items"][1]["status"][0];
    assert_eq!(status["limit"], "tokens_per_day");
    assert_eq!(status["used"].as_f64(), Some(recorded as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_holds_across_two_servers_on_sqlite() {
    let dir = TempDir::new("budget-sqlite");
    let url = format!("sqlite:{}", dir.join("budget.db").display());
    budget_holds_across_two_servers(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_holds_across_two_servers_on_postgres() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("SLUICE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL budget test");
        return;
    };
    budget_holds_across_two_servers(&url).await;
}
