//! The busdrain binary: parses the command line, sets up logging, and hands each
//! subcommand to its module in `cmd/`. It owns no behaviour of its own; the
//! connector and the emulator live in their crates.

mod cmd;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Drain Azure Service Bus queues and subscriptions into Apache Cassandra, and run a
/// durable, Service Bus-compatible broker for local development and CI.
#[derive(Debug, Parser)]
#[command(name = "busdrain", version, about, long_about = None)]
struct Cli {
    /// Log format: `pretty` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "BUSDRAIN_LOG_FORMAT")]
    log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `busdrain_connector=debug,info`.
    #[arg(long, global = true, default_value = "info", env = "BUSDRAIN_LOG")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the connector: drain the configured routes into Cassandra until stopped.
    Run(cmd::run::RunArgs),
    /// Check a connector config (syntax, and every route against the live schema) without consuming.
    Validate(cmd::validate::ValidateArgs),
    /// Send sample JSON messages to a queue or topic (for demos, tests and benchmarks).
    Send(cmd::send::SendArgs),
    /// Run the durable Service Bus-compatible AMQP 1.0 emulator.
    Emulator(cmd::emulator::EmulatorArgs),
    /// List a queue's or subscription's dead-letter queue with each message's reason.
    Dlq(cmd::dlq::DlqArgs),
    /// Benchmark: Cassandra ceiling, emulator, connector end to end, Python reference.
    Bench(cmd::bench::BenchArgs),
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid --log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(cli.log_format, &cli.log) {
        eprintln!("error: {error:#}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cmd::run::execute(args).await,
            Command::Validate(args) => cmd::validate::execute(args).await,
            Command::Send(args) => cmd::send::execute(args).await,
            Command::Emulator(args) => cmd::emulator::execute(args).await,
            Command::Bench(args) => cmd::bench::execute(args).await,
            Command::Dlq(args) => cmd::dlq::execute(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
