//! `sluice practice run`: one prompt to several models, against a running
//! server (`--server URL --key KEY`) or in-process on the local store and the
//! models of a config file, with the answers printed side by side.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use sluice_practice::{RunRequest, STYLE_PRESETS, SettingsFile};

/// Arguments of `sluice practice`.
#[derive(Debug, Subcommand)]
pub enum PracticeCommand {
    /// Send one prompt to several models at once and print the answers side by side.
    Run(RunArgs),
}

/// Arguments of `sluice practice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt.
    prompt: String,
    /// The class to practise in.
    #[arg(long)]
    class: i64,
    /// A model to ask (repeat for several; default: the class's primary model).
    #[arg(long = "model")]
    models: Vec<String>,
    /// An agent whose instructions and defaults to use.
    #[arg(long)]
    agent: Option<i64>,
    /// The project the session goes in.
    #[arg(long)]
    project: Option<i64>,
    /// A knowledge base to search (repeat for several).
    #[arg(long = "knowledge")]
    knowledge: Vec<i64>,
    /// A few-shot example (repeat, in order).
    #[arg(long = "few-shot")]
    few_shots: Vec<i64>,
    /// Style preset.
    #[arg(long, value_parser = ["accurate", "balanced", "creative", "custom"])]
    style: Option<String>,
    /// Temperature (0..=2).
    #[arg(long)]
    temperature: Option<f64>,
    /// Largest answer in tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// A running server's base URL (with --key); without it the run happens in-process.
    #[arg(long)]
    server: Option<String>,
    /// The user's API key. In-process, it picks the user too.
    #[arg(long, env = "SLUICE_KEY", hide_env_values = true)]
    key: Option<String>,
    /// In-process: the user to run as (name or id), instead of --key.
    #[arg(long)]
    user: Option<String>,
    /// In-process: the server's config file (database, [models.NAME]).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// In-process: the practice store [env: SLUICE_DATABASE_URL].
    #[arg(long)]
    database: Option<String>,
    /// Print the response as JSON instead of columns.
    #[arg(long)]
    json: bool,
}

