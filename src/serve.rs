//! `sluice serve`: binds, wires and runs the `sluice-http` server.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sluice_http::{AppState, Config, LogFormat};

/// Arguments of `sluice serve`.
///
/// Settings come from the defaults, then the config file, then `SLUICE_*`
/// environment variables, then these flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080; env: SLUICE_ADDR].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// TOML config file: addr, api_keys, body_limit, ..., [models.NAME] (every
    /// key: docs/config.md or `sluice config reference`).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// TOML file of model profiles added to the built-in ones [env: SLUICE_PROFILES].
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Router directory (`<router-id>/<version>.toml`) [default: the embedded
    /// sample router; env: SLUICE_ROUTERS].
    #[arg(long)]
    routers: Option<PathBuf>,
    /// Practice store: sqlite:PATH, sqlite::memory: or postgres://... [default:
    /// sluice.db in the data directory; env: SLUICE_DATABASE_URL].
    #[arg(long)]
    database: Option<String>,
    /// Log format: text or json [env: SLUICE_LOG_FORMAT].
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

/// The configuration these arguments describe: the defaults, then the file,
/// then `SLUICE_*` variables, then the flags. Not validated yet.
pub fn load_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env()?;
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if let Some(path) = args.profiles {
        config.profiles = Some(path);
    }
    if let Some(dir) = args.routers {
        config.routers = Some(dir);
    }
    if let Some(url) = args.database {
        config.practice.database = Some(url);
    }
    match args.log_format.as_deref() {
        Some("json") => config.log_format = LogFormat::Json,
        Some(_) => config.log_format = LogFormat::Text,
        None => {}
    }
    Ok(config)
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    let mut config = load_config(args)?;
    init_logging(config.log_format);
    #[cfg(feature = "local")]
    crate::model::add_cached_model(&mut config.practice.models);
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = AppState::from_config_with_practice(&config).await?;
        // Load the tokenizers now, not on the first request.
        for (model, error) in state.warm_up() {
            tracing::warn!(model, error, "model profile cannot be loaded");
        }
        let users = match state.practice() {
            Some(practice) => practice
                .store()
                .list_users()
                .await
                .map(|u| u.len())
                .unwrap_or(0),
            None => 0,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let local = listener.local_addr()?;
        banner(local, &config, users, state.unavailable_models())?;
        let limits = connection_limits(&config);
        tracing::info!(
            addr = %local,
            api_keys = config.api_keys.len(),
            max_connections = limits.max_connections,
            "listening"
        );
        sluice_http::serve_with(
            listener,
            sluice_http::app(state.clone()),
            limits,
            sluice_http::drained_shutdown(state, sluice_http::shutdown_signal(), config.drain()),
        )
        .await
        .context("server failed")?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// File descriptors kept for everything but client connections: the
/// listener, the database, upstream models, router and log files, and the
/// connections being refused.
const RESERVED_FDS: u64 = 512;

/// The connection limits of `config`, with the cap lowered to what the
/// process's open-files limit allows (raised to its hard limit first).
fn connection_limits(config: &Config) -> sluice_http::ConnectionLimits {
    let mut limits = config.connection_limits();
    if let Some(open_files) = sluice_http::raise_open_files_limit() {
        let room =
            usize::try_from(open_files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
        if limits.max_connections > room {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_files,
                lowered_to = room,
                "max_connections is over what the open-files limit allows; raise the limit (ulimit -n, LimitNOFILE=)"
            );
            limits.max_connections = room;
        }
    }
    limits
}

fn banner(
    local: SocketAddr,
    config: &Config,
    users: usize,
    unavailable: &[String],
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "sluice serve: listening on http://{local}")?;
    let database = sluice_practice::redact_url(&config.practice.database_url());
    writeln!(
        out,
        "practice store: {database} ({users} users; models: {})",
        if config.practice.models.is_empty() {
            "none configured, see [models.NAME] in the README".to_string()
        } else {
            config
                .practice
                .models
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    for line in unavailable {
        writeln!(out, "model unavailable: {line}")?;
        tracing::warn!("model unavailable: {line}");
    }
    if users == 0 {
        writeln!(out, "{}", first_run_hint(&database))?;
    }
    let auth = if config.api_keys.is_empty() {
        writeln!(
            out,
            "no API keys configured: the CLOVA-style API routes are open, so the server listens on \
             loopback only (set SLUICE_API_KEYS or api_keys to listen elsewhere); the practice \
             routes (/user/practice/...) always need a user's key from `sluice admin user create`"
        )?;
        ""
    } else {
        writeln!(out, "API keys: {} configured", config.api_keys.len())?;
        " -H 'Authorization: Bearer <key>'"
    };
    writeln!(out, "try:")?;
    writeln!(
        out,
        "  curl -s http://{local}/v1/api-tools/sliding/chat-messages/HCX-003{auth} \\\n    \
         -H 'Content-Type: application/json' \\\n    \
         -d '{{\"maxTokens\":200,\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'"
    )?;
    if config.routers.is_none() {
        writeln!(
            out,
            "  curl -s 'http://{local}/v1/routers/sample/versions/1/route?explain=true'{auth} \\\n    \
         -H 'Content-Type: application/json' -d '{{\"query\":\"내일 서울 날씨 어때?\"}}'"
        )?;
    }
    writeln!(
        out,
        "  (OpenAPI: http://{local}/openapi.json, metrics: http://{local}/metrics)"
    )?;
    out.flush()
}

/// What to do first on an empty store. An in-memory store lives inside this
/// process, where `sluice admin` (another process) cannot reach it, so it gets
/// no commands that would only fill a store of their own.
fn first_run_hint(database: &str) -> String {
    if database.contains(":memory:") || database.contains("mode=memory") {
        return "first run: the practice store is in memory, inside this process: `sluice admin` cannot \
                add users to it, so the practice routes have no users. To practise, start with a file \
                instead (--database sqlite:sluice.db, or no --database for the default file) and create \
                users with `sluice admin --database sqlite:sluice.db user create NAME`"
            .to_string();
    }
    format!(
        "first run: create a user and their key with\n  sluice admin --database '{database}' user create NAME\n\
         then a class with\n  sluice admin --database '{database}' class create NAME --instructor NAME --models A,B --primary A"
    )
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never in a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_public_address_without_keys() {
        if std::env::var_os("SLUICE_API_KEYS").is_some() {
            return; // the environment supplies keys: nothing to refuse
        }
        let args = ServeArgs {
            addr: Some("0.0.0.0:0".parse().unwrap()),
            config: None,
            profiles: None,
            routers: None,
            database: None,
            log_format: None,
        };
        let err = run(args).unwrap_err().to_string();
        assert!(
            err.contains("refusing to listen on 0.0.0.0:0 without API keys"),
            "{err}"
        );
    }
}
