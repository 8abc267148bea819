//! Every setting of the configuration file and every environment variable,
//! described as data: doc comments are not visible at run time, and the
//! reference ([`config_reference`](super::reference::config_reference)) is
//! rendered from these tables.

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
        "requantize_q8_0",
        None,
        "boolean",
        "`false`",
        "`local` only: run a Q4_1 file's weights re-quantized to Q8_0 (converted once, cached in the model cache), \
         at about the file's perplexity. Slower than the file's Q4_1 with sluice's kernels (more bytes per weight) \
         and 50 MiB more memory: kept to compare formats (BENCHMARKS.md, \"Local model\").",
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
         once (for a global quota, divide it by the replicas or set `global_max_concurrency`, docs/deploy.md). \
         For `local`: requests accepted at a time, running and waiting together; one more is refused with `429`.",
    ),
    setting(
        "global_max_concurrency",
        None,
        "integer",
        "none",
        "Calls to this model in flight at once across every replica on the database (1 to 10000), for a \
         provider whose quota is global: each call also holds one of these slots, leased in the database; a \
         call that finds all held waits within `timeout_ms`. Not for `local` (docs/deploy.md).",
    ),
    setting(
        "global_lease_ms",
        None,
        "integer (ms)",
        "`10000`",
        "How long a `global_max_concurrency` slot outlives a replica that died holding it (at least 100); \
         renewed every third of it while the call runs.",
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
