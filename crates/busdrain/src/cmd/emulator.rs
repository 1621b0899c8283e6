//! `busdrain emulator` (not implemented yet).

/// Arguments of `busdrain emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {}

pub async fn execute(_args: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("`busdrain emulator` is not implemented yet")
}
