//! The local model end to end (built with `--features local`): a real `sluice
//! serve` with SmolLM2 registered from the model cache as `smollm2-135m`, and
//! the same model again as an `openai` provider pointed at the server's own
//! OpenAI-compatible endpoint, so a practice run asks it in-process and over
//! HTTP. Outside CI the tests skip, saying so, when the model is not cached;
//! under `CI=true` a missing model fails.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The model file's name in the cache.
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model cache, as `sluice` finds it; `None` (with a message) when the
/// model is not there outside CI.
fn model_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("SLUICE_MODEL_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("sluice/models")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/sluice/models")));
    match dir {
        Some(dir) if dir.join(MODEL_FILE).is_file() => Some(dir),
        _ => {
            let message =
                "SmolLM2 is not in the model cache; get it with `sluice model fetch smollm2`";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("sluice-local-model-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sluice` with the model cache set and no other `SLUICE_*` variable.
fn sluice(models: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    command.env("SLUICE_MODEL_DIR", models);
    command
}

/// Runs a short command to completion (bounded); its stdout, trimmed.
fn run_ok(mut command: Command, timeout: Duration) -> String {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} took more than {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running `sluice serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(models: &Path, config: &Path, log: PathBuf) -> Server {
        let mut child = sluice(models)
            .args(["serve", "--config"])
            .arg(config)
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            log,
        };
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(addr) = line.split("listening on http://").nth(1) {
                        server.addr = addr.trim().to_string();
                        return server;
                    }
                }
                Err(e) => panic!("sluice serve did not start ({e}):\n{}", server.log_text()),
            }
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A port that was free a moment ago, for a server that must name its own
/// address in its configuration.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A user `name` (their key) and a class they teach with `models` (comma
/// separated; the local model primary), made by `sluice admin` on `db`.
fn instructor_and_class(models_dir: &Path, db: &str, name: &str, models: &str) -> (String, String) {
    let admin = |args: &[&str]| {
        let mut command = sluice(models_dir);
        command.args(["admin", "--database", db]).args(args);
        run_ok(command, Duration::from_secs(30))
    };
    let key = admin(&["user", "create", name]);
    let class = admin(&[
        "class",
        "create",
        &format!("{name}'s class"),
        "--instructor",
        name,
        "--models",
        models,
        "--primary",
        "smollm2-135m",
    ]);
    (key, class)
}

/// One practice run of both models, greedy; the results by model name.
fn practice_run(models: &Path, server: &Server, key: &str, class: &str) -> Vec<Value> {
    let mut command = sluice(models);
    command.args([
        "practice",
        "run",
        "What is the capital of Japan?",
        "--class",
        class,
        "--model",
        "smollm2-135m",
        "--model",
        "smollm2-http",
        "--temperature",
        "0",
        "--max-tokens",
        "40",
        "--json",
        "--server",
    ]);
    command.arg(server.url("")).args(["--key", key]);
    let out: Value = serde_json::from_str(&run_ok(command, Duration::from_secs(300))).unwrap();
    out["results"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{out}"))
}

#[test]
fn a_practice_run_asks_the_local_model_in_process_and_over_http() {
    let Some(models) = model_dir() else { return };
    let dir = TempDir::new("both");
    let db = format!("sqlite:{}", dir.0.join("practice.db").display());
    let (key, class) = instructor_and_class(&models, &db, "alice", "smollm2-135m,smollm2-http");
    let port = free_port();
    let config = dir.0.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "addr = \"127.0.0.1:{port}\"\ndatabase = \"{db}\"\npractice_router = \"none\"\n\n\
             [models.smollm2-http]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
             model = \"smollm2-135m\"\ntimeout_ms = 120000\nmax_retries = 0\n\n\
             [models.one-at-a-time]\nprovider = \"local\"\npath = \"{}\"\nmax_concurrency = 1\n\
             requantize_q8_0 = true\n",
            models.join(MODEL_FILE).display()
        ),
    )
    .unwrap();
    // `one-at-a-time` also runs the file re-quantized to Q8_0 at load, set
    // from the server's configuration (`requantize_q8_0`).
    let server = Server::start(&models, &config, dir.0.join("serve.log"));

    let first = practice_run(&models, &server, &key, &class);
    let second = practice_run(&models, &server, &key, &class);
    assert_eq!(first.len(), 2, "{first:?}");
    let answer = |r: &Value| r["response_text"].as_str().unwrap_or_default().to_string();
    let usage = |r: &Value, k: &str| {
        r["token_usage"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{r}"))
    };
    for result in first.iter().chain(&second) {
        assert!(result["error"].is_null(), "{result}\n{}", server.log_text());
        assert!(!answer(result).trim().is_empty(), "{result}");
        let completion = usage(result, "completion_tokens");
        assert!((1..=40).contains(&completion), "{result}");
        assert_eq!(
            usage(result, "total_tokens"),
            usage(result, "prompt_tokens") + completion
        );
    }
    // The same model, greedy, in-process and over HTTP: the same answer and the
    // same token counts; and the same again on the second run.
    assert_eq!(answer(&first[0]), answer(&first[1]));
    for k in ["prompt_tokens", "completion_tokens"] {
        assert_eq!(usage(&first[0], k), usage(&first[1], k), "{k}");
    }
    let texts = |rs: &[Value]| rs.iter().map(answer).collect::<Vec<_>>();
    assert_eq!(texts(&first), texts(&second));
    assert!(answer(&first[0]).contains("Tokyo"), "{}", answer(&first[0]));

    // The OpenAI-compatible endpoint streams, and refuses with 429 when the
    // model's queue (max_concurrency = 1) is full.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let ask = |model: &str, stream: bool, max_tokens: u32, prompt: &str| {
            http.post(server.url("/v1/chat/completions"))
                .json(&json!({
                    "model": model, "stream": stream, "max_tokens": max_tokens, "temperature": 0,
                    "messages": [{"role": "user", "content": prompt}]
                }))
                .send()
        };
        let streamed = ask("smollm2-135m", true, 40, "What is the capital of Japan?")
            .await
            .unwrap();
        assert_eq!(streamed.status().as_u16(), 200);
        let body = streamed.text().await.unwrap();
        let deltas: String = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(deltas, answer(&first[0]), "{body}");
        let usage_chunk: Value = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v["usage"].is_object())
            .unwrap_or_else(|| panic!("no usage in {body}"));
        assert_eq!(
            usage_chunk["usage"]["completion_tokens"].as_u64(),
            Some(usage(&first[0], "completion_tokens"))
        );

        let story = "Write a long story about a lighthouse keeper.";
        let (long, short) = tokio::join!(ask("one-at-a-time", false, 96, story), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ask("one-at-a-time", false, 4, story).await
        });
        let (long, short) = (long.unwrap(), short.unwrap());
        assert_eq!(long.status().as_u16(), 200);
        assert_eq!(
            short.status().as_u16(),
            429,
            "{}",
            short.text().await.unwrap()
        );
    });
}

/// English filler of about `tokens` SmolLM2 tokens.
fn filler(tokens: usize) -> String {
    // 10 tokens a sentence.
    "The quick brown fox jumps over the lazy dog. ".repeat(tokens / 10)
}

#[test]
fn a_practice_run_with_a_20000_token_history_is_trimmed_to_the_local_model_and_answered() {
    let Some(models) = model_dir() else { return };
    let dir = TempDir::new("history");
    let db = format!("sqlite:{}", dir.0.join("practice.db").display());
    let (key, class) = instructor_and_class(&models, &db, "bob", "smollm2-135m");
    let config = dir.0.join("sluice.toml");
    std::fs::write(
        &config,
        format!("addr = \"127.0.0.1:0\"\ndatabase = \"{db}\"\npractice_router = \"none\"\n"),
    )
    .unwrap();
    let server = Server::start(&models, &config, dir.0.join("serve.log"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let post = |path: String, body: Value| {
            http.post(server.url(&path))
                .bearer_auth(&key)
                .json(&body)
                .send()
        };
        let params = json!({"temperature": 0, "max_tokens": 16});
        let first = post(
            format!("/user/practice/sessions/run?class_id={class}"),
            json!({"prompt_text": "Hello!", "model_names": ["smollm2-135m"], "generation_params": params}),
        )
        .await
        .unwrap();
        assert_eq!(first.status().as_u16(), 201);
        let first: Value = first.json().await.unwrap();
        let session = first["session_id"].as_i64().unwrap_or_else(|| panic!("{first}"));

        // Twenty earlier turns of ~1,000 tokens each (prompt and answer),
        // written into the store as copies of the first turn: 20,000 tokens of
        // history, ten times the 2,048-token context of each of the local
        // provider's slots (more than twice SmolLM2's own 8,192).
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        for position in 1..=20i64 {
            let turn = sqlx::query(
                "INSERT INTO turns (session_id, position, prompt_text, settings, created_at) \
                 SELECT session_id, ?, ?, settings, created_at FROM turns \
                 WHERE session_id = ? AND position = 0",
            )
            .bind(position)
            .bind(format!("Question {position}: {}", filler(500)))
            .bind(session)
            .execute(&pool)
            .await
            .unwrap()
            .last_insert_rowid();
            sqlx::query(
                "INSERT INTO results (turn_id, session_model_id, model_name, is_primary, \
                 response_text, error, token_usage, latency_ms, generation_params, request, \
                 finish_reason, upstream_id, created_at) \
                 SELECT ?, r.session_model_id, r.model_name, r.is_primary, ?, NULL, r.token_usage, \
                 r.latency_ms, r.generation_params, r.request, r.finish_reason, r.upstream_id, \
                 r.created_at FROM results r JOIN turns t ON r.turn_id = t.id \
                 WHERE t.session_id = ? AND t.position = 0",
            )
            .bind(turn)
            .bind(format!("Answer {position}: {}", filler(500)))
            .bind(session)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let next = post(
            format!("/user/practice/sessions/{session}/chat"),
            json!({"prompt_text": "What is the capital of Japan?", "generation_params": params}),
        )
        .await
        .unwrap();
        let status = next.status().as_u16();
        let next: Value = next.json().await.unwrap();
        assert_eq!(status, 201, "{next}\n{}", server.log_text());
        let results = next["results"].as_array().unwrap_or_else(|| panic!("{next}"));
        let result = &results[0];
        assert!(result["error"].is_null(), "{result}");
        assert!(
            !result["response_text"].as_str().unwrap_or_default().trim().is_empty(),
            "{result}"
        );
        let usage = &result["token_usage"];
        let prompt = usage["prompt_tokens"].as_u64().unwrap_or_else(|| panic!("{result}"));
        // Trimmed to the model's own context, keeping as many recent turns as
        // fit (one; nineteen do not), and counted with the model's own
        // tokenizer: the count practice made is the one the model reports,
        // less the default system turn the model's template adds to a
        // conversation without one (which the profile's context leaves room
        // for).
        assert!(prompt + 16 <= 2_048, "{usage}");
        assert!(prompt > 900, "{usage}");
        let meta = sluice_local::gguf::Metadata::read_file(&models.join(MODEL_FILE)).unwrap();
        let tokenizer = sluice_local::GgufTokenizer::from_gguf(&meta).unwrap();
        let system = sluice_local::chat::default_system_tokens(&tokenizer).unwrap() as u64;
        assert_eq!(
            usage["counted_prompt_tokens"].as_u64(),
            Some(prompt - system),
            "{usage}"
        );
    });
}
