//! Practice sessions through the binary: `sluice admin` against a SQLite
//! file, `sluice serve` killed with SIGKILL in the middle of concurrent runs
//! and restarted on the same database (SQLite and PostgreSQL), and the
//! zero-set-up first run of `sluice serve`.
//!
//! Every child process is owned by a guard that kills it when dropped, so a
//! failing assertion never leaves a server behind; every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;

#[path = "../crates/practice/tests/support.rs"]
#[allow(dead_code)]
pub(crate) mod fake;

#[path = "../crates/practice/tests/backends.rs"]
#[allow(dead_code)]
pub(crate) mod backends;

pub(crate) use backends::fresh_postgres_url;

use fake::{Behavior, FakeUpstream, Script};

/// Environment variables that would override what a test sets up.
const SLUICE_VARS: [&str; 10] = [
    "SLUICE_ADDR",
    "SLUICE_API_KEYS",
    "SLUICE_PROFILES",
    "SLUICE_ROUTERS",
    "SLUICE_DATABASE_URL",
    "SLUICE_DATA_DIR",
    "SLUICE_LOG_FORMAT",
    "SLUICE_CONCURRENCY_LIMIT",
    "SLUICE_REQUEST_TIMEOUT_MS",
    "SLUICE_BODY_LIMIT",
];

/// How long a server may take to print its banner or answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory under the system temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-practice-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sluice` with no `SLUICE_*` variable inherited from the test's environment.
pub(crate) fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for var in SLUICE_VARS {
        command.env_remove(var);
    }
    command
}

