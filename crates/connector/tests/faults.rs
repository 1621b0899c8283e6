//! Faults, end to end: `busdrain run` as a child process against a `busdrain emulator` child and
//! real Cassandra.
//!
//! - `kill -9` of the connector mid-run, then a restart: the final table equals the one computed
//!   from the sent messages (cells and write timestamps), as a clean run would leave it.
//! - Cassandra (a dedicated node, never the shared one) stopped for ~30 s mid-run: nothing is
//!   dead-lettered, every row arrives, the same connector process recovers by itself.
//! - 100,000 messages over several routes with poison mixed in: exactly the expected rows, each
//!   poison message in its DLQ with the right reason.
//!
//! Needs `target/debug/busdrain` (`cargo build -p busdrain`) or `BUSDRAIN_BIN`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use busdrain_connector::source::{
    MessageSource, OutgoingMessage, ReceiverSettings, ServiceBusConnector, SourceEntity,
};
use futures::TryStreamExt as _;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::CqlTimeuuid;

use support::process::{queue_json, topic_json, ConnectorChild, DedicatedCassandra, EmulatorChild};
use support::run_cql;
use support::servicebus::drain_dlq;

/// The fault tests run one at a time: each drives an emulator, a connector and Cassandra (the
/// outage test a second, dedicated node) on the same 2 cores, and side by side they starve each
/// other into timeouts that test the machine, not the connector.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends `messages` over `senders` concurrent links, 500 per transfer.
async fn send_all(connector: &ServiceBusConnector, entity: &str, messages: Vec<OutgoingMessage>) {
    let senders = 4;
    let per_sender = messages.len().div_ceil(senders).max(1);
    let mut tasks = Vec::new();
    for part in messages.chunks(per_sender) {
        let mut sender = connector.open_sender(entity).await.expect("sender");
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for chunk in part.chunks(500) {
                sender.send(chunk.to_vec()).await.expect("send");
            }
            sender.close().await.expect("close sender");
        }));
    }
    for task in tasks {
        task.await.expect("sender task");
    }
}

/// How many messages a receiver finds on `entity` within `wait` (completing them).
async fn leftover(connector: &ServiceBusConnector, entity: &SourceEntity, wait: Duration) -> usize {
    let mut receiver = connector
        .open_receiver(entity, &ReceiverSettings::default())
        .await
        .expect("receiver");
    let batch = receiver.receive(100, wait).await.expect("receive");
    for m in &batch {
        receiver.complete(m.lock_token).await.expect("complete");
    }
    receiver.close().await.expect("close receiver");
    batch.len()
}

async fn session_to(address: &str) -> Session {
    SessionBuilder::new()
        .known_node(address)
        .connection_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to Cassandra at {address}: {e}"))
}

async fn count(session: &Session, table: &str) -> Option<i64> {
    let rows = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {table}"), &[])
        .await
        .ok()?
        .into_rows_result()
        .ok()?;
    rows.first_row::<(i64,)>().ok().map(|(n,)| n)
}

// ---------------------------------------------------------------------------------------------
// kill -9

/// Rows of the upsert table: (device, slot) → (value, note, writetime of value in µs).
type UpsertTable = BTreeMap<(String, i32), (i64, String, i64)>;

const KILL_MESSAGES: i64 = 20_000;
const EVENT_BASE_MS: i64 = 1_700_000_000_000;

/// Message `i`: 200 devices × 25 slots = 5,000 keys, each written 4 times, with event times
/// that are a permutation of the send order (so a later message is often an older event).
fn upsert_event(i: i64) -> ((String, i32), i64, String, i64) {
    let key = (format!("d{}", i % 200), ((i / 200) % 25) as i32);
    let ts = EVENT_BASE_MS + (i * 7919) % KILL_MESSAGES;
    (key, i, format!("n{i}"), ts)
}

fn expected_upserts() -> UpsertTable {
    let mut table = UpsertTable::new();
    for i in 0..KILL_MESSAGES {
        let (key, value, note, ts) = upsert_event(i);
        let micros = ts * 1000;
        if table.get(&key).is_none_or(|(_, _, w)| *w < micros) {
            table.insert(key, (value, note, micros));
        }
    }
    table
}

