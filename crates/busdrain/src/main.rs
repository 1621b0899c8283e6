//! The busdrain binary: wires the connector and the emulator behind one CLI.

use clap::Parser;

/// Drain Azure Service Bus into Apache Cassandra, and run a durable local Service Bus.
#[derive(Debug, Parser)]
#[command(name = "busdrain", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
