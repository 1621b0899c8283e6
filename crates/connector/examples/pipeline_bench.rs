//! Connector CPU per message and throughput, without Service Bus in the way: an in-process
//! source feeds N telemetry messages through the real pipeline into the real Cassandra node.
//!
//! `cargo run --release -p busdrain-connector --example pipeline_bench -- 100000`
//!
//! Prints wall time, messages/s and process CPU µs per message (user + system, from
//! /proc/self/stat; this includes the Cassandra driver, which is part of the connector's cost).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busdrain_connector::config::Config;
use busdrain_connector::sink::CassandraSink;
use busdrain_connector::{pipeline, service, CancellationToken};
use time::OffsetDateTime;

use support::{config_text, message_at, run_cql, FakeBroker};

/// User + system CPU time of this process (Linux), in seconds.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the file: indexes 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    let count: i64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, "bench").await;
    run_cql(
        &session,
        &format!(
            "CREATE TABLE {ks}.readings (device text, ts timestamp, seq bigint, temp double, \
             humidity double, status text, PRIMARY KEY (device, ts, seq))"
        ),
    )
    .await;
    let columns = "device = \"body.device\"\nts = \"body.ts\"\nseq = \"sequence_number\"\n\
                   temp = \"body.temp\"\nhumidity = \"body.humidity\"\nstatus = \"body.status\"";
    let text = config_text(&ks, "readings", columns, "")
        .replace("receivers = 2", "receivers = 8")
        .replace("receive_batch = 64", "receive_batch = 512");
    let loaded = Config::load_str(Path::new("bench.toml"), &text, Vec::new()).expect("config");
    let (cassandra, plans) = service::validate(&loaded).await.expect("valid");
    let sink = CassandraSink::new(cassandra, 256);
    let routes = service::build_routes(&sink, plans).await.expect("routes");

    // The mapping step alone (parse the body, coerce every column), for comparison.
    let sample: Vec<_> = (0..10_000i64)
        .map(|seq| {
            let body = format!(
                r#"{{"device": "dev-{}", "ts": {}, "temp": 21.25, "humidity": 0.5, "status": "ok"}}"#,
                seq % 1000,
                1_714_564_800_000i64 + seq
            );
            message_at(&body, OffsetDateTime::now_utc(), seq)
        })
        .collect();
    let mapping_started = Instant::now();
    let mut mapped = 0usize;
    for m in &sample {
        mapped += routes[0]
            .plan
            .mapper
            .map(m, OffsetDateTime::now_utc())
            .map_or(0, |r| r.values.len());
    }
    println!(
        "mapping: {:.2} µs per message ({mapped} values)",
        mapping_started.elapsed().as_secs_f64() * 1e6 / sample.len() as f64
    );

    let broker = FakeBroker::new(Duration::from_secs(60));
    let t0 = OffsetDateTime::now_utc();
    for seq in 0..count {
        let body = format!(
            r#"{{"device": "dev-{}", "ts": {}, "temp": {}.25, "humidity": 0.{}, "status": "ok"}}"#,
            seq % 1000,
            1_714_564_800_000i64 + seq,
            seq % 40,
            seq % 100
        );
        broker.send(message_at(&body, t0, seq));
    }
    let shutdown = CancellationToken::new();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let run = tokio::spawn(pipeline::run(
        Arc::new(broker.clone()),
        routes,
        sink.health.clone(),
        shutdown.clone(),
        Duration::from_secs(10),
    ));
    let done = broker
        .wait_for(Duration::from_secs(600), |s| {
            s.completed.len() as i64 == count
        })
        .await;
    let elapsed = started.elapsed();
    let cpu = process_cpu_seconds() - cpu_before;
    shutdown.cancel();
    let _ = run.await;
    assert!(done, "not all messages completed");
    println!(
        "{count} messages in {:.2} s: {:.0} msg/s, {:.1} µs CPU per message (process, incl. driver)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        cpu * 1e6 / count as f64
    );
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}
