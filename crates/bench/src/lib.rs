//! `busdrain bench`: one invocation that measures, with the same rows and table shape,
//! 1. the Cassandra write ceiling (a tight scylla-driver loop),
//! 2. the emulator alone (batched sends, peek-lock receive + complete),
//! 3. the connector end to end (drain of a pre-loaded backlog; CPU, memory, latency),
//! 4. the hand-written Python reference drain,
//!
//! and reports absolute figures and ratios. See `docs/BENCHMARKS.md`.

pub mod backlog;
pub mod broker;
pub mod cassandra;
pub mod ceiling;
mod child;
pub mod connector;
pub mod drain;
pub mod emulator;
pub mod procstat;
pub mod reference;
pub mod report;
mod scope;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use report::BenchReport;

/// Everything one benchmark run needs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Messages (rows) per phase.
    pub rows: u64,
    /// Rows per ceiling trial (the winner then writes all `rows`).
    pub ceiling_sample: u64,
    /// `host:port` of a Cassandra node.
    pub cassandra: String,
    /// The `busdrain` binary started as `busdrain emulator` and `busdrain run`.
    pub busdrain: PathBuf,
    /// Connector `receivers` / `receive_batch` (`None`: the connector's defaults).
    pub receivers: Option<u32>,
    pub receive_batch: Option<u32>,
    /// Rate and count of the latency run.
    pub latency_rate: f64,
    pub latency_messages: u64,
    /// `None` skips the Python reference.
    pub reference: Option<ReferenceOptions>,
    /// Keep the keyspace and the run directory (logs, configs) afterwards.
    pub keep: bool,
}

#[derive(Debug, Clone)]
pub struct ReferenceOptions {
    pub python: PathBuf,
    pub script: PathBuf,
}

/// Runs every phase in order and returns the report. Child processes are killed on any error.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let scope = scope::RunScope::open(options).await?;
    tracing::info!(keyspace = %scope.keyspace, run_dir = %scope.run_dir.path().display(), "benchmark starting");
    let result = run_phases(
        options,
        &scope.session,
        &scope.keyspace,
        scope.run_dir.path(),
    )
    .await;
    scope.close(options.keep).await;
    result
}

async fn run_phases(
    options: &BenchOptions,
    session: &Arc<scylla::client::session::Session>,
    keyspace: &str,
    run_dir: &std::path::Path,
) -> anyhow::Result<BenchReport> {
    let start_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let readings = Arc::new(workload::readings(options.rows, start_ms));

    tracing::info!(rows = options.rows, "phase 1/4: Cassandra write ceiling");
    let ceiling = ceiling::measure(
        session,
        keyspace,
        "ceiling",
        &readings,
        options.ceiling_sample as usize,
    )
    .await
    .context("ceiling phase")?;

    // The drain backlogs go straight into the store before the emulator starts: pre-loading
    // them through AMQP risks the client's lost-outcome race (see `backlog`).
    let mut backlogs = vec![emulator::DRAIN_QUEUE];
    if options.reference.is_some() {
        backlogs.push(emulator::REFERENCE_QUEUE);
    }
    tracing::info!(queues = ?backlogs, rows = options.rows, "pre-loading the drain backlogs into the store");
    let namespace = busdrain_broker::NamespaceConfig::from_json_str(&emulator::namespace_config())
        .context("the benchmark namespace config is invalid")?;
    backlog::preload_store(
        &emulator::data_dir(run_dir),
        namespace,
        &backlogs,
        readings.as_slice(),
    )
    .await?;

    let emulator = emulator::EmulatorProcess::start(&options.busdrain, run_dir).await?;
    let result = emulator_phases(options, session, keyspace, run_dir, &readings, &emulator).await;
    if result.is_err() {
        tracing::error!(log = %emulator.log().display(), "emulator log (kept with --keep)");
    }
    emulator.stop().await;
    let (broker, drain, latency, reference) = result?;
    Ok(BenchReport::new(
        options, ceiling, broker, drain, latency, reference,
    ))
}

type EmulatorPhases = (
    broker::BrokerResult,
    drain::DrainResult,
    drain::LatencyResult,
    Option<reference::ReferenceResult>,
);

async fn emulator_phases(
    options: &BenchOptions,
    session: &Arc<scylla::client::session::Session>,
    keyspace: &str,
    run_dir: &std::path::Path,
    readings: &Arc<Vec<workload::Reading>>,
    emulator: &emulator::EmulatorProcess,
) -> anyhow::Result<EmulatorPhases> {
    let connection_string = emulator.connection_string();
    let client = broker::connect(&connection_string).await?;

    tracing::info!("phase 2/4: emulator send and receive + complete");
    let broker_result = broker::measure(&client, emulator::BROKER_QUEUE, readings, emulator.pid())
        .await
        .context("emulator phase")?;

    tracing::info!("phase 3/4: connector end to end (backlog pre-loaded in the store)");
    let setup = drain::DrainSetup {
        busdrain: &options.busdrain,
        run_dir,
        connection_string: &connection_string,
        cassandra: &options.cassandra,
        session,
        keyspace,
        emulator_pid: emulator.pid(),
        receivers: options.receivers,
        receive_batch: options.receive_batch,
    };
    let drain_result = drain::drain(
        &setup,
        "connector-drain",
        emulator::DRAIN_QUEUE,
        "drain",
        options.rows,
    )
    .await
    .context("end-to-end drain phase")?;
    tracing::info!(
        rate = options.latency_rate,
        messages = options.latency_messages,
        "phase 3/4: latency at a fixed rate"
    );
    let latency_result = drain::latency(
        &setup,
        &client,
        emulator::LATENCY_QUEUE,
        "latency",
        options.latency_rate,
        options.latency_messages,
    )
    .await
    .context("latency phase")?;

    let reference_result = match &options.reference {
        None => None,
        Some(reference) => {
            tracing::info!("phase 4/4: Python reference drain (backlog pre-loaded in the store)");
            let setup = reference::ReferenceSetup {
                python: &reference.python,
                script: &reference.script,
                run_dir,
                connection_string: &connection_string,
                cassandra: &options.cassandra,
                session,
                keyspace,
                emulator_pid: emulator.pid(),
            };
            // Generous: a slow reference is a result, not an error, up to a point.
            let timeout = Duration::from_secs(120 + options.rows / 100);
            Some(
                reference::drain(
                    &setup,
                    emulator::REFERENCE_QUEUE,
                    "reference",
                    options.rows,
                    timeout,
                )
                .await
                .context("reference phase")?,
            )
        }
    };
    client.close().await;
    Ok((
        broker_result,
        drain_result,
        latency_result,
        reference_result,
    ))
}
