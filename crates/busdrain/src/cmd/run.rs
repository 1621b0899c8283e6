//! `busdrain run` (not implemented yet).

/// Arguments of `busdrain run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub async fn execute(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`busdrain run` is not implemented yet")
}
