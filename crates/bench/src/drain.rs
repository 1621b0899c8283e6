//! Phase 3, end to end: the connector (`busdrain run`, a child process) drains a pre-loaded
//! backlog into a fresh table; then, in a second run, messages sent at a fixed moderate rate
//! carry their send time so the write latency can be read back from the table.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use busdrain_connector::source::ServiceBusConnector;
use futures::TryStreamExt as _;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use serde::Serialize;

use crate::broker::message_of;
use crate::cassandra::{count_rows, create_table};
use crate::connector::{ConnectorProcess, Progress, RouteSpec};
use crate::procstat;
use crate::workload::Reading;

/// A drain fails when no message completes for this long.
const STALL_LIMIT: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Where the drain phases run.
pub struct DrainSetup<'a> {
    pub busdrain: &'a Path,
    pub run_dir: &'a Path,
    pub connection_string: &'a str,
    pub cassandra: &'a str,
    pub session: &'a Session,
    pub keyspace: &'a str,
    pub emulator_pid: Option<u32>,
    pub receivers: Option<u32>,
    pub receive_batch: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    pub messages: u64,
    /// From the first message received to the last one completed.
    pub seconds: f64,
    pub messages_per_second: f64,
    /// From process start (config, schema validation, connecting) to the last completion.
    pub seconds_including_startup: f64,
    /// Connector user + system CPU during the drain, per 1,000 messages.
    pub connector_cpu_seconds_per_1000: f64,
    /// Connector CPU over its whole life up to the last completion, per 1,000 messages.
    pub connector_cpu_seconds_per_1000_including_startup: f64,
    /// Peak resident set (VmHWM) of the connector.
    pub connector_peak_rss_mib: f64,
    pub emulator_cpu_seconds_per_1000: Option<f64>,
    /// Includes whatever else the shared node was doing.
    pub cassandra_cpu_seconds_per_1000: Option<f64>,
    pub dead_lettered: u64,
    /// Average rows per write request (1 = single INSERT, more = a partition batch).
    pub rows_per_write_request: f64,
}

