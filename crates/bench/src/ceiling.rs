//! Phase 1, the ceiling: the fastest this Cassandra node takes the benchmark's rows from a tight
//! scylla-driver loop on this machine. Prepared INSERTs, token-aware, either one row per request
//! or partition-grouped UNLOGGED batches, at several concurrency levels; the fastest wins and
//! then writes all N rows into a fresh table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::stream::{self, TryStreamExt as _};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::Serialize;

use crate::cassandra::{create_table, insert_cql, WRITE_CONSISTENCY};
use crate::procstat;
use crate::workload::Reading;

/// Rows per batch: the connector's default `batch.max_rows`.
const BATCH_ROWS: usize = 32;

/// How requests are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteShape {
    /// One prepared INSERT per row.
    SingleRow,
    /// UNLOGGED batches of up to 32 rows of one partition (rows grouped by device over the
    /// whole data set: the best grouping any streaming writer could hope for).
    PartitionBatch,
    /// The same, but rows grouped only within consecutive windows of 256 (the connector's
    /// default `receive_batch`): what a streaming writer can group from one receive.
    WindowedPartitionBatch,
}

/// Rows a streaming writer sees at once in [`WriteShape::WindowedPartitionBatch`].
const WINDOW_ROWS: usize = 256;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct WriteSettings {
    pub shape: WriteShape,
    /// Requests in flight.
    pub concurrency: usize,
}

/// The settings tried, in order.
pub const CANDIDATES: [WriteSettings; 8] = [
    WriteSettings {
        shape: WriteShape::SingleRow,
        concurrency: 64,
    },
    WriteSettings {
        shape: WriteShape::SingleRow,
        concurrency: 256,
    },
    WriteSettings {
        shape: WriteShape::SingleRow,
        concurrency: 1024,
    },
    WriteSettings {
        shape: WriteShape::PartitionBatch,
        concurrency: 8,
    },
    WriteSettings {
        shape: WriteShape::PartitionBatch,
        concurrency: 32,
    },
    WriteSettings {
        shape: WriteShape::PartitionBatch,
        concurrency: 128,
    },
    WriteSettings {
        shape: WriteShape::WindowedPartitionBatch,
        concurrency: 32,
    },
    WriteSettings {
        shape: WriteShape::WindowedPartitionBatch,
        concurrency: 128,
    },
];

