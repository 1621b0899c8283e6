//! `busdrain validate` (not implemented yet).

/// Arguments of `busdrain validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

pub async fn execute(_args: ValidateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`busdrain validate` is not implemented yet")
}
