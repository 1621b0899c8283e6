//! Peek-lock receive + complete throughput of the Service Bus source, without Cassandra.
//!
//! ```text
//! busdrain send --entity telemetry --count 100000 --batch 200   # fill the queue first
//! BUSDRAIN_SERVICE_BUS_CONNECTION_STRING='Endpoint=sb://127.0.0.1:5672;…;UseDevelopmentEmulator=true' \
//!   cargo run --release -p busdrain-connector --example receive_throughput -- telemetry 100000 100 100
//! ```
//! Arguments: entity, message count, receive batch size, prefetch count. Prints msgs/s.

use std::time::{Duration, Instant};

use busdrain_connector::source::{
    ConnectorSettings, MessageSource, ReceiverSettings, ServiceBusConnectionString,
    ServiceBusConnector, SourceEntity,
};

fn argument<T: std::str::FromStr>(
    args: &[String],
    index: usize,
    name: &str,
    default: T,
) -> Result<T, String> {
    match args.get(index) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} must be a number, got {text:?}")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let entity = args
        .first()
        .cloned()
        .ok_or("usage: receive_throughput ENTITY [COUNT] [BATCH] [PREFETCH]")?;
    let count: usize = argument(&args, 1, "COUNT", 10_000)?;
    let batch: usize = argument(&args, 2, "BATCH", 100)?;
    let prefetch: u32 = argument(&args, 3, "PREFETCH", 100)?;
    let connection_string = std::env::var("BUSDRAIN_SERVICE_BUS_CONNECTION_STRING")
        .map_err(|_| "set BUSDRAIN_SERVICE_BUS_CONNECTION_STRING")?;

    let parsed = ServiceBusConnectionString::parse(&connection_string)?;
    let connector =
        ServiceBusConnector::connect(ConnectorSettings::from_connection_string(&parsed)).await?;
    let settings = ReceiverSettings {
        prefetch_count: prefetch,
        ..Default::default()
    };
    let mut source = connector
        .open_receiver(&SourceEntity::Queue(entity.clone()), &settings)
        .await?;

    let started = Instant::now();
    let mut received = 0;
    while received < count {
        let messages = source
            .receive(batch.min(count - received), Duration::from_secs(5))
            .await?;
        if messages.is_empty() {
            eprintln!("{entity} ran dry after {received} messages");
            break;
        }
        for message in messages {
            source.complete(message.lock_token).await?;
            received += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "received and completed {received} messages from {entity} in {seconds:.2} s ({:.0} msgs/s; batch {batch}, prefetch {prefetch})",
        received as f64 / seconds.max(f64::EPSILON)
    );
    source.close().await?;
    connector.close().await;
    Ok(())
}
