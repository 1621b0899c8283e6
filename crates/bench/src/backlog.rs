//! `busdrain bench --drain-only`: the connector's drain of a large backlog, with the backlog
//! written straight into the emulator's store before the emulator starts.
//!
//! Pre-loading through AMQP is not reliable at this size: the AMQP client the connector uses
//! (fe2o3-amqp 0.14.1, through azservicebus) registers a send's outcome only after handing the
//! transfer to its session task, so when the emulator's disposition arrives first (sub-
//! millisecond on loopback, while the sending thread is descheduled on a busy machine) the
//! outcome is dropped and the send times out after 60 s (see docs/BENCHMARKS.md). Writing the
//! store directly also makes the pre-load take seconds instead of minutes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use busdrain_broker::{Broker, BrokerLimits, EntityPath, NamespaceConfig, NewMessage};
use bytes::Bytes;
use fe2o3_amqp_types::messaging::{Message, Properties};
use fe2o3_amqp_types::primitives::{Binary, Symbol};
use serde::Serialize;

use crate::workload::Reading;
use crate::{drain, emulator, BenchOptions};

/// Messages per broker send while pre-loading (one group commit each).
const PRELOAD_BATCH: usize = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct BacklogResult {
    /// Messages written into the store before the emulator started.
    pub preloaded: u64,
    pub preload_seconds: f64,
    pub drain: drain::DrainResult,
}

/// The AMQP bare message (properties + one data section) a Service Bus client sends for
/// `reading`: what the emulator stores as a message's payload.
pub fn bare_message(reading: &Reading) -> anyhow::Result<Bytes> {
    let message = Message::builder()
        .properties(
            Properties::builder()
                .message_id(format!("reading-{}", reading.seq))
                .content_type(Symbol::from("application/json"))
                .build(),
        )
        .data(Binary::from(reading.to_json()))
        .build();
    let buffer =
        serde_amqp::to_vec(&fe2o3_amqp_types::messaging::message::__private::Serializable(message))
            .context("cannot encode a message")?;
    Ok(Bytes::from(buffer))
}

/// Writes `readings` into each of `queues` of the store in `data_dir` (created if needed),
/// durably. The store must not be open elsewhere (the emulator is started afterwards).
pub async fn preload_store(
    data_dir: &Path,
    namespace: NamespaceConfig,
    queues: &[&str],
    readings: &[Reading],
) -> anyhow::Result<()> {
    let broker = Broker::open(data_dir, namespace, BrokerLimits::default())
        .context("cannot open the emulator store for pre-loading")?;
    let result = preload_queues(&broker, queues, readings).await;
    broker.close();
    result
}

async fn preload_queues(
    broker: &Broker,
    queues: &[&str],
    readings: &[Reading],
) -> anyhow::Result<()> {
    for &queue in queues {
        let entity = broker
            .entity(&EntityPath::entity(queue))
            .with_context(|| format!("no queue {queue} in the benchmark namespace"))?;
        preload_queue(&entity, readings)
            .await
            .with_context(|| format!("pre-loading {queue}"))?;
    }
    Ok(())
}

async fn preload_queue(
    entity: &busdrain_broker::Entity,
    readings: &[Reading],
) -> anyhow::Result<()> {
    for chunk in readings.chunks(PRELOAD_BATCH) {
        let mut messages = Vec::with_capacity(chunk.len());
        for reading in chunk {
            messages.push(NewMessage {
                payload: bare_message(reading)?,
                message_id: Some(format!("reading-{}", reading.seq)),
                content_type: Some("application/json".to_string()),
                ..NewMessage::default()
            });
        }
        entity.send(messages).await?;
    }
    Ok(())
}

/// Pre-loads `options.rows` messages, starts the emulator on that store and lets the
/// connector drain them.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BacklogResult> {
    let scope = crate::scope::RunScope::open(options).await?;
    let result = run_in(
        options,
        &scope.session,
        &scope.keyspace,
        scope.run_dir.path(),
    )
    .await;
    scope.close(options.keep).await;
    result
}

async fn run_in(
    options: &BenchOptions,
    session: &Arc<scylla::client::session::Session>,
    keyspace: &str,
    run_dir: &Path,
) -> anyhow::Result<BacklogResult> {
    let start_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let readings = crate::workload::readings(options.rows, start_ms);
    let namespace = NamespaceConfig::from_json_str(&emulator::namespace_config())
        .context("the benchmark namespace config is invalid")?;
    tracing::info!(
        rows = options.rows,
        "pre-loading the backlog into the store"
    );
    let started = Instant::now();
    preload_store(
        &emulator::data_dir(run_dir),
        namespace,
        &[emulator::DRAIN_QUEUE],
        &readings,
    )
    .await?;
    let preload_seconds = started.elapsed().as_secs_f64();
    drop(readings);

    let emulator = emulator::EmulatorProcess::start(&options.busdrain, run_dir).await?;
    let connection_string = emulator.connection_string();
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
    tracing::info!(rows = options.rows, "connector draining the backlog");
    let result = drain::drain(
        &setup,
        "connector-drain",
        emulator::DRAIN_QUEUE,
        "drain",
        options.rows,
    )
    .await
    .context("end-to-end drain");
    if result.is_err() {
        tracing::error!(log = %emulator.log().display(), "emulator log (kept with --keep)");
    }
    emulator.stop().await;
    Ok(BacklogResult {
        preloaded: options.rows,
        preload_seconds,
        drain: result?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use busdrain_broker::ReceiveMode;
    use fe2o3_amqp_types::messaging::message::__private::Deserializable;
    use fe2o3_amqp_types::messaging::Body;
    use serde_amqp::Value;

    #[tokio::test]
    async fn preloaded_messages_survive_a_restart_as_service_bus_messages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let namespace = || NamespaceConfig::from_json_str(&emulator::namespace_config());
        let readings = crate::workload::readings(2_500, 1_700_000_000_000);
        preload_store(
            dir.path(),
            namespace().expect("config"),
            &[emulator::DRAIN_QUEUE],
            &readings,
        )
        .await
        .expect("pre-load");

        let broker = Broker::open(
            dir.path(),
            namespace().expect("config"),
            BrokerLimits::default(),
        )
        .expect("reopen");
        let queue = broker
            .entity(&EntityPath::entity(emulator::DRAIN_QUEUE))
            .expect("queue");
        let mut received = Vec::new();
        loop {
            let batch = queue
                .receive(1_000, ReceiveMode::ReceiveAndDelete)
                .await
                .expect("receive");
            if batch.is_empty() {
                break;
            }
            received.extend(batch);
        }
        assert_eq!(received.len(), readings.len());
        for (delivery, reading) in received.iter().zip(&readings) {
            let content = &delivery.message.content;
            let expected_id = format!("reading-{}", reading.seq);
            assert_eq!(content.message_id.as_deref(), Some(expected_id.as_str()));
            let decoded: Deserializable<Message<Body<Value>>> =
                serde_amqp::from_slice(&content.payload).expect("a bare AMQP message");
            let message = decoded.0;
            let properties = message.properties.expect("properties");
            assert_eq!(
                properties.content_type.as_ref().map(|s| s.as_str()),
                Some("application/json")
            );
            match message.body {
                Body::Data(data) => {
                    assert_eq!(data.len(), 1);
                    assert_eq!(data[0].0.as_ref(), reading.to_json().as_slice());
                }
                other => panic!("expected one data section, got {other:?}"),
            }
        }
        drop(queue);
        broker.close();
    }
}
