//! `sluice config`: the effective configuration, a file's check, and the
//! reference of every key (`docs/config.md`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_http::{AppState, Config};

use crate::serve::{ServeArgs, load_config};

/// `sluice config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration `sluice serve` would use with these flags (file,
    /// then SLUICE_* variables, then flags) as TOML, secrets redacted.
    Print(ServeArgs),
    /// Check a config file: syntax, known keys, values, profiles and routers.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the reference of every key and variable (docs/config.md).
    Reference,
}

/// Runs a `sluice config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        ConfigCommand::Print(args) => {
            let config = load_config(args)?;
            out.write_all(config.to_toml_redacted().as_bytes())?;
        }
        ConfigCommand::Check { file } => {
            let config = Config::from_file(&file)?;
            // Loads the profile file and the router directory as serve would.
            AppState::from_config(&config)?;
            writeln!(
                out,
                "{}: ok ({} model{})",
                file.display(),
                config.practice.models.len(),
                if config.practice.models.len() == 1 {
                    ""
                } else {
                    "s"
                }
            )?;
        }
        ConfigCommand::Reference => out.write_all(sluice_http::config_reference().as_bytes())?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// docs/config.md is generated; this fails when the code says otherwise.
    #[test]
    fn docs_config_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == sluice_http::config_reference(),
            "docs/config.md is stale: run `cargo run -- config reference > docs/config.md`"
        );
    }
}
