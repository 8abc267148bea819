//! Issue 26's first-run items, found by following the README as a new user
//! would: each is checked here against the binary as it is run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("SLUICE_API_KEYS")
        .env_remove("SLUICE_DATABASE_URL")
        .env_remove("SLUICE_KEY")
        .env("SLUICE_LOG", "warn");
    command
}

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-first-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sluice serve` with these arguments: the child, its address and the
/// start-up text up to the curl examples.
fn serve(args: &[&str], envs: &[(&str, &str)]) -> (Child, String, String) {
    let mut child = sluice()
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("CLOVASTUDIO_API_KEY")
        .env_remove("VLLM_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !banner.contains("\ntry:") {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice serve stopped before it was ready:\n{banner}");
        }
        banner.push_str(&line);
    }
    let addr = banner
        .lines()
        .next()
        .and_then(|l| l.rsplit("http://").next())
        .unwrap()
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, addr, banner)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn get(addr: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The README's `[models.*]` example, exactly as it is printed there.
fn readme_models_block() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("[models.HCX-005]") && block.contains("api_key_env"))
        .expect("the README shows a [models.HCX-005] table with api_key_env")
        .to_string()
}

#[test]
fn the_readmes_model_config_starts_without_its_keys_and_says_which_models_are_unavailable() {
    let dir = scratch("models");
    let config = dir.join("sluice.toml");
    std::fs::write(&config, readme_models_block()).unwrap();
    let database = format!("sqlite:{}", dir.join("sluice.db").display());
    let (child, addr, banner) = serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[],
    );
    assert!(
        banner.contains(
            "model unavailable: model \"HCX-005\": the environment variable CLOVASTUDIO_API_KEY \
             (api_key_env) is not set"
        ),
        "{banner}"
    );
    assert_eq!(get(&addr, "/readyz"), 200, "{banner}");
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_in_memory_store_gets_no_admin_hint_that_cannot_work() {
    let (child, _, banner) = serve(&["--database", "sqlite::memory:"], &[]);
    stop(child);
    assert!(
        !banner.contains("sluice admin --database 'sqlite::memory:'"),
        "{banner}"
    );
    assert!(
        banner.contains("the practice store is in memory"),
        "{banner}"
    );
    assert!(banner.contains("--database sqlite:sluice.db"), "{banner}");
}

#[test]
fn an_open_api_still_says_that_practice_routes_need_a_users_key() {
    let (child, _, banner) = serve(&["--database", "sqlite::memory:"], &[]);
    stop(child);
    assert!(!banner.contains("the API is open"), "{banner}");
    assert!(
        banner.contains("the practice routes (/user/practice/...) always need a user's key"),
        "{banner}"
    );
}

#[test]
fn practice_run_help_names_the_key_variable_once() {
    let out = sluice()
        .args(["practice", "run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out);
    assert_eq!(help.matches("[env: SLUICE_KEY").count(), 1, "{help}");
}

#[test]
fn practice_run_without_a_config_says_where_models_come_from() {
    let dir = scratch("practice");
    let database = format!("sqlite:{}", dir.join("sluice.db").display());
    let admin = |args: &[&str]| {
        let out = sluice()
            .args(["admin", "--database", &database])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    admin(&["user", "create", "kim"]);
    admin(&[
        "class",
        "create",
        "Demo",
        "--instructor",
        "kim",
        "--models",
        "HCX-005",
        "--primary",
        "HCX-005",
    ]);
    let out = sluice()
        .args(["practice", "run", "hello", "--class", "1", "--user", "kim"])
        .args(["--database", &database])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for part in [
        "\"HCX-005\" is not configured",
        "configured: none",
        "--config FILE",
    ] {
        assert!(said.contains(part), "{part} missing: {said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn on_sigterm_readyz_turns_503_for_the_drain_while_healthz_stays_200() {
    let (mut child, addr, _) = serve(
        &["--database", "sqlite::memory:"],
        &[("SLUICE_DRAIN_MS", "1500")],
    );
    assert_eq!(get(&addr, "/readyz"), 200);
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&addr, "/readyz"), 503);
    assert_eq!(get(&addr, "/healthz"), 200, "still serving while draining");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "left before the drain ended"
    );
}