#[derive(Debug, Clone, Serialize)]
pub struct WriteRun {
    pub settings: WriteSettings,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// CPU of the benchmark process (the driver) per 1,000 rows.
    pub driver_cpu_seconds_per_1000: f64,
    /// CPU of the Cassandra process(es) per 1,000 rows, when found.
    pub cassandra_cpu_seconds_per_1000: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CeilingResult {
    /// Each candidate on the tuning sample.
    pub trials: Vec<WriteRun>,
    /// The fastest candidate on all N rows (a fresh table).
    pub best: WriteRun,
}

impl CeilingResult {
    /// The fastest trial of one shape.
    pub fn best_of(&self, shape: WriteShape) -> Option<&WriteRun> {
        self.trials
            .iter()
            .filter(|run| run.settings.shape == shape)
            .max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
    }
}

/// Runs the trials on the first `sample` readings (into `{table}_tuning`), then the winner on
/// all of them (into `table`).
pub async fn measure(
    session: &Arc<Session>,
    keyspace: &str,
    table: &str,
    readings: &[Reading],
    sample: usize,
) -> anyhow::Result<CeilingResult> {
    let tuning_table = format!("{table}_tuning");
    create_table(session, keyspace, &tuning_table).await?;
    create_table(session, keyspace, table).await?;
    let tuning = prepare(session, keyspace, &tuning_table).await?;
    let sample = &readings[..sample.min(readings.len())];

    let mut trials = Vec::new();
    for settings in CANDIDATES {
        let run = write_all(session, &tuning, sample, settings).await?;
        tracing::info!(
            shape = ?settings.shape,
            concurrency = settings.concurrency,
            rows_per_second = run.rows_per_second as u64,
            "ceiling trial"
        );
        trials.push(run);
    }
    let winner = trials
        .iter()
        .max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
        .map(|run| run.settings)
        .context("no ceiling trial ran")?;
    let insert = prepare(session, keyspace, table).await?;
    let best = write_all(session, &insert, readings, winner).await?;
    Ok(CeilingResult { trials, best })
}

async fn prepare(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> anyhow::Result<PreparedStatement> {
    let cql = insert_cql(keyspace, table);
    let mut insert = session
        .prepare(cql.as_str())
        .await
        .with_context(|| format!("cannot prepare `{cql}`"))?;
    insert.set_is_idempotent(true);
    insert.set_consistency(WRITE_CONSISTENCY);
    Ok(insert)
}

/// The bound values of one row: the columns, then `USING TIMESTAMP` (the event time, as the
/// connector uses the enqueued time) and `TTL` 0.
type RowValues<'a> = (&'a str, i64, CqlTimestamp, f64, CqlTimestamp, i64, i32);

fn row_values(reading: &Reading, now_ms: i64) -> RowValues<'_> {
    (
        reading.device_id.as_str(),
        reading.seq,
        CqlTimestamp(reading.ts_ms),
        reading.temperature,
        CqlTimestamp(now_ms),
        reading.ts_ms * 1000,
        0,
    )
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Rows grouped by partition (device), cut into batches of at most [`BATCH_ROWS`].
fn partition_batches(readings: &[Reading]) -> Vec<Vec<&Reading>> {
    let mut by_device: BTreeMap<&str, Vec<&Reading>> = BTreeMap::new();
    for reading in readings {
        by_device
            .entry(reading.device_id.as_str())
            .or_default()
            .push(reading);
    }
    by_device
        .into_values()
        .flat_map(|rows| {
            rows.chunks(BATCH_ROWS)
                .map(<[&Reading]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes every reading with the given settings and times it.
pub async fn write_all(
    session: &Session,
    insert: &PreparedStatement,
    readings: &[Reading],
    settings: WriteSettings,
) -> anyhow::Result<WriteRun> {
    let cassandra = procstat::pids_with_cmdline("CassandraDaemon");
    let own_pid = std::process::id();
    let cpu_before = procstat::cpu_time(own_pid);
    let cassandra_before = procstat::total_cpu_time(&cassandra);
    let started = Instant::now();
    match settings.shape {
        WriteShape::SingleRow => {
            stream::iter(readings.iter().map(Ok))
                .try_for_each_concurrent(settings.concurrency, |reading| async move {
                    session
                        .execute_unpaged(insert, row_values(reading, now_ms()))
                        .await
                        .map(drop)
                        .with_context(|| format!("ceiling: writing row {}", reading.seq))
                })
                .await?;
        }
        WriteShape::PartitionBatch | WriteShape::WindowedPartitionBatch => {
            let batches = if settings.shape == WriteShape::PartitionBatch {
                partition_batches(readings)
            } else {
                readings
                    .chunks(WINDOW_ROWS)
                    .flat_map(partition_batches)
                    .collect()
            };
            stream::iter(batches.into_iter().map(Ok))
                .try_for_each_concurrent(settings.concurrency, |rows| async move {
                    let mut batch = Batch::new(BatchType::Unlogged);
                    for _ in &rows {
                        batch.append_statement(insert.clone());
                    }
                    batch.set_is_idempotent(true);
                    batch.set_consistency(WRITE_CONSISTENCY);
                    let now = now_ms();
                    let values: Vec<RowValues<'_>> =
                        rows.iter().map(|r| row_values(r, now)).collect();
                    session
                        .batch(&batch, values)
                        .await
                        .map(drop)
                        .with_context(|| format!("ceiling: writing a batch of {} rows", rows.len()))
                })
                .await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = readings.len() as u64;
    let per_1000 = |cpu: Duration| cpu.as_secs_f64() / rows.max(1) as f64 * 1000.0;
    let driver_cpu = match (cpu_before, procstat::cpu_time(own_pid)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let cassandra_cpu = procstat::total_cpu_time(&cassandra).saturating_sub(cassandra_before);
    Ok(WriteRun {
        settings,
        rows,
        seconds,
        rows_per_second: rows as f64 / seconds.max(1e-9),
        driver_cpu_seconds_per_1000: per_1000(driver_cpu),
        cassandra_cpu_seconds_per_1000: (!cassandra.is_empty()).then(|| per_1000(cassandra_cpu)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::readings;

    #[test]
    fn batches_hold_one_partition_and_at_most_32_rows() {
        let all = readings(10_000, 0);
        let batches = partition_batches(&all);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 10_000);
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= BATCH_ROWS);
            assert!(batch.iter().all(|r| r.device_id == batch[0].device_id));
        }
        // 100 devices × 100 rows each → 4 batches per device (32+32+32+4).
        assert_eq!(batches.len(), 400);
        // Within a window of 256 consecutive readings a device has 2 or 3 rows.
        let windowed: Vec<Vec<&Reading>> = all
            .chunks(WINDOW_ROWS)
            .flat_map(partition_batches)
            .collect();
        assert!(windowed.iter().all(|batch| (1..=3).contains(&batch.len())));
    }
}
