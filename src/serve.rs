//! `sluice serve` (being built by the HTTP work; replaced wholesale there).

/// Arguments of `sluice serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("sluice serve is not available in this build yet")
}
