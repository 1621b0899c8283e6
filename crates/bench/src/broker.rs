//! Phase 2, the emulator alone: N messages sent in batches by concurrent senders, then N
//! received and completed in peek-lock by concurrent receivers, through the connector's own
//! Service Bus client (`busdrain_connector::source`). Also used to pre-load the backlogs the
//! drain phases consume.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use busdrain_connector::source::{
    ConnectorSettings, MessageSource as _, OutgoingMessage, ReceiverSettings,
    ServiceBusConnectionString, ServiceBusConnector, SourceEntity,
};
use serde::Serialize;

use crate::workload::Reading;

/// Messages per send call (the sender packs them into as few transfers as the link allows).
pub const SEND_BATCH: usize = 100;
/// Concurrent senders, each on its own link.
pub const SENDERS: usize = 4;
/// Concurrent peek-lock receivers, each on its own link.
pub const RECEIVERS: usize = 8;
/// A batched send normally completes in milliseconds; longer is logged.
const SLOW_SEND: Duration = Duration::from_secs(5);
/// Messages asked for per receive call.
pub const RECEIVE_BATCH: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    /// CPU of the emulator process per 1,000 messages.
    pub emulator_cpu_seconds_per_1000: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerResult {
    pub senders: usize,
    pub send_batch: usize,
    pub receivers: usize,
    pub receive_batch: usize,
    pub send: Throughput,
    pub receive_complete: Throughput,
}

pub async fn connect(connection_string: &str) -> anyhow::Result<Arc<ServiceBusConnector>> {
    let parsed = ServiceBusConnectionString::parse(connection_string)
        .context("invalid emulator connection string")?;
    let connector =
        ServiceBusConnector::connect(ConnectorSettings::from_connection_string(&parsed))
            .await
            .context("cannot connect to the emulator")?;
    Ok(Arc::new(connector))
}

/// Sends and then receives + completes every reading on `queue`.
pub async fn measure(
    connector: &Arc<ServiceBusConnector>,
    queue: &str,
    readings: &Arc<Vec<Reading>>,
    emulator_pid: Option<u32>,
) -> anyhow::Result<BrokerResult> {
    let send = timed(emulator_pid, readings.len() as u64, || {
        send_all(connector, queue, readings)
    })
    .await?;
    let receive_complete = timed(emulator_pid, readings.len() as u64, || {
        receive_and_complete(connector, queue, readings.len() as u64)
    })
    .await?;
    Ok(BrokerResult {
        senders: SENDERS,
        send_batch: SEND_BATCH,
        receivers: RECEIVERS,
        receive_batch: RECEIVE_BATCH,
        send,
        receive_complete,
    })
}

async fn timed<F, Fut>(
    emulator_pid: Option<u32>,
    messages: u64,
    work: F,
) -> anyhow::Result<Throughput>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let cpu_before = emulator_pid.and_then(crate::procstat::cpu_time);
    let started = Instant::now();
    work().await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = emulator_pid.and_then(crate::procstat::cpu_time);
    Ok(Throughput {
        messages,
        seconds,
        messages_per_second: messages as f64 / seconds.max(1e-9),
        emulator_cpu_seconds_per_1000: match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => {
                Some(after.saturating_sub(before).as_secs_f64() / messages.max(1) as f64 * 1000.0)
            }
            _ => None,
        },
    })
}

/// The message carrying `reading`.
pub fn message_of(reading: &Reading) -> OutgoingMessage {
    let mut message = OutgoingMessage::json(reading.to_json());
    message.message_id = Some(format!("reading-{}", reading.seq));
    message
}

/// Sends every reading to `queue` with [`SENDERS`] concurrent senders, [`SEND_BATCH`] per call.
pub async fn send_all(
    connector: &Arc<ServiceBusConnector>,
    queue: &str,
    readings: &Arc<Vec<Reading>>,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let mut sender = connector
            .open_sender(queue)
            .await
            .with_context(|| format!("cannot open a sender on {queue}"))?;
        let (next, readings, queue) = (next.clone(), readings.clone(), queue.to_string());
        tasks.spawn(async move {
            loop {
                let first = next.fetch_add(SEND_BATCH as u64, Ordering::Relaxed) as usize;
                if first >= readings.len() {
                    break;
                }
                let end = (first + SEND_BATCH).min(readings.len());
                let batch = readings[first..end].iter().map(message_of).collect();
                let started = Instant::now();
                sender
                    .send(batch)
                    .await
                    .with_context(|| format!("sending messages {first}..{end} to {queue}"))?;
                if started.elapsed() > SLOW_SEND {
                    // The emulator warns when its own commit is slow; without such a line the
                    // client lost the outcome (fe2o3 0.14.1, see docs/BENCHMARKS.md).
                    tracing::warn!(
                        queue = %queue,
                        messages = end - first,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "a batched send waited abnormally long for its outcome"
                    );
                }
            }
            if let Err(error) = sender.close().await {
                tracing::debug!(%error, "closing a sender");
            }
            anyhow::Ok(())
        });
    }
    join_all(tasks).await
}

/// Receives and completes messages on `queue` with [`RECEIVERS`] concurrent peek-lock
/// receivers until `expected` were completed. Fails if nothing arrives for 30 s.
pub async fn receive_and_complete(
    connector: &Arc<ServiceBusConnector>,
    queue: &str,
    expected: u64,
) -> anyhow::Result<()> {
    const IDLE_LIMIT: Duration = Duration::from_secs(30);
    let completed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let settings = ReceiverSettings {
        prefetch_count: RECEIVE_BATCH as u32,
        ..ReceiverSettings::default()
    };
    for _ in 0..RECEIVERS {
        let entity = SourceEntity::Queue(queue.to_string());
        let mut source = connector
            .open_receiver(&entity, &settings)
            .await
            .with_context(|| format!("cannot open a receiver on {queue}"))?;
        let completed = completed.clone();
        tasks.spawn(async move {
            let mut last_message = Instant::now();
            while completed.load(Ordering::Relaxed) < expected {
                let messages = source
                    .receive(RECEIVE_BATCH, Duration::from_millis(500))
                    .await
                    .with_context(|| format!("receiving from {entity}"))?;
                if messages.is_empty() {
                    if last_message.elapsed() > IDLE_LIMIT {
                        anyhow::bail!(
                            "no message for {IDLE_LIMIT:?} with {} of {expected} completed",
                            completed.load(Ordering::Relaxed)
                        );
                    }
                    continue;
                }
                last_message = Instant::now();
                for message in messages {
                    source
                        .complete(message.lock_token)
                        .await
                        .with_context(|| format!("completing a message of {entity}"))?;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Err(error) = source.close().await {
                tracing::debug!(%error, "closing a receiver");
            }
            anyhow::Ok(())
        });
    }
    join_all(tasks).await
}

async fn join_all(mut tasks: tokio::task::JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    while let Some(joined) = tasks.join_next().await {
        joined.context("a benchmark task panicked")??;
    }
    Ok(())
}
