//! The connector end to end: a real `busdrain emulator` process (its default namespace), the
//! real Cassandra node, and `service::run` with two routes — a plain queue and a topic
//! subscription — with poison messages mixed in. Every valid message must become exactly one
//! row; every poison message must sit in the DLQ with the right reason.
//!
//! The session-queue route is covered by `faults.rs`
//! (`hundred_thousand_messages_over_queue_session_queue_and_subscription_with_poison`), with
//! `busdrain run` as a child process.
//!
//! Sizes: 1,500 messages per route by default; `BUSDRAIN_SOAK=1` sends 50,000 per route
//! (100,000 in all). Needs `target/debug/busdrain` (`cargo build -p busdrain`) or `BUSDRAIN_BIN`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use busdrain_connector::config::Config;
use busdrain_connector::source::{OutgoingMessage, SourceEntity};
use busdrain_connector::{service, CancellationToken};
use scylla::client::session::Session;
use scylla::value::{CqlValue, Row};

use support::process::EmulatorChild;
use support::run_cql;
use support::servicebus::{drain_dlq, send_in_chunks};

fn per_route() -> i64 {
    if std::env::var("BUSDRAIN_SOAK").is_ok_and(|v| v == "1") {
        50_000
    } else {
        1_500
    }
}

/// Every 100th message of the plain queue and of the topic is poison, in three kinds.
fn poison(i: i64) -> Option<(&'static str, String)> {
    if i % 100 != 99 {
        return None;
    }
    Some(match (i / 100) % 3 {
        0 => ("InvalidJson", format!("{{\"device\": \"d{i}\", \"seq\": ")),
        1 => ("MissingField", format!("{{\"seq\": {i}, \"temp\": 1.5}}")),
        _ => (
            "TypeMismatch",
            format!("{{\"device\": \"d1\", \"seq\": {i}, \"temp\": \"warm\"}}"),
        ),
    })
}

fn reading(i: i64) -> OutgoingMessage {
    let body = match poison(i) {
        Some((_, body)) => body,
        None => format!(
            "{{\"device\": \"d{}\", \"seq\": {i}, \"temp\": {}.5}}",
            i % 50,
            i % 40
        ),
    };
    let mut m = OutgoingMessage::json(body);
    m.message_id = Some(format!("m-{i}"));
    m
}

async fn count(session: &Session, ks: &str, table: &str) -> i64 {
    let rows = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {ks}.{table}"), &[])
        .await
        .expect("count")
        .into_rows_result()
        .expect("rows");
    match rows.first_row::<Row>().expect("row").columns[0] {
        Some(CqlValue::BigInt(n)) => n,
        ref other => panic!("count: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_subscription_drain_into_cassandra_with_poison_in_the_dlq() {
    let n = per_route();
    let emulator = EmulatorChild::start_default();
    let cassandra = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&cassandra, "e2e").await;
    for table in ["plain", "topic"] {
        run_cql(
            &cassandra,
            &format!(
                "CREATE TABLE {ks}.{table} (device text, seq bigint, temp double, \
                 PRIMARY KEY (device, seq))"
            ),
        )
        .await;
    }

    let producer = emulator.connect().await;
    send_in_chunks(&producer, "queue.1", (0..n).map(reading).collect()).await;
    send_in_chunks(&producer, "topic.1", (0..n).map(reading).collect()).await;
    let columns = "device = \"body.device\"\nseq = \"body.seq\"\ntemp = \"body.temp\"";
    let config = format!(
        r#"
[service_bus]
connection_string = "{cs}"
[cassandra]
contact_points = ["{cassandra}"]
[admin]
listen = "127.0.0.1:0"
[[routes]]
name = "plain"
table = "{ks}.plain"
source = {{ queue = "queue.1" }}
[routes.columns]
{columns}
[[routes]]
name = "topic"
table = "{ks}.topic"
source = {{ topic = "topic.1", subscription = "subscription.1" }}
[routes.columns]
{columns}
"#,
        cs = emulator.connection_string(),
        cassandra = busdrain_testsupport::cassandra_address(),
    );
    let loaded = Config::load_str(Path::new("e2e.toml"), &config, Vec::new()).expect("config");
    let shutdown = CancellationToken::new();
    let run = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { service::run(&loaded, shutdown).await })
    };

    let poisons = (0..n).filter(|i| poison(*i).is_some()).count() as i64;
    let expected = [("plain", n - poisons), ("topic", n - poisons)];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(if n > 10_000 { 1_800 } else { 240 });
    loop {
        let mut done = true;
        for (table, want) in expected {
            done &= count(&cassandra, &ks, table).await >= want;
        }
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the connector stops after the signal")
        .expect("run task");
    assert!(result.is_ok(), "run failed: {result:?}");
    for (table, want) in expected {
        assert_eq!(count(&cassandra, &ks, table).await, want, "rows in {table}");
    }
    eprintln!(
        "{} messages over 2 routes drained in {:.1} s",
        2 * n,
        elapsed.as_secs_f64()
    );

    // Each poison message is in its entity's DLQ with the reason its body deserves.
    for entity in [
        SourceEntity::Queue("queue.1".into()),
        SourceEntity::Subscription {
            topic: "topic.1".into(),
            subscription: "subscription.1".into(),
        },
    ] {
        let found = drain_dlq(&producer, &entity).await;
        let mut wanted: Vec<(String, String)> = (0..n)
            .filter_map(|i| poison(i).map(|(reason, _)| (format!("m-{i}"), reason.to_owned())))
            .collect();
        wanted.sort();
        assert_eq!(found, wanted, "dead letters of {entity:?}");
    }
    producer.close().await;
    busdrain_testsupport::drop_keyspace(&cassandra, &ks).await;
}
