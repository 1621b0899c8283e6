//! The pipeline end to end with an in-process message source and the real Cassandra node:
//! settle-after-write, poison → dead-letter with the right reason, and an outage of Cassandra
//! (cut by a TCP proxy) that pauses receiving without dead-lettering or completing anything.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use busdrain_connector::config::Config;
use busdrain_connector::pipeline;
use busdrain_connector::service;
use busdrain_connector::sink::CassandraSink;
use busdrain_connector::CancellationToken;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlValue, Row};
use time::OffsetDateTime;

use support::{config_text, message_at, run_cql, CassandraProxy, FakeBroker};

async fn count_rows(session: &Session, ks: &str) -> i64 {
    let result = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {ks}.readings"), &[])
        .await
        .expect("count");
    let rows = result.into_rows_result().expect("rows");
    let row: Row = rows.first_row().expect("one row");
    match row.columns[0] {
        Some(CqlValue::BigInt(n)) => n,
        ref other => panic!("count: {other:?}"),
    }
}

async fn setup(prefix: &str) -> (Session, String) {
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, prefix).await;
    run_cql(
        &session,
        &format!(
            "CREATE TABLE {ks}.readings (device text, seq bigint, temp double, level tinyint, \
             PRIMARY KEY (device, seq))"
        ),
    )
    .await;
    (session, ks)
}

const COLUMNS: &str =
    "device = \"body.device\"\nseq = \"sequence_number\"\ntemp = \"body.temp\"\nlevel = \"body.level\"";

