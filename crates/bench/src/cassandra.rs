//! The benchmark's own Cassandra session: a fresh keyspace per run, one fresh table per phase
//! (all of the same shape), and row counts to check that every phase wrote all its rows.

use std::time::Duration;

use anyhow::Context as _;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;

use crate::workload::TABLE_COLUMNS;

/// The consistency every phase writes at: the connector's default. On a one-node keyspace with
/// replication factor 1 it costs the same as `ONE`.
pub const WRITE_CONSISTENCY: Consistency = Consistency::LocalQuorum;

pub async fn connect(contact_point: &str) -> anyhow::Result<Session> {
    let profile = ExecutionProfile::builder()
        .consistency(WRITE_CONSISTENCY)
        .request_timeout(Some(Duration::from_secs(60)))
        .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
        .build()
        .into_handle();
    SessionBuilder::new()
        .known_node(contact_point)
        .connection_timeout(Duration::from_secs(5))
        .default_execution_profile_handle(profile)
        .build()
        .await
        .with_context(|| format!("cannot connect to Cassandra at {contact_point}"))
}

/// Creates the keyspace `name` with one replica in `datacenter1` (the benchmark measures one
/// node). NetworkTopologyStrategy because the connector prefers its local datacenter without
/// failover, which the driver warns about (per connection) on SimpleStrategy keyspaces.
pub async fn create_keyspace(session: &Session, name: &str) -> anyhow::Result<()> {
    let cql = format!(
        "CREATE KEYSPACE {name} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}}"
    );
    session
        .query_unpaged(cql, ())
        .await
        .with_context(|| format!("cannot create keyspace {name}"))?;
    Ok(())
}

pub async fn drop_keyspace(session: &Session, name: &str) -> anyhow::Result<()> {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), ())
        .await
        .with_context(|| format!("cannot drop keyspace {name}"))?;
    Ok(())
}

/// Creates `keyspace.table` with the readings shape.
pub async fn create_table(session: &Session, keyspace: &str, table: &str) -> anyhow::Result<()> {
    session
        .query_unpaged(
            format!("CREATE TABLE {keyspace}.{table} ({TABLE_COLUMNS})"),
            (),
        )
        .await
        .with_context(|| format!("cannot create table {keyspace}.{table}"))?;
    Ok(())
}

/// Rows in the table (a full scan: only used after a phase is timed).
pub async fn count_rows(session: &Session, keyspace: &str, table: &str) -> anyhow::Result<i64> {
    let result = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {keyspace}.{table}"), ())
        .await
        .with_context(|| format!("cannot count rows of {keyspace}.{table}"))?
        .into_rows_result()
        .context("COUNT(*) returned no rows")?;
    let (count,) = result
        .first_row::<(i64,)>()
        .context("COUNT(*) returned an unexpected row")?;
    Ok(count)
}

/// The INSERT every writer of the benchmark uses, with the same bound `USING TIMESTAMP` and
/// `TTL` as the connector's prepared statement.
pub fn insert_cql(keyspace: &str, table: &str) -> String {
    format!(
        "INSERT INTO {keyspace}.{table} (device_id, seq, ts, temperature, ingested) \
         VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
}