async fn read_upserts(session: &Session, table: &str) -> UpsertTable {
    let mut rows = session
        .query_iter(
            format!("SELECT device, slot, value, note, WRITETIME(value) FROM {table}"),
            &[],
        )
        .await
        .expect("select")
        .rows_stream::<(String, i32, i64, String, i64)>()
        .expect("typed rows");
    let mut out = UpsertTable::new();
    while let Some((device, slot, value, note, writetime)) =
        rows.try_next().await.expect("next row")
    {
        out.insert((device, slot), (value, note, writetime));
    }
    out
}

fn connector_config(cs: &str, cassandra: &str, routes: &str) -> String {
    format!(
        r#"
[service_bus]
connection_string = "{cs}"
[cassandra]
contact_points = ["{cassandra}"]
consistency = "ONE"
request_timeout = "2s"
[admin]
listen = "{{admin}}"
[shutdown]
grace = "30s"
{routes}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_leaves_the_table_of_a_clean_run() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A short lock so messages held by the killed process come back quickly.
    let emulator = EmulatorChild::start(vec![queue_json("upserts", "PT5S", false)], Vec::new());
    let cassandra = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&cassandra, "kill9").await;
    let table = format!("{ks}.readings");
    run_cql(
        &cassandra,
        &format!(
            "CREATE TABLE {table} (device text, slot int, value bigint, note text, \
             PRIMARY KEY (device, slot))"
        ),
    )
    .await;

    let producer = emulator.connect().await;
    let messages = (0..KILL_MESSAGES)
        .map(|i| {
            let ((device, slot), value, note, ts) = upsert_event(i);
            let mut m = OutgoingMessage::json(format!(
                r#"{{"device":"{device}","slot":{slot},"value":{value},"note":"{note}","ts":{ts}}}"#
            ));
            m.message_id = Some(format!("m-{i}"));
            m
        })
        .collect();
    send_all(&producer, "upserts", messages).await;

    let config = connector_config(
        &emulator.connection_string(),
        &busdrain_testsupport::cassandra_address(),
        &format!(
            r#"
[[routes]]
name = "upserts"
table = "{table}"
source = {{ queue = "upserts" }}
writetime = "body.ts"
receivers = 2
receive_batch = 100
receive_wait = "200ms"
[routes.columns]
device = "body.device"
slot = "body.slot"
value = "body.value"
note = "body.note"
"#
        ),
    );

    // First run: killed once a good part (but not all) of the messages are written.
    let mut first = ConnectorChild::start(dir.path(), "first", &config);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut written = 0.0;
    while written < 4_000.0 {
        assert!(first.is_running(), "the connector died:\n{}", first.log());
        assert!(
            Instant::now() < deadline,
            "only {written} written in 180 s:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        written = first.metric("busdrain_messages_written_total");
    }
    first.kill9();
    eprintln!("killed the connector (kill -9) after {written} messages written");
    assert!(
        written < KILL_MESSAGES as f64,
        "the connector wrote everything before the kill; the test proves nothing"
    );

    // Second run: drains the rest, including the messages the killed one held locked.
    let second = ConnectorChild::start(dir.path(), "second", &config);
    let expected = expected_upserts();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last_received = -1.0;
    let mut quiet_since = Instant::now();
    loop {
        let received = second.metric("busdrain_messages_received_total");
        if received != last_received {
            last_received = received;
            quiet_since = Instant::now();
        }
        // Done when the table matches and nothing arrived for longer than the lock duration
        // (messages the killed process held have come back and been taken by then).
        let in_flight = second.metric("busdrain_messages_in_flight");
        if quiet_since.elapsed() > Duration::from_secs(8)
            && in_flight == 0.0
            && count(&cassandra, &table).await == Some(expected.len() as i64)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained after 240 s (received {received} in the second run):\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        last_received > 0.0,
        "the restarted connector had nothing left to do"
    );
    let mut second = second;
    second.terminate(Duration::from_secs(60));
    assert_eq!(
        leftover(
            &producer,
            &SourceEntity::Queue("upserts".into()),
            Duration::from_secs(3)
        )
        .await,
        0,
        "messages left on the queue"
    );
    assert!(
        drain_dlq(&producer, &SourceEntity::Queue("upserts".into()))
            .await
            .is_empty(),
        "nothing may be dead-lettered"
    );

    let actual = read_upserts(&cassandra, &table).await;
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let divergent: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .take(5)
        .map(|(k, v)| (k, v, &actual[k]))
        .collect();
    assert!(
        missing.is_empty(),
        "{} rows missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        extra.is_empty(),
        "{} extra rows, e.g. {:?}",
        extra.len(),
        &extra[..extra.len().min(5)]
    );
    assert!(
        divergent.is_empty(),
        "cells (value, note, writetime) differ: {divergent:?}"
    );
    producer.close().await;
    busdrain_testsupport::drop_keyspace(&cassandra, &ks).await;
}

// ---------------------------------------------------------------------------------------------
// Cassandra down

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_down_30s_pauses_without_dead_letters_and_recovers_in_process() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A node of this test's own on 127.0.20.1 (JMX 27199): the shared node keeps serving.
    let node = DedicatedCassandra::start(dir.path(), "127.0.20.1");
    let cassandra = session_to(&node.address()).await;
    let ks = busdrain_testsupport::fresh_keyspace(&cassandra, "outage").await;
    let table = format!("{ks}.readings");
    run_cql(
        &cassandra,
        &format!("CREATE TABLE {table} (device text, seq bigint, temp double, PRIMARY KEY (device, seq))"),
    )
    .await;

    let emulator = EmulatorChild::start(vec![queue_json("outage", "PT30S", false)], Vec::new());
    let producer = emulator.connect().await;
    let config = connector_config(
        &emulator.connection_string(),
        &node.address(),
        &format!(
            r#"
[[routes]]
name = "outage"
table = "{table}"
source = {{ queue = "outage" }}
receivers = 2
receive_batch = 50
receive_wait = "200ms"
[routes.columns]
device = "body.device"
seq = "body.seq"
temp = "body.temp"
"#
        ),
    );
    let mut connector = ConnectorChild::start(dir.path(), "connector", &config);
    let pid = connector.pid();

    // Traffic keeps arriving before, during and after the outage: 100 messages every 250 ms.
    let total: i64 = 24_000;
    let sending = {
        let mut sender = producer.open_sender("outage").await.expect("sender");
        tokio::spawn(async move {
            for start in (0..total).step_by(100) {
                let batch = (start..start + 100)
                    .map(|i| {
                        let mut m = OutgoingMessage::json(format!(
                            r#"{{"device":"d{}","seq":{i},"temp":{}.5}}"#,
                            i % 64,
                            i % 30
                        ));
                        m.message_id = Some(format!("m-{i}"));
                        m
                    })
                    .collect();
                sender.send(batch).await.expect("send");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            sender.close().await.expect("close sender");
        })
    };

    tokio::time::sleep(Duration::from_secs(8)).await;
    let before = count(&cassandra, &table).await.unwrap_or(0);
    assert!(
        before > 0,
        "nothing written before the outage:\n{}",
        connector.log()
    );
    let stop = tokio::task::spawn_blocking({
        let started = Instant::now();
        move || {
            node.tool("stop");
            (node, started)
        }
    });
    let (node, outage_started) = stop.await.expect("stop task");
    eprintln!("Cassandra stopped after {before} rows");
    let mut saw_not_ready = false;
    while outage_started.elapsed() < Duration::from_secs(30) {
        assert!(
            connector.is_running(),
            "the connector exited during the outage:\n{}",
            connector.log()
        );
        if connector
            .get("/readyz")
            .is_some_and(|(status, _)| status != 200)
        {
            saw_not_ready = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(saw_not_ready, "/readyz stayed 200 while Cassandra was down");
    assert_eq!(
        connector.metric("busdrain_messages_dead_lettered_total"),
        0.0,
        "dead-lettered during the outage"
    );
    let node = tokio::task::spawn_blocking(move || {
        node.tool("start");
        node
    })
    .await
    .expect("start task");
    eprintln!(
        "Cassandra back after {:.0} s",
        outage_started.elapsed().as_secs_f64()
    );
    sending.await.expect("sender task");

    let cassandra = session_to(&node.address()).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if count(&cassandra, &table).await == Some(total)
            && connector
                .get("/readyz")
                .is_some_and(|(status, _)| status == 200)
        {
            break;
        }
        assert!(
            connector.is_running(),
            "the connector exited:\n{}",
            connector.log()
        );
        assert!(
            Instant::now() < deadline,
            "{:?} of {total} rows 300 s after the outage:\n{}",
            count(&cassandra, &table).await,
            connector.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(connector.pid(), pid, "the same process recovered");
    assert_eq!(
        connector.metric("busdrain_messages_dead_lettered_total"),
        0.0
    );
    connector.terminate(Duration::from_secs(60));
    let dead = drain_dlq(&producer, &SourceEntity::Queue("outage".into())).await;
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");

    // Every row, with its values.
    let mut rows = cassandra
        .query_iter(format!("SELECT device, seq, temp FROM {table}"), &[])
        .await
        .expect("select")
        .rows_stream::<(String, i64, f64)>()
        .expect("typed rows");
    let mut seen = 0;
    while let Some((device, seq, temp)) = rows.try_next().await.expect("row") {
        assert_eq!(
            (device.as_str(), temp),
            (format!("d{}", seq % 64).as_str(), (seq % 30) as f64 + 0.5)
        );
        seen += 1;
    }
    assert_eq!(seen, total);
    producer.close().await;
    drop(node);
}

// ---------------------------------------------------------------------------------------------
// 100,000 messages over several routes

/// Every 100th message is poison, in three kinds; the rest are readings.
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

fn reading(i: i64, sessions: bool) -> OutgoingMessage {
    let body = match poison(i) {
        Some((_, body)) => body,
        None => format!(
            r#"{{"device":"d{}","seq":{i},"temp":{}.5}}"#,
            i % 50,
            i % 40
        ),
    };
    let mut m = OutgoingMessage::json(body);
    m.message_id = Some(format!("m-{i}"));
    if sessions {
        m.session_id = Some(format!("s{}", i % 16));
    }
    m
}

struct Route {
    name: &'static str,
    /// Entity to send to.
    send_to: &'static str,
    source: &'static str,
    entity: SourceEntity,
    sessions: bool,
}

fn plain_route() -> Route {
    Route {
        name: "plain",
        send_to: "plain",
        source: r#"{ queue = "plain" }"#,
        entity: SourceEntity::Queue("plain".into()),
        sessions: false,
    }
}

fn topic_route() -> Route {
    Route {
        name: "topic",
        send_to: "events",
        source: r#"{ topic = "events", subscription = "sink" }"#,
        entity: SourceEntity::Subscription {
            topic: "events".into(),
            subscription: "sink".into(),
        },
        sessions: false,
    }
}

fn session_route() -> Route {
    Route {
        name: "sessions",
        send_to: "ordered",
        source: r#"{ queue = "ordered", sessions = true }"#,
        entity: SourceEntity::Queue("ordered".into()),
        sessions: true,
    }
}

async fn drain_routes_with_poison(routes: Vec<Route>, total: i64) {
    let per_route = total / routes.len() as i64;
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = EmulatorChild::start(
        vec![
            queue_json("plain", "PT1M", false),
            queue_json("ordered", "PT1M", true),
        ],
        vec![topic_json("events", &["sink"], "PT1M")],
    );
    let cassandra = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&cassandra, "routes").await;
    let mut route_config = String::new();
    for route in &routes {
        run_cql(
            &cassandra,
            &format!(
                "CREATE TABLE {ks}.{} (device text, seq bigint, temp double, \
                 sequence bigint, ingested timeuuid, PRIMARY KEY (device, seq))",
                route.name
            ),
        )
        .await;
        route_config.push_str(&format!(
            r#"
[[routes]]
name = "{name}"
table = "{ks}.{name}"
source = {source}
[routes.columns]
device = "body.device"
seq = "body.seq"
temp = "body.temp"
sequence = "sequence_number"
ingested = "now()"
"#,
            name = route.name,
            source = route.source,
        ));
    }

    let producer = emulator.connect().await;
    let sending = Instant::now();
    for route in &routes {
        let messages = (0..per_route).map(|i| reading(i, route.sessions)).collect();
        send_all(&producer, route.send_to, messages).await;
    }
    eprintln!(
        "sent {} messages in {:.1} s",
        per_route * routes.len() as i64,
        sending.elapsed().as_secs_f64()
    );

    let config = connector_config(
        &emulator.connection_string(),
        &busdrain_testsupport::cassandra_address(),
        &route_config,
    );
    let started = Instant::now();
    let mut connector = ConnectorChild::start(dir.path(), "routes", &config);
    let poisons = (0..per_route).filter(|i| poison(*i).is_some()).count() as i64;
    let deadline = started + Duration::from_secs(600);
    loop {
        let mut done = true;
        for route in &routes {
            done &= count(&cassandra, &format!("{ks}.{}", route.name)).await
                >= Some(per_route - poisons);
        }
        if done {
            break;
        }
        assert!(
            connector.is_running(),
            "the connector exited:\n{}",
            connector.log()
        );
        assert!(
            Instant::now() < deadline,
            "not drained in 600 s:\n{}",
            connector.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} messages over {} routes drained by `busdrain run` in {:.1} s ({:.0} msg/s)",
        per_route * routes.len() as i64,
        routes.len(),
        elapsed.as_secs_f64(),
        (per_route * routes.len() as i64) as f64 / elapsed.as_secs_f64()
    );
    connector.terminate(Duration::from_secs(60));

    let wanted_rows: BTreeMap<(String, i64), f64> = (0..per_route)
        .filter(|i| poison(*i).is_none())
        .map(|i| ((format!("d{}", i % 50), i), (i % 40) as f64 + 0.5))
        .collect();
    let wanted_dead: Vec<(String, String)> = {
        let mut v: Vec<_> = (0..per_route)
            .filter_map(|i| poison(i).map(|(reason, _)| (format!("m-{i}"), reason.to_owned())))
            .collect();
        v.sort();
        v
    };
    for route in &routes {
        let mut rows = cassandra
            .query_iter(
                format!("SELECT device, seq, temp FROM {ks}.{}", route.name),
                &[],
            )
            .await
            .expect("select")
            .rows_stream::<(String, i64, f64)>()
            .expect("typed rows");
        let mut actual = BTreeMap::new();
        while let Some((device, seq, temp)) = rows.try_next().await.expect("row") {
            actual.insert((device, seq), temp);
        }
        assert!(
            actual == wanted_rows,
            "rows of route {} differ from the expected ({} vs {})",
            route.name,
            actual.len(),
            wanted_rows.len()
        );
        let dead = drain_dlq(&producer, &route.entity).await;
        assert_eq!(dead, wanted_dead, "dead letters of route {}", route.name);
        if route.sessions {
            check_session_order(&cassandra, &format!("{ks}.{}", route.name)).await;
        }
    }
    producer.close().await;
    busdrain_testsupport::drop_keyspace(&cassandra, &ks).await;
}

/// The rows of a session route (`reading`: session `s{seq % 16}`) by the broker's sequence
/// number (enqueue order: the test's senders run concurrently, so `seq` is not send order) and
/// by the time each was mapped (`ingested = now()`, a version-1 timeuuid): within a session they
/// were mapped in enqueue order, and the sessions were drained in parallel (some sessions'
/// mapping periods overlap).
async fn check_session_order(cassandra: &Session, table: &str) {
    let mut rows = cassandra
        .query_iter(format!("SELECT seq, sequence, ingested FROM {table}"), &[])
        .await
        .expect("select")
        .rows_stream::<(i64, i64, CqlTimeuuid)>()
        .expect("typed rows");
    let mut sessions: BTreeMap<i64, Vec<(i64, CqlTimeuuid)>> = BTreeMap::new();
    while let Some((seq, sequence, ingested)) = rows.try_next().await.expect("row") {
        sessions
            .entry(seq % 16)
            .or_default()
            .push((sequence, ingested));
    }
    for (session, rows) in &mut sessions {
        rows.sort_by_key(|(sequence, _)| *sequence);
        let out_of_order: Vec<(i64, i64)> = rows
            .windows(2)
            .filter(|pair| pair[1].1 < pair[0].1)
            .map(|pair| (pair[0].0, pair[1].0))
            .collect();
        assert!(
            out_of_order.is_empty(),
            "session s{session}: {} message(s) mapped before the one enqueued just before them \
             (sequence numbers): {:?}",
            out_of_order.len(),
            &out_of_order[..out_of_order.len().min(10)]
        );
    }
    let mut spans = Vec::new();
    for rows in sessions.values() {
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            spans.push((first.1, last.1));
        }
    }
    let overlapping = spans
        .iter()
        .enumerate()
        .filter(|(i, (start, end))| {
            spans
                .iter()
                .enumerate()
                .any(|(j, (other_start, other_end))| {
                    *i != j && start < other_end && other_start < end
                })
        })
        .count();
    eprintln!(
        "{} sessions written in order; {overlapping} overlapped another session",
        sessions.len()
    );
    assert!(
        overlapping >= 2,
        "sessions were drained one after another, not in parallel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_over_queue_session_queue_and_subscription_with_poison() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The issue's test: a plain queue, a session queue (16 sessions) and a subscription.
    drain_routes_with_poison(vec![plain_route(), session_route(), topic_route()], 100_000).await;
}
