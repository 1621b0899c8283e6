//! What one benchmark invocation sets up and tears down: a run directory for the child
//! processes and a fresh keyspace, both removed at the end unless `--keep`.

use std::sync::Arc;

use anyhow::Context as _;
use scylla::client::session::Session;

use crate::{cassandra, BenchOptions};

pub(crate) struct RunScope {
    pub(crate) run_dir: tempfile::TempDir,
    pub(crate) session: Arc<Session>,
    pub(crate) keyspace: String,
}

impl RunScope {
    pub(crate) async fn open(options: &BenchOptions) -> anyhow::Result<Self> {
        let run_dir = tempfile::Builder::new()
            .prefix("busdrain-bench-")
            .tempdir()
            .context("cannot create a run directory")?;
        let session = Arc::new(cassandra::connect(&options.cassandra).await?);
        let keyspace = format!(
            "bench_{}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
        );
        cassandra::create_keyspace(&session, &keyspace).await?;
        Ok(Self {
            run_dir,
            session,
            keyspace,
        })
    }

    /// Drops the keyspace and the run directory, or keeps both for inspection.
    pub(crate) async fn close(self, keep: bool) {
        if keep {
            let kept = self.run_dir.keep();
            tracing::info!(keyspace = %self.keyspace, run_dir = %kept.display(), "kept for inspection");
        } else if let Err(error) = cassandra::drop_keyspace(&self.session, &self.keyspace).await {
            tracing::warn!(%error, keyspace = %self.keyspace, "cannot drop the benchmark keyspace");
        }
    }
}
