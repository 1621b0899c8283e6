//! The ceiling writer against the real Cassandra node (`tools/cassandra/cassandra start`):
//! every shape writes every row, exactly once, with the generated values.

use std::sync::Arc;

use busdrain_bench::cassandra::{self, count_rows, create_keyspace, drop_keyspace};
use busdrain_bench::ceiling::{self, WriteSettings, WriteShape};
use busdrain_bench::workload::readings;

fn cassandra_address() -> String {
    std::env::var("BUSDRAIN_TEST_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".to_string())
}

#[tokio::test]
async fn every_write_shape_writes_every_row() {
    let session = Arc::new(cassandra::connect(&cassandra_address()).await.unwrap());
    let keyspace = format!("bench_test_{}", std::process::id());
    create_keyspace(&session, &keyspace).await.unwrap();
    let rows = readings(1_000, 1_700_000_000_000);

    for (index, shape) in [WriteShape::SingleRow, WriteShape::PartitionBatch]
        .into_iter()
        .enumerate()
    {
        let table = format!("t{index}");
        cassandra::create_table(&session, &keyspace, &table)
            .await
            .unwrap();
        let insert = session
            .prepare(cassandra::insert_cql(&keyspace, &table))
            .await
            .unwrap();
        let settings = WriteSettings {
            shape,
            concurrency: 16,
        };
        let run = ceiling::write_all(&session, &insert, &rows, settings)
            .await
            .unwrap();
        assert_eq!(run.rows, 1_000);
        assert!(run.rows_per_second > 0.0);
        assert_eq!(
            count_rows(&session, &keyspace, &table).await.unwrap(),
            1_000
        );

        let row = session
            .query_unpaged(
                format!(
                    "SELECT temperature, ts, writetime(temperature) FROM {keyspace}.{table} \
                     WHERE device_id = 'dev-7' AND seq = 107"
                ),
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        let (temperature, ts, writetime) = row
            .single_row::<(f64, scylla::value::CqlTimestamp, i64)>()
            .unwrap();
        assert_eq!(temperature, rows[107].temperature);
        assert_eq!(ts.0, 1_700_000_000_107);
        assert_eq!(
            writetime, 1_700_000_000_107_000,
            "USING TIMESTAMP is the event time"
        );
    }
    drop_keyspace(&session, &keyspace).await.unwrap();
}
