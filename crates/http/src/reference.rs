//! The configuration reference (`docs/config.md`) and the effective
//! configuration as TOML (`sluice config print`).
//!
//! Doc comments are not visible at run time, so the settings are described in
//! [`SETTINGS`] and [`MODEL_SETTINGS`]; the tests check those tables against
//! the loader itself (the keys serde accepts for [`Config`] and
//! `ModelConfig`, and the variables [`Config::apply_vars`] reads), so the
//! reference cannot drift from the code.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;

use crate::config::{Config, LogFormat};

/// One documented setting of the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The key in the TOML file.
    pub key: &'static str,
    /// The environment variable that overrides it, if any.
    pub env: Option<&'static str>,
    /// The TOML type.
    pub kind: &'static str,
    /// The default, in words.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn setting(
    key: &'static str,
    env: Option<&'static str>,
    kind: &'static str,
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        kind,
        default,
        doc,
    }
}

/// The top-level keys of the configuration file, in the order they are printed.
pub const SETTINGS: &[Setting] = &[
    setting(
        "addr",
        Some("SLUICE_ADDR"),
        "string",
        "`127.0.0.1:8080`",
        "Address and port to listen on. A non-loopback address needs `api_keys`.",
    ),
    setting(
        "api_keys",
        Some("SLUICE_API_KEYS"),
        "array of strings",
        "none",
        "Accepted `Authorization: Bearer` keys for the API routes; the variable is comma separated. \
         Without keys the server only listens on loopback.",
    ),
    setting(
        "profiles",
        Some("SLUICE_PROFILES"),
        "path",
        "none",
        "A TOML file of model profiles added to the built-in ones.",
    ),
    setting(
        "routers",
        Some("SLUICE_ROUTERS"),
        "path",
        "the embedded sample router",
        "A directory of router files, `<router-id>/<version>.toml`.",
    ),
    setting(
        "body_limit",
        Some("SLUICE_BODY_LIMIT"),
        "integer (bytes)",
        "`16777216` (16 MiB)",
        "Largest request body; larger ones get `41300`.",
    ),
    setting(
        "body_timeout_ms",
        Some("SLUICE_BODY_TIMEOUT_MS"),
        "integer (ms)",
        "`10000`",
        "How long a client may take to send its body; then `40800` and the request slot was never taken.",
    ),
    setting(
        "request_timeout_ms",
        Some("SLUICE_REQUEST_TIMEOUT_MS"),
        "integer (ms)",
        "`30000`",
        "How long a request may take in all; then `50400`. Practice runs get at least 10 minutes.",
    ),
    setting(
        "concurrency_limit",
        Some("SLUICE_CONCURRENCY_LIMIT"),
        "integer",
        "`256`",
        "Requests handled at once; more get `42900` at once. The body is read before a request takes a slot.",
    ),
    setting(
        "max_connections",
        Some("SLUICE_MAX_CONNECTIONS"),
        "integer",
        "`4096`",
        "Connections open at once; one more is answered `503` (`50300` in the envelope) with \
         `Connection: close` and closed. `sluice serve` raises its open-files limit to the hard limit and \
         lowers this to fit, with a warning.",
    ),
    setting(
        "header_timeout_ms",
        Some("SLUICE_HEADER_TIMEOUT_MS"),
        "integer (ms)",
        "`10000`",
        "Time for a complete request head, counted from the connection's start or its previous response: a \
         slow head and an idle keep-alive connection are both closed after it, without an answer.",
    ),
    setting(
        "max_header_bytes",
        Some("SLUICE_MAX_HEADER_BYTES"),
        "integer (bytes)",
        "`32768`",
        "Largest request head (request line and header fields; at least 1024). A larger head, more than 100 \
         header fields or a head that does not parse is answered by the HTTP parser (hyper) itself before \
         sluice sees a request: `431` or `400` with an empty body (no envelope; hyper has no hook for one), \
         then the connection is closed.",
    ),
    setting(
        "drain_ms",
        Some("SLUICE_DRAIN_MS"),
        "integer (ms)",
        "`0`",
        "After SIGTERM or SIGINT, and before the listener closes: `/readyz` answers `503` while requests are \
         still served as usual, so that a load balancer that polls it moves traffic away first. Set it to a \
         little more than the balancer's check interval times its failure threshold (`deploy/` uses 3000).",
    ),
    setting(
        "shutdown_timeout_ms",
        Some("SLUICE_SHUTDOWN_TIMEOUT_MS"),
        "integer (ms)",
        "`8000`",
        "After SIGTERM or SIGINT and the drain (`drain_ms`): the listener closes, idle connections close at \
         once, and requests in flight get this long to finish before their connections are dropped. Keep it under the service manager's \
         kill timeout (Docker's is 10 s).",
    ),
    setting(
        "token_ttl_ms",
        Some("SLUICE_TOKEN_TTL_MS"),
        "integer (ms)",
        "`3600000`",
        "How long an access token from `GET /v1/auth/token` lives; then calls with it answer `40103`.",
    ),
    setting(
        "log_format",
        Some("SLUICE_LOG_FORMAT"),
        "`text` or `json`",
        "`text`",
        "How log lines are written (to stderr; see Logs below).",
    ),
    setting(
        "log_requests_per_sec",
        Some("SLUICE_LOG_REQUESTS_PER_SEC"),
        "integer",
        "`100`",
        "Request log lines written per second at most, with bursts of as many; the lines over it are counted \
         and a `request lines not logged` line with the count comes before the next one written. `0` turns \
         request lines off.",
    ),
    setting(
        "database",
        Some("SLUICE_DATABASE_URL"),
        "string",
        "`sqlite:<data_dir>/sluice.db`",
        "The practice store: `sqlite:PATH`, `sqlite::memory:` or `postgres://...`. Printed with its password \
         redacted.",
    ),
    setting(
        "data_dir",
        Some("SLUICE_DATA_DIR"),
        "path",
        "`$XDG_DATA_HOME/sluice`, `~/.local/share/sluice`, or `./sluice-data`",
        "Where the default SQLite file lives.",
    ),
    setting(
        "practice_router",
        None,
        "string",
        "`sample/1`",
        "The router (`id/version`) that checks every practice prompt; `none` turns the check off.",
    ),
    setting(
        "cors_origins",
        Some("SLUICE_CORS_ORIGINS"),
        "array of strings",
        "none (no CORS headers)",
        "Browser origins allowed to call the server, such as `https://app.example.com`; `*` allows any. \
         The variable is comma separated. Preflight requests are answered before authentication.",
    ),
    setting(
        "models",
        None,
        "table of tables",
        "none",
        "The models practice sessions may call, by logical name: `[models.NAME]`, keys below.",
    ),
];

