//! Schema validation and the write path against the real Cassandra node
//! (`tools/cassandra/cassandra start`; each test uses a fresh keyspace).

mod support;

use std::path::Path;
use std::sync::Arc;

use busdrain_connector::config::Config;
use busdrain_connector::metrics::RouteMetrics;
use busdrain_connector::service::{self, StartupError};
use busdrain_connector::sink::{CassandraSink, RouteWriter, RowOutcome};
use busdrain_connector::CancellationToken;
use scylla::value::{CqlTimestamp, CqlValue, Row};
use time::OffsetDateTime;

use support::{config_text, message_at, run_cql};

async fn readings_keyspace() -> (scylla::client::session::Session, String) {
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, "sink").await;
    run_cql(
        &session,
        &format!(
            "CREATE TABLE {ks}.readings (device text, ts timestamp, temp double, count int, \
             note text, PRIMARY KEY (device, ts))"
        ),
    )
    .await;
    (session, ks)
}

fn load(text: &str) -> busdrain_connector::config::LoadedConfig {
    Config::load_str(Path::new("test.toml"), text, Vec::new()).expect("config parses")
}

#[tokio::test]
async fn schema_errors_name_route_column_and_fix() {
    let (session, ks) = readings_keyspace().await;
    let text = config_text(
        &ks,
        "readings",
        "device = \"body.device\"\ntmp = \"body.temp\"\ncount = \"enqueued_time\"\nnote = \"const:x\"",
        "",
    );
    let err = service::validate(&load(&text)).await.expect_err("refused");
    let StartupError::Schema(problems) = &err else {
        panic!("expected schema problems, got {err}");
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let all = problems.join("\n");
    assert!(
        all.contains("column \"tmp\"") && all.contains("Did you mean \"temp\"?"),
        "{all}"
    );
    assert!(
        all.contains("\"ts\": primary-key column (timestamp)"),
        "{all}"
    );
    assert!(
        all.contains("enqueued_time cannot fill a int column"),
        "{all}"
    );
    assert!(all.contains("route \"r1\""), "{all}");

    let good = config_text(
        &ks,
        "readings",
        "device = \"body.device\"\nts = \"enqueued_time\"\ntemp = \"body.temp\"",
        "",
    );
    let (_, plans) = service::validate(&load(&good)).await.expect("valid");
    assert_eq!(plans.len(), 1);
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}

#[tokio::test]
async fn missing_table_and_keyspace_are_refused() {
    let (session, ks) = readings_keyspace().await;
    let text = config_text(&ks, "reading", "device = \"body.device\"", "");
    let err = service::validate(&load(&text)).await.expect_err("no table");
    assert!(
        err.to_string()
            .contains(&format!("Did you mean {ks}.readings?")),
        "{err}"
    );
    busdrain_testsupport::drop_keyspace(&session, &ks).await;
}

#[tokio::test]
async fn unreachable_cassandra_is_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let text = config_text("ks", "t", "a = \"body.a\"", "").replace(
        &busdrain_testsupport::cassandra_address(),
        &format!("127.0.0.1:{port}"),
    );
    let err = service::validate(&load(&text))
        .await
        .expect_err("unreachable");
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("cannot connect to Cassandra at 127.0.0.1:{port}")),
        "{shown}"
    );
}

async fn writer_for(
    session: scylla::client::session::Session,
    text: &str,
) -> (
    Arc<CassandraSink>,
    RouteWriter,
    busdrain_connector::schema::RoutePlan,
) {
    let loaded = load(text);
    let (validated, mut plans) = service::validate(&loaded).await.expect("valid config");
    drop(validated);
    let plan = plans.remove(0);
    let sink = CassandraSink::new(Arc::new(session), 16);
    let writer = RouteWriter::prepare(sink.clone(), &plan, RouteMetrics::new(&plan.name))
        .await
        .expect("prepares");
    (sink, writer, plan)
}

async fn select_one(session: &scylla::client::session::Session, cql: &str) -> Row {
    let result = session.query_unpaged(cql, &[]).await.expect("select");
    let rows = result.into_rows_result().expect("rows");
    let mut rows = rows.rows::<Row>().expect("typed rows");
    rows.next().expect("one row").expect("row decodes")
}

