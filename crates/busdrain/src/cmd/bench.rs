//! `busdrain bench`: the benchmark of docs/BENCHMARKS.md in one command. Flags are parsed and
//! checked here; the phases live in `busdrain-bench`.

use std::path::PathBuf;

use anyhow::Context as _;
use busdrain_bench::{BenchOptions, ReferenceOptions};

const AFTER_HELP: &str = "\
Phases, all with the same generated rows and table shape, in one fresh keyspace:
  1. ceiling     the scylla driver writes the rows straight into Cassandra (best of several
                 request shapes and concurrency levels, tried on --ceiling-sample rows)
  2. emulator    `busdrain emulator` (child, fresh durable store): batched sends, then
                 peek-lock receive + complete
  3. end to end  `busdrain run` (child) drains the pre-loaded backlog; its CPU and peak RSS;
                 then latency at --latency-rate
  4. reference   bench/reference_drain.py (azure-servicebus + cassandra-driver) drains the
                 same backlog (skip with --skip-reference)

Example (the full run of docs/BENCHMARKS.md):
  cargo build --release -p busdrain
  target/release/busdrain bench --rows 200000 --json bench-result.json";

/// Arguments of `busdrain bench`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct BenchArgs {
    /// Messages (and rows) per phase.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    rows: u64,

    /// Write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Skip the Python reference drain.
    #[arg(long)]
    skip_reference: bool,

    /// Cassandra node (`host:port`). The benchmark creates, and drops afterwards, a keyspace.
    #[arg(
        long,
        default_value = "127.0.0.1:9042",
        env = "BUSDRAIN_BENCH_CASSANDRA"
    )]
    cassandra: String,

    /// Rows per ceiling trial (capped at --rows); the fastest setting then writes all rows.
    /// Large enough that a trial lasts about a second: a shorter one is mostly noise.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(100..))]
    ceiling_sample: u64,

    /// Connector `receivers` (default: the connector's default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    receivers: Option<u32>,

    /// Connector `receive_batch` (default: the connector's default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5000))]
    receive_batch: Option<u32>,

    /// Send rate of the latency run, messages per second.
    #[arg(long, default_value_t = 500.0)]
    latency_rate: f64,

    /// Duration of the latency run, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    latency_seconds: u64,

    /// Python interpreter with bench/requirements.txt installed (default: .venv/bin/python if
    /// present, else python3).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,

    /// The reference drain script.
    #[arg(long, value_name = "PATH", default_value = "bench/reference_drain.py")]
    reference_script: PathBuf,

    /// Keep the keyspace and the run directory (configs, child logs) for inspection.
    #[arg(long)]
    keep: bool,

    /// Only the end-to-end drain, for the connector's peak RSS with a large backlog: --rows
    /// messages are written straight into the emulator's store (no AMQP send), then
    /// `busdrain run` drains them. Prints the drain figures (and writes them to --json).
    #[arg(long)]
    drain_only: bool,
}

pub async fn execute(args: BenchArgs) -> anyhow::Result<()> {
    if !(args.latency_rate.is_finite() && args.latency_rate > 0.0) {
        anyhow::bail!(
            "--latency-rate must be a positive number of messages per second, got {}",
            args.latency_rate
        );
    }
    let reference = if args.skip_reference {
        None
    } else {
        if !args.reference_script.is_file() {
            anyhow::bail!(
                "--reference-script {} not found (run from the repository root, or pass \
                 --skip-reference)",
                args.reference_script.display()
            );
        }
        let python = args.python.clone().unwrap_or_else(|| {
            let venv = PathBuf::from(".venv/bin/python");
            if venv.is_file() {
                venv
            } else {
                PathBuf::from("python3")
            }
        });
        Some(ReferenceOptions {
            python,
            script: args.reference_script.clone(),
        })
    };
    let busdrain = std::env::current_exe().context("cannot locate the busdrain binary")?;
    let options = BenchOptions {
        rows: args.rows,
        ceiling_sample: args.ceiling_sample.min(args.rows),
        cassandra: args.cassandra.clone(),
        busdrain,
        receivers: args.receivers,
        receive_batch: args.receive_batch,
        latency_rate: args.latency_rate,
        latency_messages: ((args.latency_rate * args.latency_seconds as f64) as u64).max(1),
        reference,
        keep: args.keep,
    };
    if args.drain_only {
        let result = busdrain_bench::backlog::run(&options).await?;
        println!("{}", busdrain_bench::report::backlog_table(&result));
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&result).context("cannot encode the result")?;
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("JSON result: {}", path.display());
        }
        return Ok(());
    }
    let report = busdrain_bench::run(&options).await?;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("JSON result: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_starts() {
        assert!(parse(&["--rows", "0"]).is_err());
        assert!(parse(&["--rows", "ten"]).is_err());
        assert!(parse(&["--receivers", "0"]).is_err());
        assert!(parse(&["--latency-seconds", "0"]).is_err());
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.rows, 20_000);
        assert_eq!(defaults.cassandra, "127.0.0.1:9042");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let zero_rate = parse(&["--latency-rate", "0"]).unwrap();
        let error = runtime.block_on(execute(zero_rate)).unwrap_err();
        assert!(format!("{error:#}").contains("--latency-rate"), "{error:#}");
        let missing_script = parse(&["--reference-script", "/nonexistent/drain.py"]).unwrap();
        let error = runtime.block_on(execute(missing_script)).unwrap_err();
        assert!(
            format!("{error:#}").contains("--skip-reference"),
            "{error:#}"
        );
    }
}