/// The keys of one `[models.NAME]` table.
pub const MODEL_SETTINGS: &[Setting] = &[
    setting(
        "provider",
        None,
        "`openai`, `clova` or `local`",
        "required",
        "The wire format: OpenAI-compatible chat completions, CLOVA Studio v3, or `local`: a GGUF model run \
         in-process on the CPU (sluice built with `--features local`).",
    ),
    setting(
        "base_url",
        None,
        "string",
        "required (not for `local`)",
        "The API base, such as `http://127.0.0.1:8000/v1` or `https://clovastudio.stream.ntruss.com`.",
    ),
    setting(
        "path",
        None,
        "path",
        "required for `local`",
        "`local` only: the GGUF model file (a Llama-architecture model with a byte-level BPE tokenizer, such \
         as SmolLM2; `sluice model fetch smollm2` puts one in the model cache).",
    ),
    setting(
        "model",
        None,
        "string",
        "the logical name",
        "The model id sent upstream.",
    ),
    setting(
        "profile",
        None,
        "string",
        "the logical name if it is a built-in profile, else `o200k` (`openai`, `local`) or `HCX-005` (`clova`)",
        "The sluice profile used to count and trim this model's prompts.",
    ),
    setting(
        "api_key_env",
        None,
        "string",
        "none (no key sent)",
        "The *name* of the environment variable holding the API key; the key itself never goes in the file. \
         When it is not set, `sluice serve` still starts, prints `model unavailable: ...` for this model and \
         serves the others.",
    ),
    setting(
        "timeout_ms",
        None,
        "integer (ms)",
        "`30000`",
        "Deadline of one call, retries and queueing included (at most a day).",
    ),
    setting(
        "max_concurrency",
        None,
        "integer",
        "`8`",
        "Calls to this model in flight at once, per replica: three replicas with `8` make up to 24 calls at \
         once (divide a global quota by the replicas, docs/deploy.md). For `local`: requests accepted at a \
         time, running and waiting together; one more is refused with `429`.",
    ),
    setting(
        "max_retries",
        None,
        "integer",
        "`2`",
        "Retries of a failed attempt.",
    ),
    setting(
        "auto_trim",
        None,
        "boolean",
        "`false`",
        "Gateway only: trim a chat-completions request's history with the sliding window before forwarding it.",
    ),
    setting(
        "route_check",
        None,
        "boolean",
        "`false`",
        "Gateway only: check the last user message with the practice router; a blocked request is refused.",
    ),
    setting(
        "max_reply_bytes",
        None,
        "integer (bytes)",
        "`4194304` (4 MiB)",
        "The most of one reply sluice holds: a JSON answer as received, or the text a stream adds up to. \
         Past it the call fails with `too_large` naming this key (`502` on the gateway), the rest unread. \
         A real answer of 128k tokens is about 1.2 MB as JSON.",
    ),
    setting(
        "max_line_bytes",
        None,
        "integer (bytes)",
        "`4194304` (4 MiB)",
        "The longest line of a streamed answer, and the most data one event carries (CLOVA's `result` \
         event repeats the whole answer once).",
    ),
    setting(
        "max_stream_bytes",
        None,
        "integer (bytes)",
        "`67108864` (64 MiB)",
        "The most bytes read of one streamed answer, framing included: ends a stream that never stops even \
         when it adds no text. An OpenAI stream of 128k tokens is about 32 MB.",
    ),
    setting(
        "input_price_per_million",
        None,
        "number",
        "none (no cost)",
        "The price of a million prompt tokens, in any currency (the same for every model): the cost in usage \
         reports and what `cost_per_month` budgets count. Without a price, a model's calls cost nothing.",
    ),
    setting(
        "output_price_per_million",
        None,
        "number",
        "none (no cost)",
        "The price of a million answer tokens.",
    ),
];