/// `sluice admin --database <url> <args>`, with a bounded wait.
pub(crate) fn admin(database: &str, args: &[&str]) -> Output {
    let mut child = sluice()
        .arg("admin")
        .arg("--database")
        .arg(database)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice admin runs");
    // Both pipes are read on threads so a chatty child cannot block.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = read(Box::new(stdout));
    let err = read(Box::new(stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice admin {args:?} took more than 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs an admin command that must succeed; its stdout, trimmed.
pub(crate) fn admin_ok(database: &str, args: &[&str]) -> String {
    let out = admin(database, args);
    assert!(
        out.status.success(),
        "sluice admin {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs an admin command that must fail; its stderr.
pub(crate) fn admin_err(database: &str, args: &[&str]) -> String {
    let out = admin(database, args);
    assert!(
        !out.status.success(),
        "sluice admin {args:?} should fail, printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.trim().is_empty(), "a failure says why");
    stderr
}

/// A running `sluice serve`; killed (SIGKILL) and reaped when dropped.
pub(crate) struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    banner: Vec<String>,
    log: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `sluice serve <args>` with `envs`, stderr going to `log`, and
    /// waits for its "listening on" line.
    pub(crate) fn start(args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Server {
        let stderr = std::fs::File::create(&log).expect("create the server log");
        let mut child = sluice()
            .arg("serve")
            .args(args)
            .envs(envs.iter().copied())
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("sluice serve runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            banner: Vec::new(),
            log,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let first = server.wait_for_line("listening on http://", START_TIMEOUT);
        let addr = first
            .split("listening on http://")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        server.addr = addr;
        server
    }

    /// Reads stdout lines until one contains `needle`; returns it.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.banner.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} from sluice serve ({e}); stdout so far: {:#?}\nlog:\n{}",
                    self.banner,
                    self.log_text()
                ),
            }
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, then reap: no shutdown hook of the server runs.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// Waits until `/healthz` answers 200.
    pub(crate) async fn healthy(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "/healthz never answered 200; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `path` with `key`: status and JSON body.
pub(crate) async fn get(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    path: &str,
) -> (u16, Value) {
    let response = http
        .get(server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// `SELECT COUNT(*)`-style queries on either backend.
pub(crate) async fn count(url: &str, sql: &str) -> i64 {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }
}

/// A TOML basic string (JSON's escapes are valid TOML).
pub(crate) fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn admin_cli_manages_users_keys_classes_and_imports() {
    let dir = TempDir::new("admin");
    let db = format!("sqlite:{}", dir.join("nested/admin.db").display());

    let alice = admin_ok(&db, &["user", "create", "alice"]);
    assert!(alice.starts_with("sk-sluice-"), "{alice}");
    assert_eq!(alice.lines().count(), 1, "only the key on stdout: {alice}");
    assert!(dir.join("nested/admin.db").exists(), "the file is created");

    let again = admin(&db, &["user", "create", "alice"]);
    assert!(!again.status.success());
    assert_eq!(again.status.code(), Some(2));
    assert!(again.stdout.is_empty(), "no key printed on failure");
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("alice") && message.contains("exists"),
        "a clear message: {message}"
    );

    let bob = admin_ok(&db, &["user", "create", "bob"]);
    assert!(bob.starts_with("sk-sluice-") && bob != alice, "{bob}");

    let class = admin_ok(
        &db,
        &[
            "class",
            "create",
            "C",
            "--instructor",
            "alice",
            "--models",
            "m1,m2",
            "--primary",
            "m1",
        ],
    );
    let class_id: i64 = class
        .parse()
        .unwrap_or_else(|e| panic!("class id {class:?}: {e}"));
    assert!(class_id >= 1);
    admin_ok(&db, &["class", "add-member", &class, "bob"]);

    let shown: Value = serde_json::from_str(&admin_ok(&db, &["class", "show", &class])).unwrap();
    let members: BTreeMap<String, String> = shown["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members: {shown}"))
        .iter()
        .map(|m| {
            (
                m["user_name"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        members,
        BTreeMap::from([
            ("alice".to_string(), "instructor".to_string()),
            ("bob".to_string(), "student".to_string()),
        ]),
        "{shown}"
    );
    assert_eq!(shown["class"]["id"], class_id, "{shown}");
    assert_eq!(shown["class"]["name"], "C", "{shown}");

    let second = admin_ok(&db, &["key", "create", "bob", "--label", "x"]);
    assert!(second.starts_with("sk-sluice-"), "{second}");
    assert!(second != bob && second != alice);

    let list = admin_ok(&db, &["key", "list", "bob"]);
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{list}");
    for key in [&alice, &bob, &second] {
        assert!(!list.contains(key.as_str()), "a full key is listed: {list}");
    }
    assert!(list.contains(&bob[..16]), "the first key's prefix: {list}");
    assert!(
        list.contains(&second[..16]),
        "the second key's prefix: {list}"
    );
    let labelled = rows
        .iter()
        .find(|r| r.get(2) == Some(&"x"))
        .unwrap_or_else(|| panic!("no key labelled x: {list}"));
    assert_eq!(labelled[3], "active", "{list}");
    let key_id = labelled[0];
    key_id.parse::<i64>().expect("a key id");

    admin_ok(&db, &["key", "revoke", key_id]);
    let list = admin_ok(&db, &["key", "list", "bob"]);
    let revoked = list
        .lines()
        .find(|l| l.starts_with(&format!("{key_id}\t")))
        .unwrap_or_else(|| panic!("key {key_id} gone: {list}"));
    assert!(revoked.contains("revoked"), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.ends_with("active")).count(),
        1,
        "{list}"
    );

    let notes = dir.join("notes.md");
    std::fs::write(
        &notes,
        "# Seoul weather\n\nSeoul has four seasons: a humid summer and a cold, dry winter.\n\n\
         # Busan\n\nBusan is a port city in the south-east.\n",
    )
    .unwrap();
    let kb = admin_ok(
        &db,
        &[
            "import-knowledge",
            "--user",
            "alice",
            "--name",
            "kb",
            notes.to_str().unwrap(),
        ],
    );
    assert!(kb.parse::<i64>().expect("a knowledge base id") >= 1, "{kb}");

    let shots = dir.join("shots.jsonl");
    std::fs::write(
        &shots,
        "{\"input\": \"hello\", \"output\": \"안녕하세요\"}\n\n\
         {\"input\": \"thanks\", \"output\": \"감사합니다\", \"note\": \"polite\"}\n",
    )
    .unwrap();
    let ids = admin_ok(
        &db,
        &[
            "import-few-shots",
            "--user",
            "alice",
            shots.to_str().unwrap(),
        ],
    );
    let ids: Vec<i64> = ids
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("id {l:?}: {e}")))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[0] < ids[1], "{ids:?}");

    // Not JSON on line 3 (line 2 is blank).
    let broken = dir.join("broken.jsonl");
    std::fs::write(
        &broken,
        "{\"input\": \"a\", \"output\": \"b\"}\n\n{\"input\": \"c\",\n",
    )
    .unwrap();
    let err = admin_err(
        &db,
        &[
            "import-few-shots",
            "--user",
            "alice",
            broken.to_str().unwrap(),
        ],
    );
    assert!(err.contains("broken.jsonl:3"), "the line number: {err}");
    // Valid JSON, but no "output", on line 2.
    let missing = dir.join("missing.jsonl");
    std::fs::write(
        &missing,
        "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"c\"}\n",
    )
    .unwrap();
    let err = admin_err(
        &db,
        &[
            "import-few-shots",
            "--user",
            "alice",
            missing.to_str().unwrap(),
        ],
    );
    assert!(err.contains("missing.jsonl:2"), "the line number: {err}");
    assert!(err.contains("output: Field required"), "which field: {err}");

    // A failed import stores nothing: only the two good examples exist.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(count(&db, "SELECT COUNT(*) FROM few_shot_examples"));
    assert_eq!(stored, 2);

    // Issue 23, item 6: a knowledge import with one bad file (not UTF-8,
    // after a good one) stores no base and no document either.
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"\xff\xfe not text").unwrap();
    let err = admin_err(
        &db,
        &[
            "import-knowledge",
            "--user",
            "alice",
            "--name",
            "half",
            notes.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert!(err.contains("bad.txt"), "which file: {err}");
    let bases = runtime.block_on(count(&db, "SELECT COUNT(*) FROM knowledge_bases"));
    let documents = runtime.block_on(count(&db, "SELECT COUNT(*) FROM documents"));
    let terms = runtime.block_on(count(&db, "SELECT COUNT(*) FROM passage_terms"));
    let good = runtime.block_on(count(
        &db,
        &format!("SELECT COUNT(*) FROM passage_terms WHERE knowledge_id = {kb}"),
    ));
    assert_eq!(
        (bases, documents, terms),
        (1, 1, good),
        "only the first import"
    );
}

/// How many runs are fired at once, and how many must be acknowledged
/// before the server is killed.
const RUNS: usize = 20;
const ACKED_BEFORE_KILL: usize = 10;

/// The durability scenario on the database at `url`.
async fn survives_sigkill(url: &str) {
    let started = Instant::now();
    let dir = TempDir::new("durable");
    let _teacher = admin_ok(url, &["user", "create", "teacher"]);
    let key = admin_ok(url, &["user", "create", "student"]);
    let class = admin_ok(
        url,
        &[
            "class",
            "create",
            "durable",
            "--instructor",
            "teacher",
            "--models",
            "m1,m2",
            "--primary",
            "m1",
        ],
    );
    admin_ok(url, &["class", "add-member", &class, "student"]);

    // Each model answers each run after its own delay, 300 to 800 ms, so the
    // runs finish in a spread and the kill lands while others are in flight.
    let mut script = Script::new();
    for i in 0..RUNS as u64 {
        script = script
            .on(
                "m1",
                Behavior::Slow {
                    delay: Duration::from_millis(300 + (i * 137) % 500),
                },
            )
            .on(
                "m2",
                Behavior::Slow {
                    delay: Duration::from_millis(300 + (i * 271 + 150) % 500),
                },
            );
    }
    let upstream = FakeUpstream::start(script).await;
    let model = |name: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = {}\nprofile = \"HCX-003\"\n\
             timeout_ms = 20000\nmax_retries = 0\nmax_concurrency = 16\n",
            toml_string(&upstream.openai_base_url())
        )
    };
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "database = {}\n\n{}\n{}",
            toml_string(url),
            model("m1"),
            model("m2")
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
    let mut server = Server::start(&args, &[], dir.join("first.log"));
    server.healthy(&http).await;
    let run_url = server.url(&format!("/user/practice/sessions/run?class_id={class}"));

    // Fire every run at once; each task reports (run index, 201 body) or why not.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Result<Value, String>)>();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let http = http.clone();
        let (tx, key, run_url) = (tx.clone(), key.clone(), run_url.clone());
        tasks.spawn(async move {
            let body = json!({
                "prompt_text": format!("Explain run {i} of the durability check in simple words"),
                "model_names": ["m1", "m2"],
            });
            let outcome = match http
                .post(&run_url)
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text().await {
                        Ok(text) if status == 201 => serde_json::from_str(&text)
                            .map_err(|e| format!("201 but not JSON ({e}): {text}")),
                        Ok(text) => Err(format!("status {status}: {text}")),
                        Err(e) => Err(format!("status {status}, body lost: {e}")),
                    }
                }
                Err(e) => Err(format!("no answer: {e}")),
            };
            let _ = tx.send((i, outcome));
        });
    }
    drop(tx);

    let mut acked: BTreeMap<usize, Value> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.len() < ACKED_BEFORE_KILL {
        let (i, outcome) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} runs answered in 20 s", acked.len()))
            .expect("a task reports");
        match outcome {
            Ok(body) => {
                acked.insert(i, body);
            }
            Err(e) => panic!(
                "run {i} failed before the kill: {e}\nlog:\n{}",
                server.log_text()
            ),
        }
    }
    let acked_at_kill = acked.len();
    server.kill();
    let killed_at = started.elapsed();
    // Answers already complete when the kill landed are acknowledged too;
    // the rest lose their connection.
    let mut lost = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((i, Ok(body)))) => {
                acked.insert(i, body);
            }
            Ok(Some((_, Err(_)))) => lost += 1,
            Ok(None) => break,
            Err(_) => panic!("a run neither answered nor failed 10 s after the kill"),
        }
    }
    while tasks.join_next().await.is_some() {}
    assert!(lost > 0, "the kill must land while runs are in flight");
    assert_eq!(acked.len() + lost, RUNS);

    let server = Server::start(&args, &[], dir.join("second.log"));
    server.healthy(&http).await;

    // Every acknowledged run is stored exactly as it was answered.
    let mut acked_sessions = BTreeSet::new();
    for (i, body) in &acked {
        let session_id = body["session_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("run {i}: no session_id in {body}"));
        acked_sessions.insert(session_id);
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "run {i}: {body}");
        for r in results {
            let text = r["response_text"].as_str().unwrap_or_default();
            assert!(text.contains(&format!("run {i} ")), "run {i}: {r}");
            assert!(r["response_id"].as_i64().is_some(), "run {i}: {r}");
        }
        let (status, stored) = get(
            &http,
            &server,
            &key,
            &format!("/user/practice/sessions/{session_id}"),
        )
        .await;
        assert_eq!(
            status, 200,
            "acknowledged session {session_id} lost: {stored}"
        );
        let history = stored["history"].as_array().expect("history");
        assert_eq!(history.len(), 1, "session {session_id}: {stored}");
        let pick = |results: &Value| -> Vec<(Value, Value, Value)> {
            results
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["model_name"].clone(),
                        r["response_id"].clone(),
                        r["response_text"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            pick(&history[0]["results"]),
            pick(&body["results"]),
            "session {session_id}: texts and response ids"
        );
        assert_eq!(history[0]["results"], body["results"], "stored = answered");
    }

    // No half-written run: every listed session has its turn, and the turn
    // has a result for each model it asked for.
    let (status, list) = get(&http, &server, &key, "/user/practice/sessions?size=200").await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(list["total"], items.len(), "{list}");
    assert!(items.len() <= RUNS, "{list}");
    let listed: BTreeSet<i64> = items
        .iter()
        .map(|s| s["session_id"].as_i64().unwrap())
        .collect();
    assert!(
        acked_sessions.is_subset(&listed),
        "acknowledged {acked_sessions:?}, listed {listed:?}"
    );
    for summary in items {
        let id = summary["session_id"].as_i64().unwrap();
        assert!(
            summary["turns"].as_i64().unwrap() >= 1,
            "session {id} has no turn: {summary}"
        );
        let models = summary["models"].as_array().expect("models").len();
        assert_eq!(models, 2, "{summary}");
        let (status, detail) = get(
            &http,
            &server,
            &key,
            &format!("/user/practice/sessions/{id}"),
        )
        .await;
        assert_eq!(status, 200, "{detail}");
        let history = detail["history"].as_array().expect("history");
        assert_eq!(history.len() as i64, summary["turns"].as_i64().unwrap());
        for turn in history {
            let results = turn["results"].as_array().expect("results");
            assert_eq!(results.len(), models, "session {id}: {turn}");
            for r in results {
                assert!(r["response_text"].is_string(), "session {id}: {r}");
                assert!(
                    r.get("error").is_none_or(Value::is_null),
                    "session {id}: {r}"
                );
            }
        }
    }

    // The restarted server still runs practice sessions on the same store.
    let response = http
        .post(server.url(&format!("/user/practice/sessions/run?class_id={class}")))
        .bearer_auth(&key)
        .json(&json!({"prompt_text": "Explain one more run after the restart", "model_names": ["m1", "m2"]}))
        .send()
        .await
        .expect("a run after the restart");
    assert_eq!(response.status().as_u16(), 201);
    let after: Value = response.json().await.unwrap();
    assert!(
        !acked_sessions.contains(&after["session_id"].as_i64().unwrap()),
        "a new session id: {after}"
    );
    drop(server);

    // The same, straight from the database.
    let orphan_turns = count(
        url,
        "SELECT COUNT(*) FROM turns t WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.turn_id = t.id)",
    )
    .await;
    assert_eq!(orphan_turns, 0, "turns without results");
    let short_turns = count(
        url,
        "SELECT COUNT(*) FROM turns t WHERE (SELECT COUNT(*) FROM results r WHERE r.turn_id = t.id) <> 2",
    )
    .await;
    assert_eq!(short_turns, 0, "turns with a result missing");
    let empty_sessions = count(
        url,
        "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id)",
    )
    .await;
    assert_eq!(empty_sessions, 0, "sessions without turns");
    let sessions = count(url, "SELECT COUNT(*) FROM sessions").await;
    assert_eq!(sessions as usize, listed.len() + 1);
    eprintln!(
        "{}: {} of {RUNS} runs acknowledged ({acked_at_kill} before the kill at {:?}), \
         {} stored, {lost} lost; {:?} in all",
        url.split(':').next().unwrap_or_default(),
        acked.len(),
        killed_at,
        listed.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_runs_survive_sigkill_on_sqlite() {
    let dir = TempDir::new("sqlite");
    let url = format!("sqlite:{}", dir.join("durable.db").display());
    survives_sigkill(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_runs_survive_sigkill_on_postgres() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("SLUICE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL durability test");
        return;
    };
    survives_sigkill(&url).await;
}

#[test]
fn serve_starts_with_zero_set_up() {
    let dir = TempDir::new("first-run");
    // The data directory does not exist yet: the server makes it.
    let data = dir.join("data");
    let mut server = Server::start(
        &[],
        &[
            ("SLUICE_DATA_DIR", data.to_str().unwrap()),
            // Not the default 127.0.0.1:8080, which another process may hold.
            ("SLUICE_ADDR", "127.0.0.1:0"),
        ],
        dir.join("serve.log"),
    );
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let store = server.wait_for_line("practice store:", START_TIMEOUT);
    let db = data.join("sluice.db");
    assert!(
        store.contains(&format!("sqlite:{}", db.display())),
        "the store is in the data dir: {store}"
    );
    assert!(store.contains("0 users"), "{store}");
    let hint = server.wait_for_line("sluice admin", START_TIMEOUT);
    assert!(hint.contains("user create"), "{hint}");
    assert!(
        server.banner.iter().any(|l| l.starts_with("first run")),
        "{:#?}",
        server.banner
    );
    server.wait_for_line("try:", START_TIMEOUT);
    assert!(db.is_file(), "{} is created", db.display());
}

/// `sluice practice run` in-process: the store and models of a config file,
/// both wire formats, the answers printed side by side (and as JSON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_run_prints_the_answers_side_by_side() {
    let upstream = FakeUpstream::start(Script::new()).await;
    let dir = TempDir::new("practice-cli");
    let database = format!("sqlite:{}", dir.join("practice.db").display());
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "database = {}\npractice_router = \"none\"\n\
             [models.m1]\nprovider = \"openai\"\nbase_url = {}\nprofile = \"HCX-003\"\n\
             [models.m2]\nprovider = \"clova\"\nbase_url = {}\nmodel = \"HCX-005\"\n",
            toml_string(&database),
            toml_string(&upstream.openai_base_url()),
            toml_string(&upstream.clova_base_url()),
        ),
    )
    .unwrap();
    let (db, cfg) = (database.clone(), config.display().to_string());
    let (columns, json) = tokio::task::spawn_blocking(move || {
        admin_ok(&db, &["user", "create", "alice"]);
        let class = admin_ok(
            &db,
            &[
                "class",
                "create",
                "C",
                "--instructor",
                "alice",
                "--models",
                "m1,m2",
                "--primary",
                "m1",
            ],
        );
        let run = |extra: &[&str]| {
            let mut args = vec![
                "practice",
                "run",
                "hello there",
                "--class",
                &class,
                "--model",
                "m1",
                "--model",
                "m2",
                "--user",
                "alice",
                "--config",
                &cfg,
            ];
            args.extend_from_slice(extra);
            let out = sluice().args(&args).env("COLUMNS", "80").output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        (run(&[]), run(&["--json"]))
    })
    .await
    .unwrap();
    let lines: Vec<&str> = columns.lines().collect();
    assert!(lines[0].starts_with("session 1"), "{columns}");
    assert!(
        lines[2].starts_with("m1 (primary)") && lines[2].trim_end().ends_with("m2"),
        "{columns}"
    );
    assert!(lines[3].contains(" ms · "), "latency and usage: {columns}");
    assert_eq!(columns.matches("echo: hello there").count(), 2, "{columns}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{columns}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["session_id"], 2);
    assert_eq!(json["results"].as_array().unwrap().len(), 2);
    let wires: BTreeSet<String> = upstream.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        wires.iter().any(|p| p.ends_with("/chat/completions")),
        "{wires:?}"
    );
    assert!(
        wires
            .iter()
            .any(|p| p.ends_with("/v3/chat-completions/HCX-005")),
        "{wires:?}"
    );
}