fn reading(seq: i64) -> busdrain_connector::source::ReceivedMessage {
    let body = format!(r#"{{"device": "d{}", "temp": {}.5}}"#, seq % 7, seq);
    message_at(&body, OffsetDateTime::now_utc(), seq)
}

/// Starts the pipeline on `broker` with a sink on `session`; returns its stop handle.
async fn start(
    broker: &FakeBroker,
    session: Session,
    ks: &str,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<()>,
    Arc<CassandraSink>,
) {
    start_with(broker, session, &config_text(ks, "readings", COLUMNS, "")).await
}

async fn start_with(
    broker: &FakeBroker,
    session: Session,
    config: &str,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<()>,
    Arc<CassandraSink>,
) {
    let loaded = Config::load_str(Path::new("t.toml"), config, Vec::new()).expect("config");
    let (_check_session, plans) = service::validate(&loaded).await.expect("valid");
    let sink = CassandraSink::new(Arc::new(session), 32);
    let routes = service::build_routes(&sink, plans).await.expect("prepared");
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(pipeline::run(
        Arc::new(broker.clone()),
        routes,
        sink.health.clone(),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    (shutdown, handle, sink)
}

#[tokio::test]
async fn completes_after_write_and_dead_letters_poison_at_once() {
    let (session, ks) = setup("pipe").await;
    let broker = FakeBroker::new(Duration::from_secs(30));
    for seq in 1..=500 {
        broker.send(reading(seq));
    }
    let now = OffsetDateTime::now_utc();
    broker.send(message_at("{not json", now, 1001));
    broker.send(message_at(r#"{"temp": 1}"#, now, 1002));
    broker.send(message_at(r#"{"device": "d", "temp": "warm"}"#, now, 1003));
    broker.send(message_at(
        r#"{"device": "d", "temp": 1, "level": 300}"#,
        now,
        1004,
    ));

    let (shutdown, handle, _sink) =
        start(&broker, busdrain_testsupport::cassandra().await, &ks).await;
    let settled = broker
        .wait_for(Duration::from_secs(60), |s| {
            s.completed.len() + s.dead_lettered.len() == 504
        })
        .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops within the grace period")
        .expect("pipeline task");
    assert!(
        settled,
        "not everything settled: {:?}",
        broker.lock().completed.len()
    );

    {
        let state = broker.lock();
        assert_eq!(state.completed.len(), 500);
        assert!(state.abandoned.is_empty());
        assert!(state.locked.is_empty(), "every received message is settled");
        let mut reasons: Vec<(i64, String)> = state
            .dead_lettered
            .iter()
            .map(|(m, why)| (m.sequence_number, why.reason.clone()))
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            vec![
                (1001, "InvalidJson".to_owned()),
                (1002, "MissingField".to_owned()),
                (1003, "TypeMismatch".to_owned()),
                (1004, "ValueOutOfRange".to_owned()),
            ]
        );
        let (_, why) = state
            .dead_lettered
            .iter()
            .find(|(m, _)| m.sequence_number == 1003)
            .expect("1003 dead-lettered");
        assert!(
            why.description.contains("route r1, column temp"),
            "{}",
            why.description
        );
        assert!(why.description.contains("\"warm\""), "{}", why.description);
    }
    assert_eq!(count_rows(&session, &ks).await, 500);
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}

#[tokio::test]
async fn cassandra_outage_pauses_receiving_without_dead_letters_and_recovers() {
    let (session, ks) = setup("outage").await;
    let proxy = CassandraProxy::start(busdrain_testsupport::cassandra_address()).await;
    let proxied = SessionBuilder::new()
        .known_node_addr(proxy.addr)
        .connection_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("session through the proxy");
    // A lock much shorter than the outage: only renewals keep the messages ours.
    let broker = FakeBroker::new(Duration::from_secs(2));
    let (shutdown, handle, sink) = start(&broker, proxied, &ks).await;

    for seq in 1..=100 {
        broker.send(reading(seq));
    }
    assert!(
        broker
            .wait_for(Duration::from_secs(30), |s| s.completed.len() == 100)
            .await,
        "healthy phase did not complete"
    );

    proxy.set_up(false);
    for seq in 101..=400 {
        broker.send(reading(seq));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    {
        let state = broker.lock();
        assert_eq!(
            state.completed.len(),
            100,
            "nothing completes while Cassandra is down"
        );
        assert!(
            state.dead_lettered.is_empty(),
            "no dead letters for an outage"
        );
        assert!(
            state.abandoned.is_empty(),
            "nothing abandoned while running"
        );
        assert!(state.renewals > 0, "locks of waiting messages are renewed");
        // Receiving paused: at most the batches taken before the first failure are locked.
        assert!(
            state.queue.len() >= 300 - 2 * 64,
            "receivers kept pulling during the outage: {} left",
            state.queue.len()
        );
    }
    assert!(!sink.health.is_healthy());

    proxy.set_up(true);
    let recovered = broker
        .wait_for(Duration::from_secs(90), |s| s.completed.len() == 400)
        .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    {
        let state = broker.lock();
        assert!(
            recovered,
            "did not recover: {} completed",
            state.completed.len()
        );
        assert!(state.dead_lettered.is_empty());
    }
    assert!(sink.health.is_healthy());
    assert_eq!(count_rows(&session, &ks).await, 400);
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}

#[tokio::test]
async fn shutdown_abandons_what_cannot_be_written_within_the_grace_period() {
    let (session, ks) = setup("grace").await;
    let proxy = CassandraProxy::start(busdrain_testsupport::cassandra_address()).await;
    let proxied = SessionBuilder::new()
        .known_node_addr(proxy.addr)
        .build()
        .await
        .expect("session through the proxy");
    let broker = FakeBroker::new(Duration::from_secs(30));
    let (shutdown, handle, _sink) = start(&broker, proxied, &ks).await;
    proxy.set_up(false);
    for seq in 1..=10 {
        broker.send(reading(seq));
    }
    assert!(
        broker
            .wait_for(Duration::from_secs(10), |s| s.queue.is_empty())
            .await,
        "messages were received"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("stops after the grace period")
        .expect("pipeline task");
    {
        let state = broker.lock();
        assert_eq!(
            state.abandoned.len(),
            10,
            "unwritten messages go back to the entity"
        );
        assert!(state.completed.is_empty() && state.dead_lettered.is_empty());
    }
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}

#[tokio::test]
async fn sessions_are_processed_in_order_and_in_parallel() {
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, "sessions").await;
    run_cql(
        &session,
        &format!("CREATE TABLE {ks}.latest (key text PRIMARY KEY, seq bigint, value bigint)"),
    )
    .await;
    let config = config_text(
        &ks,
        "latest",
        "key = \"session_id\"\nseq = \"sequence_number\"\nvalue = \"body.value\"",
        "session_idle_timeout = \"200ms\"",
    )
    .replace(
        "source = { queue = \"q\" }",
        "source = { queue = \"q\", sessions = true }",
    );
    let broker = FakeBroker::new(Duration::from_secs(30));
    let t0 = OffsetDateTime::now_utc();
    // Four sessions interleaved in the queue; within each, later messages carry later values.
    for seq in 1..=600i64 {
        let mut m = message_at(
            &format!(r#"{{"value": {seq}}}"#),
            t0 + time::Duration::milliseconds(seq),
            seq,
        );
        m.session_id = Some(format!("s{}", seq % 4));
        broker.send(m);
    }
    let (shutdown, handle, _sink) = start_with(&broker, session, &config).await;
    let done = broker
        .wait_for(Duration::from_secs(60), |s| s.completed.len() == 600)
        .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    {
        let state = broker.lock();
        assert!(done, "only {} completed", state.completed.len());
        assert!(state.dead_lettered.is_empty());
        assert_eq!(
            state.max_concurrent_sessions, 2,
            "two receivers hold two sessions at once"
        );
        for s in 0..4 {
            let id = format!("s{s}");
            let order: Vec<i64> = state
                .completed
                .iter()
                .filter(|m| m.session_id.as_deref() == Some(id.as_str()))
                .map(|m| m.sequence_number)
                .collect();
            assert_eq!(order.len(), 150);
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "session {id} out of order"
            );
        }
    }
    let check = busdrain_testsupport::cassandra().await;
    for s in 0..4i64 {
        let result = check
            .query_unpaged(
                format!("SELECT value FROM {ks}.latest WHERE key = 's{s}'"),
                &[],
            )
            .await
            .expect("select");
        let row: Row = result
            .into_rows_result()
            .expect("rows")
            .first_row()
            .expect("row");
        let last = 596 + if s == 0 { 4 } else { s };
        assert_eq!(row.columns[0], Some(CqlValue::BigInt(last)), "session s{s}");
    }
    busdrain_testsupport::drop_keyspace(&check, &ks).await;
}

#[tokio::test]
async fn a_source_that_cannot_open_marks_the_route_failing_until_it_opens() {
    let (session, ks) = setup("failing").await;
    let broker = FakeBroker::new(Duration::from_secs(30));
    broker.lock().refuse_open = Some("entity `q` does not exist".into());
    let loaded = Config::load_str(
        Path::new("t.toml"),
        &config_text(&ks, "readings", COLUMNS, ""),
        Vec::new(),
    )
    .expect("config");
    let (cassandra, plans) = service::validate(&loaded).await.expect("valid");
    let sink = CassandraSink::new(cassandra, 8);
    let routes = service::build_routes(&sink, plans).await.expect("prepared");
    let route = routes[0].clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(pipeline::run(
        Arc::new(broker.clone()),
        routes,
        sink.health.clone(),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !route.source_failing() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(route.source_failing(), "a refused open is reported");
    assert_eq!(route.receivers_up(), 0);

    broker.lock().refuse_open = None;
    broker.send(reading(1));
    assert!(
        broker
            .wait_for(Duration::from_secs(30), |s| s.completed.len() == 1)
            .await,
        "the route recovers once the source opens"
    );
    assert!(!route.source_failing());
    assert!(route.receivers_up() > 0);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}
