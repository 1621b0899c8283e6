//! Phase 4, the reference: `bench/reference_drain.py` (azure-servicebus + cassandra-driver, the
//! drain a user would write by hand) run as a child process on the same kind of backlog and
//! table. The script reports its own timing (first receive → last completion, like the
//! connector's figure) and its CPU and peak memory from `getrusage`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::cassandra::{count_rows, create_table};
use crate::child;
use crate::procstat;

#[derive(Debug, Clone, Serialize)]
pub struct ReferenceResult {
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub cpu_seconds_per_1000: f64,
    pub peak_rss_mib: f64,
    pub emulator_cpu_seconds_per_1000: Option<f64>,
}

/// What the script prints on its last line.
#[derive(Debug, Deserialize)]
struct ScriptReport {
    messages: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

pub struct ReferenceSetup<'a> {
    pub python: &'a Path,
    pub script: &'a Path,
    pub run_dir: &'a Path,
    pub connection_string: &'a str,
    pub cassandra: &'a str,
    pub session: &'a scylla::client::session::Session,
    pub keyspace: &'a str,
    pub emulator_pid: Option<u32>,
}

pub async fn drain(
    setup: &ReferenceSetup<'_>,
    queue: &str,
    table: &str,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<ReferenceResult> {
    create_table(setup.session, setup.keyspace, table).await?;
    let log = setup.run_dir.join("reference.log");
    let args = vec![
        setup.script.display().to_string(),
        "--connection-string".to_string(),
        setup.connection_string.to_string(),
        "--queue".to_string(),
        queue.to_string(),
        "--cassandra".to_string(),
        setup.cassandra.to_string(),
        "--keyspace".to_string(),
        setup.keyspace.to_string(),
        "--table".to_string(),
        table.to_string(),
        "--expect".to_string(),
        expected.to_string(),
    ];
    let emulator_before = setup.emulator_pid.and_then(procstat::cpu_time);
    let started = Instant::now();
    let mut process = child::spawn(setup.python, &args, &log)?;
    let status = tokio::time::timeout(timeout, process.wait())
        .await
        .with_context(|| format!("the reference drain did not finish within {timeout:?}"))?
        .context("cannot wait for the reference drain")?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "reference drain exited"
    );
    let emulator_after = setup.emulator_pid.and_then(procstat::cpu_time);
    if !status.success() {
        anyhow::bail!(
            "the reference drain failed ({status}):\n{}",
            child::log_tail(&log)
        );
    }
    let output =
        std::fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    let report: ScriptReport = output
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .with_context(|| {
            format!(
                "the reference drain printed no report:\n{}",
                child::log_tail(&log)
            )
        })?;
    let rows = count_rows(setup.session, setup.keyspace, table).await?;
    if rows as u64 != expected || report.messages != expected {
        anyhow::bail!(
            "the reference drain handled {} messages and {table} holds {rows} rows; expected {expected}",
            report.messages
        );
    }
    let per_1000 = |seconds: f64| seconds / expected.max(1) as f64 * 1000.0;
    Ok(ReferenceResult {
        messages: report.messages,
        seconds: report.seconds,
        messages_per_second: report.messages as f64 / report.seconds.max(1e-9),
        cpu_seconds_per_1000: per_1000(report.cpu_seconds),
        peak_rss_mib: report.peak_rss_mib,
        emulator_cpu_seconds_per_1000: match (emulator_before, emulator_after) {
            (Some(a), Some(b)) => Some(per_1000(b.saturating_sub(a).as_secs_f64())),
            _ => None,
        },
    })
}
