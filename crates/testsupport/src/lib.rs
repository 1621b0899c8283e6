//! busdrain-testsupport: the one way integration tests reach a real Apache Cassandra node.
//!
//! Tests call [`cassandra`] for a connected `scylla` session and [`fresh_keyspace`] for a
//! keyspace nobody else uses, so tests can run in parallel against one shared node without
//! seeing each other's rows. The node itself is started by `tools/cassandra/cassandra start`
//! (which `scripts/test` does for you).
//!
//! This crate is test code: when Cassandra is unreachable it panics with instructions rather
//! than letting a test skip. A test that cannot reach its database must fail loudly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// `host:port` of the node tests talk to, unless `BUSDRAIN_CASSANDRA` says otherwise.
pub const DEFAULT_CASSANDRA_ADDRESS: &str = "127.0.0.1:9042";

/// Longest keyspace name Cassandra accepts (SchemaConstants.NAME_LENGTH).
const MAX_KEYSPACE_NAME_LEN: usize = 48;

/// The node address tests use: `BUSDRAIN_CASSANDRA` or [`DEFAULT_CASSANDRA_ADDRESS`].
pub fn cassandra_address() -> String {
    std::env::var("BUSDRAIN_CASSANDRA")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CASSANDRA_ADDRESS.to_owned())
}

/// Credentials for a node started with `--auth`: `BUSDRAIN_CASSANDRA_USER` and
/// `BUSDRAIN_CASSANDRA_PASSWORD` (Cassandra's default superuser is cassandra / cassandra).
fn cassandra_credentials() -> Option<(String, String)> {
    let user = std::env::var("BUSDRAIN_CASSANDRA_USER").ok()?;
    let password = std::env::var("BUSDRAIN_CASSANDRA_PASSWORD").unwrap_or_default();
    Some((user, password))
}

/// Connects to the test node.
///
/// # Panics
/// When the node cannot be reached, with a message that says how to start it. Tests must fail,
/// never skip, when their database is missing.
pub async fn cassandra() -> Session {
    let address = cassandra_address();
    let mut builder = SessionBuilder::new()
        .known_node(&address)
        .connection_timeout(Duration::from_secs(5));
    if let Some((user, password)) = cassandra_credentials() {
        builder = builder.user(user, password);
    }
    match builder.build().await {
        Ok(session) => session,
        Err(error) => panic!(
            "cannot connect to Apache Cassandra at {address}: {error}\n\
             Start the local node with `tools/cassandra/cassandra start` (from the repository \
             root; `tools/cassandra/cassandra fetch` first on a new machine), or point \
             BUSDRAIN_CASSANDRA at a running node (host:port). `scripts/test` does all of this."
        ),
    }
}

/// Creates a keyspace no other test uses (SimpleStrategy, replication factor 1) and returns its
/// name: `<prefix>_<unique suffix>`, lower-case, at most 48 characters.
///
/// # Panics
/// When Cassandra rejects the statement; the test cannot go on without its keyspace.
pub async fn fresh_keyspace(session: &Session, prefix: &str) -> String {
    let name = unique_keyspace_name(prefix);
    let cql = format!(
        "CREATE KEYSPACE {name} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    );
    if let Err(error) = session.query_unpaged(cql, &[]).await {
        panic!("creating test keyspace {name} failed: {error}");
    }
    name
}

/// Drops a keyspace made by [`fresh_keyspace`]. Tests that create many keyspaces (or large
/// ones) call it at the end; leftovers are harmless and vanish with `tools/cassandra/cassandra wipe`.
///
/// # Panics
/// When Cassandra rejects the statement.
pub async fn drop_keyspace(session: &Session, name: &str) {
    let cql = format!("DROP KEYSPACE IF EXISTS {name}");
    if let Err(error) = session.query_unpaged(cql, &[]).await {
        panic!("dropping test keyspace {name} failed: {error}");
    }
}

/// `<sanitized prefix>_<base36 millis><random hex>`: unique across parallel tests and runs, and
/// a valid unquoted CQL identifier (letters, digits, underscores, starting with a letter).
pub fn unique_keyspace_name(prefix: &str) -> String {
    let mut sanitized: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !sanitized.starts_with(|c: char| c.is_ascii_lowercase()) {
        sanitized.insert_str(0, "t_");
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    // 9 base36 digits of time + 12 hex digits of randomness + 1 separator = 22 characters.
    let suffix = format!("_{}{}", to_base36(millis), &random[..12]);
    sanitized.truncate(MAX_KEYSPACE_NAME_LEN - suffix.len());
    sanitized + &suffix
}

fn to_base36(mut value: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_valid_identifiers_within_the_length_limit() {
        for prefix in [
            "roundtrip",
            "Mixed-Case.Prefix",
            "9starts_with_digit",
            "",
            &"x".repeat(100),
        ] {
            let name = unique_keyspace_name(prefix);
            assert!(name.len() <= MAX_KEYSPACE_NAME_LEN, "{name} too long");
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn keyspace_names_differ_between_calls() {
        assert_ne!(unique_keyspace_name("same"), unique_keyspace_name("same"));
    }

    #[test]
    fn base36_matches_known_values() {
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
    }
}
