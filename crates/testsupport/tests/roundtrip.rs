//! Writes rows to the real Cassandra node with a prepared statement and reads them back.
//! This is the smallest proof that tests have a working database.

use busdrain_testsupport::{cassandra, drop_keyspace, fresh_keyspace};

#[tokio::test]
async fn prepared_writes_read_back_from_a_real_node() {
    let session = cassandra().await;
    let keyspace = fresh_keyspace(&session, "roundtrip").await;

    session
        .query_unpaged(
            format!(
                "CREATE TABLE {keyspace}.events (
                    device text, seq int, body text, amount double,
                    PRIMARY KEY (device, seq))"
            ),
            &[],
        )
        .await
        .expect("create table");

    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.events (device, seq, body, amount) VALUES (?, ?, ?, ?)"
        ))
        .await
        .expect("prepare insert");
    let written: Vec<(String, i32, String, f64)> = (0..50)
        .map(|i| {
            let device = format!("device-{}", i % 3);
            (device, i, format!("payload {i}"), f64::from(i) * 1.5)
        })
        .collect();
    for row in &written {
        session
            .execute_unpaged(&insert, row)
            .await
            .expect("insert row");
    }

    // Read back partition by partition: clustering order gives seq ascending within each.
    let select = session
        .prepare(format!(
            "SELECT device, seq, body, amount FROM {keyspace}.events WHERE device = ?"
        ))
        .await
        .expect("prepare select");
    let mut read: Vec<(String, i32, String, f64)> = Vec::new();
    for device in ["device-0", "device-1", "device-2"] {
        let result = session
            .execute_unpaged(&select, (device,))
            .await
            .expect("select partition")
            .into_rows_result()
            .expect("select returns rows");
        for row in result
            .rows::<(String, i32, String, f64)>()
            .expect("row types match the table")
        {
            read.push(row.expect("row deserializes"));
        }
    }

    let mut expected = written.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    assert_eq!(read.len(), 50, "every written row reads back");
    assert_eq!(read, expected);

    // An upsert with the same key replaces the row: the property the connector relies on.
    session
        .execute_unpaged(
            &insert,
            (
                "device-0".to_owned(),
                0_i32,
                "rewritten".to_owned(),
                -1.0_f64,
            ),
        )
        .await
        .expect("upsert");
    let (body, amount) = session
        .query_unpaged(
            format!(
                "SELECT body, amount FROM {keyspace}.events WHERE device = 'device-0' AND seq = 0"
            ),
            &[],
        )
        .await
        .expect("select one")
        .into_rows_result()
        .expect("rows")
        .single_row::<(String, f64)>()
        .expect("exactly one row");
    assert_eq!((body.as_str(), amount), ("rewritten", -1.0));

    drop_keyspace(&session, &keyspace).await;
}

#[tokio::test]
async fn fresh_keyspaces_are_distinct_and_exist() {
    let session = cassandra().await;
    let first = fresh_keyspace(&session, "distinct").await;
    let second = fresh_keyspace(&session, "distinct").await;
    assert_ne!(first, second);

    let result = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name IN (?, ?)",
            (&first, &second),
        )
        .await
        .expect("read system_schema")
        .into_rows_result()
        .expect("rows");
    let mut names: Vec<String> = result
        .rows::<(String,)>()
        .expect("text column")
        .map(|row| row.expect("row").0)
        .collect();
    names.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(names, expected);

    drop_keyspace(&session, &first).await;
    drop_keyspace(&session, &second).await;
}