#[tokio::test]
async fn every_cql_type_is_written_and_read_back() {
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, "types").await;
    run_cql(&session, &format!("CREATE TYPE {ks}.point (x int, y int)")).await;
    run_cql(
        &session,
        &format!("CREATE TYPE {ks}.shape (name text, corners frozen<list<frozen<point>>>)"),
    )
    .await;
    run_cql(
        &session,
        &format!(
            "CREATE TABLE {ks}.all_types (id text PRIMARY KEY, a ascii, vc varchar, ti tinyint, \
             si smallint, i int, bi bigint, vi varint, f float, d double, de decimal, b boolean, \
             u uuid, tu timeuuid, ts timestamp, dt date, tm time, du duration, ip inet, bl blob, \
             l list<int>, s set<text>, m map<text, double>, tp tuple<int, text>, \
             sh frozen<shape>, fl frozen<list<frozen<set<int>>>>)"
        ),
    )
    .await;
    let columns = [
        "id", "a", "vc", "ti", "si", "i", "bi", "vi", "f", "d", "de", "b", "u", "tu", "ts", "dt",
        "tm", "du", "ip", "bl", "l", "s", "m", "tp", "sh", "fl",
    ]
    .iter()
    .map(|c| format!("{c} = \"body.{c}\""))
    .collect::<Vec<_>>()
    .join("\n");
    let text = config_text(&ks, "all_types", &columns, "");
    let (sink, writer, plan) = writer_for(session, &text).await;
    let body = r#"{
        "id": "row-1", "a": "plain", "vc": "vär", "ti": -128, "si": 32767, "i": "-7",
        "bi": 9007199254740993, "vi": "123456789012345678901234567890", "f": 1.5, "d": -2.25,
        "de": "-12.345", "b": "true", "u": "6f1c1b8e-8d4e-4a4b-9c3e-2f1a0b9c8d7e",
        "tu": "e8f3a7a0-0c1d-11ef-9262-0242ac120002", "ts": "2024-05-01T14:00:00.123+02:00",
        "dt": "2024-02-29", "tm": "12:34:56.789", "du": "1h30m", "ip": "::1", "bl": "aGVsbG8=",
        "l": [3, 1, 2], "s": ["b", "a"], "m": {"k": 0.5}, "tp": [1, null],
        "sh": {"name": "tri", "corners": [{"x": 1, "y": 2}, {"x": 3}]},
        "fl": [[2, 1], []]
    }"#;
    let msg = message_at(body, OffsetDateTime::now_utc(), 1);
    let row = plan
        .mapper
        .map(&msg, OffsetDateTime::now_utc())
        .expect("maps");
    let outcome = writer.write(&[&row], &CancellationToken::new()).await;
    assert_eq!(outcome, vec![RowOutcome::Written]);
    assert!(sink.health.is_healthy());

    let read = select_one(
        &writer.sink().session,
        &format!(
            "SELECT a, vc, ti, si, i, bi, vi, f, d, de, b, u, tu, ts, dt, tm, du, ip, bl, l, s, \
             m, tp, sh, fl FROM {ks}.all_types WHERE id = 'row-1'"
        ),
    )
    .await;
    let got: Vec<Option<CqlValue>> = read.columns;
    // The written values, in the same order, as the mapper produced them.
    let names = [
        "a", "vc", "ti", "si", "i", "bi", "vi", "f", "d", "de", "b", "u", "tu", "ts", "dt", "tm",
        "du", "ip", "bl", "l", "s", "m", "tp", "sh", "fl",
    ];
    for (name, read_back) in names.iter().zip(&got) {
        let index = plan
            .mapper
            .columns()
            .iter()
            .position(|c| c.name == *name)
            .expect("mapped");
        let written = match &row.values[index] {
            scylla::value::MaybeUnset::Set(v) => v.clone(),
            scylla::value::MaybeUnset::Unset => None,
        };
        let normalize = |v: &Option<CqlValue>| match v {
            // Sets come back sorted.
            Some(CqlValue::Set(items)) => {
                let mut items = items.clone();
                items.sort_by_key(|i| format!("{i:?}"));
                Some(CqlValue::Set(items))
            }
            Some(CqlValue::List(items)) => Some(CqlValue::List(
                items
                    .iter()
                    .map(|i| match i {
                        CqlValue::Set(s) => {
                            let mut s = s.clone();
                            s.sort_by_key(|x| format!("{x:?}"));
                            CqlValue::Set(s)
                        }
                        other => other.clone(),
                    })
                    .collect(),
            )),
            other => other.clone(),
        };
        assert_eq!(normalize(read_back), normalize(&written), "column {name}");
    }
    assert_eq!(
        got[13],
        Some(CqlValue::Timestamp(CqlTimestamp(1_714_564_800_123)))
    );
    busdrain_testsupport::drop_keyspace(&writer.sink().session, &ks).await;
}

