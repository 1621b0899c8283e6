//! `busdrain send` (not implemented yet).

/// Arguments of `busdrain send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {}

pub async fn execute(_args: SendArgs) -> anyhow::Result<()> {
    anyhow::bail!("`busdrain send` is not implemented yet")
}
