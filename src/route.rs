//! `sluice route` (being built by the router work; replaced wholesale there).

/// Arguments of `sluice route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {}

pub fn run(_args: RouteArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("sluice route is not available in this build yet")
}