/// Runs a practice command.
pub fn run(command: PracticeCommand) -> anyhow::Result<ExitCode> {
    let PracticeCommand::Run(args) = command;
    let request = run_request(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let response = runtime.block_on(async {
        match &args.server {
            Some(server) => remote(server, &args, &request).await,
            None => local(&args, &request).await,
        }
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&response)?)?;
    } else {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(120usize);
        write!(out, "{}", side_by_side(&response, width))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The run the flags ask for, checked as the server checks a body: the CLI
/// and the API refuse the same things with the same messages.
fn run_request(args: &RunArgs) -> anyhow::Result<RunRequest> {
    let mut request = RunRequest::new(args.prompt.as_str());
    request.model_names = (!args.models.is_empty()).then(|| args.models.clone());
    request.agent_id = args.agent;
    request.project_id = args.project;
    request.knowledge_ids = args.knowledge.clone();
    request.few_shot_example_ids = args.few_shots.clone();
    // clap allows only the presets' names.
    request.style_preset = args
        .style
        .as_deref()
        .and_then(|s| STYLE_PRESETS.iter().find(|p| **p == s).copied());
    request.generation_params.temperature = args.temperature;
    request.generation_params.max_tokens = args.max_tokens;
    Ok(request.validate(false)?)
}

async fn remote(server: &str, args: &RunArgs, request: &RunRequest) -> anyhow::Result<Value> {
    let Some(key) = &args.key else {
        bail!("--server needs --key (or SLUICE_KEY): the user's API key");
    };
    let url = format!(
        "{}/user/practice/sessions/run?class_id={}",
        server.trim_end_matches('/'),
        args.class
    );
    let response = sluice_practice::provider::http_client()
        .post(&url)
        .bearer_auth(key)
        .json(request)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .context("the server's answer is not JSON")?;
    if !status.is_success() {
        bail!("{status}: {}", value["detail"]);
    }
    Ok(value)
}

async fn local(args: &RunArgs, request: &RunRequest) -> anyhow::Result<Value> {
    let mut file = match &args.config {
        Some(path) => SettingsFile::from_file(path)?,
        None => SettingsFile::default(),
    };
    file.apply_env();
    if let Some(url) = &args.database {
        file.settings.database = Some(url.clone());
    }
    #[cfg(feature = "local")]
    crate::model::add_cached_model(&mut file.settings.models);
    let opened = file.open().await?;
    for line in &opened.unavailable {
        eprintln!("model unavailable: {line}");
    }
    let practice = &opened.practice;
    let store = practice.store();
    let user = match (&args.key, &args.user) {
        (Some(key), _) => store
            .authenticate(key)
            .await?
            .context("the key is not a valid user key")?,
        (None, Some(user)) => store.find_user(user).await?,
        (None, None) => bail!("say who runs it: --key KEY or --user NAME"),
    };
    let response = practice.run(&user, args.class, request, None).await?;
    Ok(serde_json::to_value(response)?)
}

/// The answers in columns, one per model, each headed by the model, its
/// latency and token usage.
fn side_by_side(response: &Value, width: usize) -> String {
    let results = response["results"].as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        return String::new();
    }
    let gap = 3;
    let column = ((width.saturating_sub(gap * (results.len() - 1))) / results.len()).max(20);
    let columns: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let usage = &r["token_usage"];
            let mut lines = vec![
                format!(
                    "{}{}",
                    r["model_name"].as_str().unwrap_or_default(),
                    if r["is_primary"].as_bool() == Some(true) {
                        " (primary)"
                    } else {
                        ""
                    }
                ),
                format!(
                    "{} ms · {} in / {} out",
                    r["latency_ms"],
                    usage["prompt_tokens"]
                        .as_u64()
                        .map_or("-".into(), |n| n.to_string()),
                    usage["completion_tokens"]
                        .as_u64()
                        .map_or("-".into(), |n| n.to_string()),
                ),
                "─".repeat(column),
            ];
            let text = match r["response_text"].as_str() {
                Some(text) => text.to_string(),
                None => format!(
                    "error: {}",
                    r["error"]["message"].as_str().unwrap_or("failed")
                ),
            };
            for paragraph in text.lines() {
                lines.extend(wrap(paragraph, column));
            }
            lines
        })
        .collect();
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = format!(
        "session {} · {}\n\n",
        response["session_id"],
        response["session_title"].as_str().unwrap_or_default()
    );
    for row in 0..rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                let cell = c.get(row).map_or("", String::as_str);
                let pad = column.saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        out.push_str(cells.join(&" ".repeat(gap)).trim_end());
        out.push('\n');
    }
    out
}

/// Greedy word wrap to `width` characters; a longer word is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_laid_out_in_columns() {
        let response = json!({
            "session_id": 7, "session_title": "hi",
            "results": [
                {"model_name": "a", "is_primary": true, "latency_ms": 12, "response_text": "one two three four five six",
                 "token_usage": {"prompt_tokens": 3, "completion_tokens": 6}},
                {"model_name": "b", "is_primary": false, "latency_ms": 30, "response_text": null,
                 "error": {"message": "timed out"}, "token_usage": {}}
            ]
        });
        let text = side_by_side(&response, 43);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "session 7 · hi");
        assert!(
            lines[2].starts_with("a (primary)") && lines[2].ends_with('b'),
            "{text}"
        );
        assert!(
            lines[3].contains("12 ms · 3 in / 6 out") && lines[3].contains("30 ms · - in / - out")
        );
        assert!(text.contains("error: timed out"));
        assert!(lines.iter().all(|l| l.chars().count() <= 43), "{text}");
    }

    #[test]
    fn wrapping_keeps_every_word() {
        let lines = wrap("alpha beta gamma delta", 11);
        assert_eq!(lines, ["alpha beta", "gamma delta"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }
}