#[tokio::test]
async fn an_older_event_never_overwrites_a_newer_one() {
    let (session, ks) = readings_keyspace().await;
    let text = config_text(
        &ks,
        "readings",
        "device = \"body.device\"\nts = \"body.ts\"\ntemp = \"body.temp\"",
        "",
    );
    let (_sink, writer, plan) = writer_for(session, &text).await;
    let body =
        |temp: f64| format!(r#"{{"device": "d1", "ts": "2024-05-01T00:00:00Z", "temp": {temp}}}"#);
    let t0 = OffsetDateTime::now_utc();
    let newer = message_at(&body(2.0), t0 + time::Duration::seconds(10), 2);
    let older = message_at(&body(1.0), t0, 1);
    for msg in [&newer, &older, &newer, &older] {
        // Delivered newest first, then the late older one, then both redelivered.
        let row = plan.mapper.map(msg, t0).expect("maps");
        let outcome = writer.write(&[&row], &CancellationToken::new()).await;
        assert_eq!(outcome, vec![RowOutcome::Written]);
    }
    let read = select_one(
        &writer.sink().session,
        &format!("SELECT temp, writetime(temp) FROM {ks}.readings WHERE device = 'd1'"),
    )
    .await;
    assert_eq!(read.columns[0], Some(CqlValue::Double(2.0)));
    let micros = (t0 + time::Duration::seconds(10)).unix_timestamp_nanos() / 1000;
    assert_eq!(read.columns[1], Some(CqlValue::BigInt(micros as i64)));
    busdrain_testsupport::drop_keyspace(&writer.sink().session, &ks).await;
}

#[tokio::test]
async fn partition_batches_write_every_row_and_isolate_a_rejected_one() {
    let (session, ks) = readings_keyspace().await;
    let text = config_text(
        &ks,
        "readings",
        "device = \"body.device\"\nts = \"body.ts\"\ntemp = \"body.temp\"\nnote = \"body.note\"",
        "[routes.batch]\nmax_rows = 8\nmax_bytes = 4096",
    );
    let (_sink, writer, plan) = writer_for(session, &text).await;
    let t0 = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for i in 0..100 {
        // Row 37's partition key is over Cassandra's 64 KiB limit: only it is refused.
        let device = if i == 37 {
            "k".repeat(70_000)
        } else {
            format!("d{}", i % 10)
        };
        let body = format!(
            r#"{{"device": "{device}", "ts": {}, "temp": {i}, "note": "n"}}"#,
            1_714_564_800_000i64 + i
        );
        rows.push(
            plan.mapper
                .map(&message_at(&body, t0, i), t0)
                .expect("maps"),
        );
    }
    let refs: Vec<_> = rows.iter().collect();
    let groups = busdrain_connector::sink::batcher::plan_batches(&refs, &plan.batch);
    let stop = CancellationToken::new();
    let mut rejected = 0;
    let mut written = 0;
    for group in &groups {
        assert!(group
            .iter()
            .all(|&i| rows[i].partition == rows[group[0]].partition));
        assert!(group.len() <= 8);
        let batch: Vec<_> = group.iter().map(|&i| &rows[i]).collect();
        for outcome in writer.write(&batch, &stop).await {
            match outcome {
                RowOutcome::Written => written += 1,
                RowOutcome::Rejected(why) => {
                    assert!(why.to_lowercase().contains("key"), "{why}");
                    rejected += 1
                }
                RowOutcome::Abandoned => panic!("nothing is abandoned without a stop"),
            }
        }
    }
    assert_eq!((written, rejected), (99, 1));
    let count = select_one(
        &writer.sink().session,
        &format!("SELECT COUNT(*) FROM {ks}.readings"),
    )
    .await;
    assert_eq!(count.columns[0], Some(CqlValue::BigInt(99)));
    busdrain_testsupport::drop_keyspace(&writer.sink().session, &ks).await;
}