/// Environment variables read outside the configuration file's settings.
pub const OTHER_ENV: &[(&str, &str)] = &[
    (
        "SLUICE_LOG",
        "Log filter for `sluice serve` (`info`, `sluice_http=debug`, ...); falls back to `RUST_LOG`, then `info`.",
    ),
    (
        "SLUICE_KEY",
        "The user's API key for `sluice practice run` (`--key`).",
    ),
    (
        "XDG_DATA_HOME, HOME",
        "Where the default data directory is, when `data_dir` and `SLUICE_DATA_DIR` are unset.",
    ),
];

/// The field names serde accepts for `T`, in declaration order, read from the
/// error a `deny_unknown_fields` struct gives for an unknown key.
///
/// Returns an empty list for a type that accepts unknown keys.
pub fn accepted_keys<T: DeserializeOwned>() -> Vec<String> {
    let message = match toml::from_str::<T>("__sluice_unknown_key__ = 0") {
        Ok(_) => return Vec::new(),
        Err(e) => e.to_string(),
    };
    let Some(list) = message.split("expected one of ").nth(1) else {
        return Vec::new();
    };
    list.lines()
        .next()
        .unwrap_or_default()
        .split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The environment variables [`Config::apply_vars`] reads, in order.
pub fn env_vars() -> Vec<String> {
    let seen = std::cell::RefCell::new(Vec::new());
    let _ = Config::default().apply_vars(|name| {
        seen.borrow_mut().push(name.to_string());
        None
    });
    seen.into_inner()
}

/// The configuration reference as Markdown: the content of `docs/config.md`.
pub fn config_reference() -> String {
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         <!-- Generated by `cargo run -- config reference > docs/config.md`; a test fails when this file \
         differs from what the code generates. -->\n\n\
         `sluice serve` starts from the defaults, then reads the TOML file given with `--config` (relative paths in \
         it are resolved against the file's directory), then the `SLUICE_*` environment variables, then its own \
         flags. `sluice config print` shows the result with secrets redacted; `sluice config check FILE` \
         validates a file. Unknown keys are errors.\n\n\
         ## Top-level keys\n\n",
    );
    table(&mut out, SETTINGS, true);
    out.push_str(
        "\n## `[models.NAME]`\n\n\
         One table per model that practice sessions may call; `NAME` is the logical name clients use.\n\n",
    );
    table(&mut out, MODEL_SETTINGS, false);
    out.push_str("\n## Other environment variables\n\n| variable | meaning |\n| --- | --- |\n");
    for (name, doc) in OTHER_ENV {
        let _ = writeln!(out, "| `{name}` | {doc} |");
    }
    out.push_str(LOGS);
    out.push_str("\n## Example\n\n```toml\n");
    out.push_str(EXAMPLE);
    out.push_str("```\n");
    out
}

/// Where the logs go and how to rotate them: a section of the reference.
const LOGS: &str = "\n## Logs\n\n\
`sluice serve` writes its log to stderr, one line per event (`log_format`), filtered by `SLUICE_LOG`. \
Request lines are rate-limited by `log_requests_per_sec`, so a flood of requests cannot flood the log. \
sluice does not write or rotate log files itself; rotation is the service manager's job:\n\n\
- systemd: the journal keeps stderr and rotates it (`SystemMaxUse=` in `journald.conf`).\n\
- Docker: `docker run --log-opt max-size=50m --log-opt max-file=5 ...` (the `json-file` driver's rotation).\n\
- A plain file: `sluice serve 2>>/var/log/sluice.log` with logrotate's `copytruncate` (the file is kept \
open, so it must be truncated in place), or pipe stderr to a rotating writer such as `rotatelogs`.\n";

/// A configuration file that uses every key; `docs/config.md` shows it and a
/// test loads it.
pub const EXAMPLE: &str = r#"addr = "0.0.0.0:8080"
api_keys = ["change-me"]
profiles = "profiles.toml"
routers = "routers"
body_limit = 16777216
body_timeout_ms = 10000
request_timeout_ms = 30000
concurrency_limit = 256
max_connections = 4096
header_timeout_ms = 10000
max_header_bytes = 32768
drain_ms = 0
shutdown_timeout_ms = 8000
token_ttl_ms = 3600000
log_format = "json"
log_requests_per_sec = 100
database = "sqlite:/var/lib/sluice/sluice.db"
data_dir = "/var/lib/sluice"
practice_router = "sample/1"
cors_origins = ["https://app.example.com"]

[models.gpt-small]
provider = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "gpt-4o-mini"
profile = "gpt-4o"
api_key_env = "OPENAI_API_KEY"
timeout_ms = 30000
max_concurrency = 8
max_retries = 2
auto_trim = false
route_check = false
max_reply_bytes = 4194304
max_line_bytes = 4194304
max_stream_bytes = 67108864
input_price_per_million = 0.15
output_price_per_million = 0.6

[models.smollm2-135m]
provider = "local"
path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
max_concurrency = 4
"#;

fn table(out: &mut String, settings: &[Setting], with_env: bool) {
    if with_env {
        out.push_str(
            "| key | environment | type | default | meaning |\n| --- | --- | --- | --- | --- |\n",
        );
    } else {
        out.push_str("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
    }
    for s in settings {
        let _ = write!(out, "| `{}` |", s.key);
        if with_env {
            match s.env {
                Some(env) => {
                    let _ = write!(out, " `{env}` |");
                }
                None => out.push_str(" |"),
            }
        }
        let _ = writeln!(out, " {} | {} | {} |", s.kind, s.default, s.doc);
    }
}

impl Config {
    /// The configuration as a TOML file, with API keys and database passwords
    /// replaced by `"<redacted>"`: what `sluice config print` shows.
    pub fn to_toml_redacted(&self) -> String {
        let mut top = toml::Table::new();
        let s = |v: &dyn std::fmt::Display| toml::Value::String(v.to_string());
        let int = |v: u64| toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
        top.insert("addr".into(), s(&self.addr));
        top.insert(
            "api_keys".into(),
            toml::Value::Array(vec![s(&"<redacted>"); self.api_keys.len()]),
        );
        if let Some(p) = &self.profiles {
            top.insert("profiles".into(), s(&p.display()));
        }
        if let Some(p) = &self.routers {
            top.insert("routers".into(), s(&p.display()));
        }
        top.insert("body_limit".into(), int(self.body_limit as u64));
        top.insert("body_timeout_ms".into(), int(self.body_timeout_ms));
        top.insert("request_timeout_ms".into(), int(self.request_timeout_ms));
        top.insert(
            "concurrency_limit".into(),
            int(self.concurrency_limit as u64),
        );
        top.insert("max_connections".into(), int(self.max_connections as u64));
        top.insert("header_timeout_ms".into(), int(self.header_timeout_ms));
        top.insert("max_header_bytes".into(), int(self.max_header_bytes as u64));
        top.insert("drain_ms".into(), int(self.drain_ms));
        top.insert("shutdown_timeout_ms".into(), int(self.shutdown_timeout_ms));
        top.insert("token_ttl_ms".into(), int(self.token_ttl_ms));
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        top.insert("log_format".into(), s(&format));
        top.insert(
            "log_requests_per_sec".into(),
            int(u64::from(self.log_requests_per_sec)),
        );
        top.insert(
            "database".into(),
            s(&redact_url_password(&self.database_url())),
        );
        if let Some(p) = &self.data_dir {
            top.insert("data_dir".into(), s(&p.display()));
        }
        if let Some(r) = &self.practice_router {
            top.insert("practice_router".into(), s(r));
        }
        top.insert(
            "cors_origins".into(),
            toml::Value::Array(self.cors_origins.iter().map(|o| s(o)).collect()),
        );
        let mut models = toml::Table::new();
        for (name, m) in &self.models {
            let mut t = toml::Table::new();
            t.insert("provider".into(), s(&m.provider.as_str()));
            if !m.base_url.is_empty() {
                t.insert("base_url".into(), s(&m.base_url));
            }
            if let Some(p) = &m.path {
                t.insert("path".into(), s(&p.display()));
            }
            if let Some(v) = &m.model {
                t.insert("model".into(), s(v));
            }
            if let Some(v) = &m.profile {
                t.insert("profile".into(), s(v));
            }
            if let Some(v) = &m.api_key_env {
                t.insert("api_key_env".into(), s(v));
            }
            t.insert("timeout_ms".into(), int(m.timeout_ms));
            t.insert("max_concurrency".into(), int(m.max_concurrency as u64));
            t.insert("max_retries".into(), int(u64::from(m.max_retries)));
            t.insert("auto_trim".into(), toml::Value::Boolean(m.auto_trim));
            t.insert("route_check".into(), toml::Value::Boolean(m.route_check));
            t.insert("max_reply_bytes".into(), int(m.max_reply_bytes));
            t.insert("max_line_bytes".into(), int(m.max_line_bytes));
            t.insert("max_stream_bytes".into(), int(m.max_stream_bytes));
            for (key, price) in [
                ("input_price_per_million", m.input_price_per_million),
                ("output_price_per_million", m.output_price_per_million),
            ] {
                if let Some(price) = price {
                    t.insert(key.into(), toml::Value::Float(price));
                }
            }
            models.insert(name.clone(), toml::Value::Table(t));
        }
        top.insert("models".into(), toml::Value::Table(models));
        toml::to_string(&top).unwrap_or_default()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use sluice_practice::provider::ModelConfig;

    use super::*;

    fn keys(settings: &[Setting]) -> Vec<String> {
        settings.iter().map(|s| s.key.to_string()).collect()
    }

    #[test]
    fn the_reference_names_every_key_the_loader_accepts() {
        assert_eq!(keys(SETTINGS), accepted_keys::<Config>());
        assert_eq!(keys(MODEL_SETTINGS), accepted_keys::<ModelConfig>());
    }

    #[test]
    fn the_reference_names_every_variable_the_loader_reads() {
        let mut documented: Vec<String> = SETTINGS
            .iter()
            .filter_map(|s| s.env.map(String::from))
            .collect();
        let mut read = env_vars();
        documented.sort();
        read.sort();
        assert_eq!(documented, read);
    }

    #[test]
    fn the_example_uses_every_key_and_loads() {
        let dir = std::env::temp_dir().join(format!("sluice-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sluice.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
        let sorted = |mut keys: Vec<String>| {
            keys.sort();
            keys
        };
        let table: toml::Table = EXAMPLE.parse().unwrap();
        assert_eq!(
            sorted(table.keys().cloned().collect()),
            sorted(accepted_keys::<Config>())
        );
        // Every key appears in some model (`path` only makes sense for `local`).
        let mut model_keys = sorted(
            table["models"]
                .as_table()
                .unwrap()
                .values()
                .flat_map(|m| m.as_table().unwrap().keys().cloned())
                .collect(),
        );
        model_keys.dedup();
        assert_eq!(model_keys, sorted(accepted_keys::<ModelConfig>()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn printed_config_loads_back_with_secrets_redacted() {
        let mut config: Config = toml::from_str(EXAMPLE).unwrap();
        config.database = Some("postgres://sluice:hunter2@db:5432/sluice".into());
        let printed = config.to_toml_redacted();
        assert!(!printed.contains("change-me") && !printed.contains("hunter2"));
        assert!(printed.contains("postgres://sluice:<redacted>@db:5432/sluice"));
        let back: Config = toml::from_str(&printed).unwrap();
        assert_eq!(back.models, config.models);
        assert_eq!(back.cors_origins, config.cors_origins);
        assert_eq!(back.api_keys.len(), 1);
    }

    #[test]
    fn urls_without_passwords_are_unchanged() {
        for url in ["sqlite::memory:", "sqlite:/tmp/x.db", "postgres://u@h/db"] {
            assert_eq!(redact_url_password(url), url);
        }
    }
}