/// Drains `expected` pre-loaded messages of `queue` into a fresh `table`.
pub async fn drain(
    setup: &DrainSetup<'_>,
    name: &str,
    queue: &str,
    table: &str,
    expected: u64,
) -> anyhow::Result<DrainResult> {
    create_table(setup.session, setup.keyspace, table).await?;
    let route = route(setup, queue, table);
    let cassandra_pids = procstat::pids_with_cmdline("CassandraDaemon");
    let spawned = Instant::now();
    let mut connector = ConnectorProcess::start(
        setup.busdrain,
        setup.run_dir,
        name,
        setup.connection_string,
        setup.cassandra,
        &route,
    )
    .await?;
    let pid = connector.pid().context("the connector has no process id")?;

    let mut first: Option<(Instant, Duration, Option<Duration>, Duration)> = None;
    let mut last_progress = (Instant::now(), Progress::default());
    let done = loop {
        connector.check_alive()?;
        let progress = connector.progress().await.unwrap_or(last_progress.1);
        let now = Instant::now();
        if first.is_none() && progress.received > 0 {
            first = Some((
                now,
                procstat::cpu_time(pid).unwrap_or_default(),
                setup.emulator_pid.and_then(procstat::cpu_time),
                procstat::total_cpu_time(&cassandra_pids),
            ));
        }
        if progress.completed + progress.dead_lettered >= expected {
            break (now, progress);
        }
        if progress != last_progress.1 {
            last_progress = (now, progress);
        } else if now - last_progress.0 > STALL_LIMIT {
            anyhow::bail!(
                "the connector stalled at {progress:?} of {expected} messages (log: {})",
                connector.log().display()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let (done_at, progress) = done;
    let cpu_total = procstat::cpu_time(pid).unwrap_or_default();
    let peak_rss = procstat::peak_rss_bytes(pid).unwrap_or(0);
    let emulator_cpu = setup.emulator_pid.and_then(procstat::cpu_time);
    let cassandra_cpu = procstat::total_cpu_time(&cassandra_pids);
    connector.stop().await;

    let (first_at, cpu_first, emulator_first, cassandra_first) =
        first.context("the connector completed messages without receiving any")?;
    let seconds = (done_at - first_at).as_secs_f64().max(1e-9);
    let per_1000 = |cpu: Duration| cpu.as_secs_f64() / expected.max(1) as f64 * 1000.0;
    let rows = count_rows(setup.session, setup.keyspace, table).await?;
    if rows as u64 != progress.completed {
        anyhow::bail!(
            "{table} holds {rows} rows but the connector completed {} messages",
            progress.completed
        );
    }
    Ok(DrainResult {
        messages: expected,
        seconds,
        messages_per_second: expected as f64 / seconds,
        seconds_including_startup: (done_at - spawned).as_secs_f64(),
        connector_cpu_seconds_per_1000: per_1000(cpu_total.saturating_sub(cpu_first)),
        connector_cpu_seconds_per_1000_including_startup: per_1000(cpu_total),
        connector_peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
        emulator_cpu_seconds_per_1000: match (emulator_first, emulator_cpu) {
            (Some(a), Some(b)) => Some(per_1000(b.saturating_sub(a))),
            _ => None,
        },
        cassandra_cpu_seconds_per_1000: (!cassandra_pids.is_empty())
            .then(|| per_1000(cassandra_cpu.saturating_sub(cassandra_first))),
        dead_lettered: progress.dead_lettered,
        rows_per_write_request: progress.rows_written as f64
            / progress.write_requests.max(1) as f64,
    })
}

fn route(setup: &DrainSetup<'_>, queue: &str, table: &str) -> RouteSpec {
    RouteSpec {
        queue: queue.to_string(),
        keyspace: setup.keyspace.to_string(),
        table: table.to_string(),
        receivers: setup.receivers,
        receive_batch: setup.receive_batch,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    /// Offered rate, messages per second.
    pub rate: f64,
    pub messages: u64,
    /// Messages sent but not written within a minute after the last send (a bug when not 0;
    /// the percentiles are over the written ones only).
    pub undelivered: u64,
    /// Milliseconds from the send call to the connector stamping the row (`now()` at mapping),
    /// i.e. broker + receive + decode + map; the Cassandra write itself (~1 ms) is not included.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs a connector on an empty `queue`, sends `messages` at `rate` per second with the send
/// time as the reading's `ts`, waits for all, and reads `ingested - ts` back from the table.
pub async fn latency(
    setup: &DrainSetup<'_>,
    sender_client: &Arc<ServiceBusConnector>,
    queue: &str,
    table: &str,
    rate: f64,
    messages: u64,
) -> anyhow::Result<LatencyResult> {
    create_table(setup.session, setup.keyspace, table).await?;
    let route = route(setup, queue, table);
    let mut connector = ConnectorProcess::start(
        setup.busdrain,
        setup.run_dir,
        "connector-latency",
        setup.connection_string,
        setup.cassandra,
        &route,
    )
    .await?;
    connector.wait_ready(Duration::from_secs(60)).await?;
    send_paced(sender_client, queue, rate, messages).await?;
    let deadline = Instant::now() + STALL_LIMIT;
    loop {
        connector.check_alive()?;
        let progress = connector.progress().await?;
        if progress.completed + progress.dead_lettered >= messages {
            break;
        }
        if Instant::now() > deadline {
            // Reported, not fatal: the other figures of the run stay valid, and the
            // percentiles say how many messages they are missing.
            tracing::error!(
                ?progress,
                messages,
                "latency run: not every message was written within {STALL_LIMIT:?} after sending"
            );
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    connector.stop().await;

    let mut latencies = read_latencies(setup.session, setup.keyspace, table).await?;
    latencies.sort_by(f64::total_cmp);
    Ok(LatencyResult {
        rate,
        messages,
        undelivered: messages.saturating_sub(latencies.len() as u64),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}

/// One sender; every 20 ms it sends the messages due by then, each stamped when built.
async fn send_paced(
    client: &Arc<ServiceBusConnector>,
    queue: &str,
    rate: f64,
    messages: u64,
) -> anyhow::Result<()> {
    const TICK: Duration = Duration::from_millis(20);
    let mut sender = client
        .open_sender(queue)
        .await
        .with_context(|| format!("cannot open a sender on {queue}"))?;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < messages {
        let due = ((started.elapsed().as_secs_f64() * rate) as u64 + 1).min(messages);
        if due > sent {
            let now_ms =
                (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            let batch = (sent..due)
                .map(|seq| message_of(&Reading::new(seq, now_ms)))
                .collect();
            sender
                .send(batch)
                .await
                .with_context(|| format!("sending paced messages to {queue}"))?;
            sent = due;
        }
        tokio::time::sleep(TICK).await;
    }
    if let Err(error) = sender.close().await {
        tracing::debug!(%error, "closing the paced sender");
    }
    Ok(())
}

async fn read_latencies(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> anyhow::Result<Vec<f64>> {
    let pager = session
        .query_iter(format!("SELECT ts, ingested FROM {keyspace}.{table}"), ())
        .await
        .with_context(|| format!("cannot read {keyspace}.{table}"))?;
    let rows: Vec<(CqlTimestamp, CqlTimestamp)> = pager
        .rows_stream::<(CqlTimestamp, CqlTimestamp)>()
        .context("unexpected column types")?
        .try_collect()
        .await
        .with_context(|| format!("cannot read {keyspace}.{table}"))?;
    Ok(rows
        .into_iter()
        .map(|(sent, ingested)| (ingested.0 - sent.0) as f64)
        .collect())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
