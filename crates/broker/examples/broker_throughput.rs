//! Durable throughput of the broker, without AMQP: how many messages per second it can
//! accept (each send resolved only after its group commit is fsynced) and then receive with
//! peek-lock and complete (each completion durable too).
//!
//! `cargo run -p busdrain-broker --release --example broker_throughput -- [messages] [payload bytes] [senders] [batch]`
//! Defaults: 100000 messages of 512 bytes, 32 concurrent senders, batches of 1 (the
//! worst case: one message per send call) — run again with batch 100 for batched sends.

use std::sync::Arc;
use std::time::Instant;

use busdrain_broker::{
    Broker, BrokerError, BrokerLimits, EntityPath, NamespaceConfig, NewMessage, ReceiveMode,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let total = args.first().copied().unwrap_or(100_000);
    let payload_size = args.get(1).copied().unwrap_or(512);
    let senders = args.get(2).copied().unwrap_or(32).max(1);
    let batch = args.get(3).copied().unwrap_or(1).max(1);

    let dir = tempfile::tempdir()?;
    let broker = Broker::open(
        dir.path(),
        NamespaceConfig::default_namespace(),
        BrokerLimits::default(),
    )?;
    let queue = broker.entity(&EntityPath::entity("queue.1"))?;
    let payload = bytes::Bytes::from(vec![b'x'; payload_size]);

    let started = Instant::now();
    let per_sender = total / senders;
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let queue = queue.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_sender {
                let n = batch.min(per_sender - sent);
                let messages = (0..n)
                    .map(|_| NewMessage {
                        payload: payload.clone(),
                        ..NewMessage::default()
                    })
                    .collect();
                queue.send(messages).await?;
                sent += n;
            }
            Ok::<usize, BrokerError>(sent)
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await??;
    }
    let send_secs = started.elapsed().as_secs_f64();
    println!(
        "send: {sent} messages of {payload_size} B, {senders} senders, batch {batch}: {:.0} msgs/s ({send_secs:.2} s, durable)",
        sent as f64 / send_secs
    );

    // Restart on the same data: every stored message is indexed again at open.
    broker.close();
    drop(queue);
    drop(broker);
    let started = Instant::now();
    let broker = Broker::open(
        dir.path(),
        NamespaceConfig::default_namespace(),
        BrokerLimits::default(),
    )?;
    println!(
        "reopen with {sent} stored messages: {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let queue = broker.entity(&EntityPath::entity("queue.1"))?;

    let started = Instant::now();
    let receivers = senders;
    let completed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..receivers {
        let queue = queue.clone();
        let completed = Arc::clone(&completed);
        tasks.push(tokio::spawn(async move {
            loop {
                let got = queue.receive(batch.max(10), ReceiveMode::PeekLock).await?;
                if got.is_empty() {
                    return Ok::<(), BrokerError>(());
                }
                // Complete concurrently, as an SDK client with many settlements in flight does.
                let settles: Vec<_> = got
                    .into_iter()
                    .filter_map(|d| d.lock)
                    .map(|lock| {
                        let queue = queue.clone();
                        tokio::spawn(async move { queue.complete(lock.token).await })
                    })
                    .collect();
                for settle in settles {
                    if settle.await.is_ok_and(|r| r.is_ok()) {
                        completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let receive_secs = started.elapsed().as_secs_f64();
    let completed = completed.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "receive+complete: {completed} messages, {receivers} receivers: {:.0} msgs/s ({receive_secs:.2} s, durable)",
        completed as f64 / receive_secs
    );
    broker.close();
    Ok(())
}
