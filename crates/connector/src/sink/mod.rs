//! The Cassandra side: one driver session shared by every route, a prepared INSERT per route,
//! partition-grouped UNLOGGED batches, an adaptive concurrency limit and a health gate.
//!
//! Every statement is idempotent (an INSERT with a bound `USING TIMESTAMP` rewrites the same
//! cells with the same timestamp), so the driver may retry and speculate, and the connector
//! may redeliver, without changing the result.

pub mod batcher;
pub mod classify;
pub mod health;
pub mod limit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio_util::sync::CancellationToken;

use crate::config::{CassandraConfig, Consistency};
use crate::mapping::MappedRow;
use crate::metrics::RouteMetrics;
use crate::schema::RoutePlan;
pub use classify::WriteFailure;
use health::SinkHealth;
use limit::AdaptiveLimit;

/// Consecutive failed attempts of one write after which receiving pauses even when the
/// errors did not look like an outage (e.g. repeated write timeouts).
const PAUSE_AFTER_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to Cassandra at {contact_points}: {message}")]
    Connect {
        contact_points: String,
        message: String,
    },
    #[error("[cassandra.tls]: {0}")]
    Tls(String),
    #[error("route {route:?}: cannot prepare `{cql}`: {message}")]
    Prepare {
        route: String,
        cql: String,
        message: String,
    },
}

fn driver_consistency(c: Consistency) -> scylla::statement::Consistency {
    use scylla::statement::Consistency as D;
    match c {
        Consistency::Any => D::Any,
        Consistency::One => D::One,
        Consistency::Two => D::Two,
        Consistency::Three => D::Three,
        Consistency::Quorum => D::Quorum,
        Consistency::All => D::All,
        Consistency::LocalQuorum => D::LocalQuorum,
        Consistency::EachQuorum => D::EachQuorum,
        Consistency::LocalOne => D::LocalOne,
    }
}

/// Opens the driver session: token-aware routing that prefers the local datacenter, the
/// configured default consistency and request timeout, optional password auth and TLS.
pub async fn connect(config: &CassandraConfig) -> Result<Session, SinkError> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &config.local_datacenter {
        policy = policy
            .prefer_datacenter(dc.clone())
            .permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(driver_consistency(config.consistency))
        .request_timeout(Some(config.request_timeout))
        .load_balancing_policy(policy.build())
        .retry_policy(Arc::new(DefaultRetryPolicy::new()))
        .build()
        .into_handle();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(Duration::from_secs(5))
        .default_execution_profile_handle(profile);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.user(user, password.expose());
    }
    if let Some(tls) = &config.tls {
        builder = builder.tls_context(Some(tls_context(tls)?));
    }
    builder.build().await.map_err(|e| SinkError::Connect {
        contact_points: config.contact_points.join(", "),
        message: e.to_string(),
    })
}

fn tls_context(tls: &crate::config::TlsConfig) -> Result<Arc<rustls::ClientConfig>, SinkError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                SinkError::Tls(format!(
                    "cannot read certificates from {}: {e}",
                    path.display()
                ))
            })
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(&tls.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| SinkError::Tls(format!("{}: {e}", tls.ca_file.display())))?;
    }
    // Two crypto providers may be compiled in (ring and aws-lc-rs); name one explicitly.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                SinkError::Tls(format!(
                    "cannot read the private key {}: {e}",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SinkError::Tls(format!("client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What is shared by every route's writer.
#[derive(Debug)]
pub struct CassandraSink {
    pub session: Arc<Session>,
    pub limit: Arc<AdaptiveLimit>,
    pub health: SinkHealth,
}

impl CassandraSink {
    pub fn new(session: Arc<Session>, max_concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            session,
            limit: AdaptiveLimit::new(4.min(max_concurrency), max_concurrency),
            health: SinkHealth::new(),
        })
    }
}

/// How one row's write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Acknowledged at the route's consistency level.
    Written,
    /// Refused by Cassandra for its values; dead-letter it.
    Rejected(String),
    /// Not written before the stop deadline; return it to the entity.
    Abandoned,
}

/// Writes one route's rows with its prepared INSERT.
#[derive(Debug)]
pub struct RouteWriter {
    sink: Arc<CassandraSink>,
    insert: PreparedStatement,
    route: Arc<str>,
    metrics: RouteMetrics,
}

impl RouteWriter {
    pub async fn prepare(
        sink: Arc<CassandraSink>,
        plan: &RoutePlan,
        metrics: RouteMetrics,
    ) -> Result<Self, SinkError> {
        let cql = plan.insert_cql();
        let mut insert =
            sink.session
                .prepare(cql.as_str())
                .await
                .map_err(|e| SinkError::Prepare {
                    route: plan.name.to_string(),
                    cql: cql.clone(),
                    message: e.to_string(),
                })?;
        insert.set_is_idempotent(true);
        insert.set_consistency(driver_consistency(plan.consistency));
        Ok(Self {
            sink,
            insert,
            route: plan.name.clone(),
            metrics,
        })
    }

    pub fn sink(&self) -> &Arc<CassandraSink> {
        &self.sink
    }

    /// One attempt: a single INSERT, or an UNLOGGED batch of rows of one partition.
    pub async fn write_once(
        &self,
        rows: &[&MappedRow],
    ) -> Result<(), scylla::errors::ExecutionError> {
        let permit = self.sink.limit.acquire().await;
        let started = Instant::now();
        let result = if let [row] = rows {
            self.sink
                .session
                .execute_unpaged(&self.insert, &row.values)
                .await
                .map(drop)
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            for _ in rows {
                batch.append_statement(self.insert.clone());
            }
            batch.set_is_idempotent(true);
            if let Some(c) = self.insert.get_consistency() {
                batch.set_consistency(c);
            }
            let values: Vec<&Vec<_>> = rows.iter().map(|r| &r.values).collect();
            self.sink.session.batch(&batch, values).await.map(drop)
        };
        match &result {
            Ok(()) => {
                self.metrics
                    .write_latency
                    .record(started.elapsed().as_secs_f64());
                self.metrics.batch_rows.record(rows.len() as f64);
                self.metrics
                    .batch_bytes
                    .record(rows.iter().map(|r| r.approx_bytes).sum::<usize>() as f64);
                permit.success();
            }
            Err(e) => match classify::classify(e) {
                WriteFailure::Transient { overload: true, .. } => permit.overloaded(),
                _ => drop(permit),
            },
        }
        metrics::gauge!(crate::metrics::CONCURRENCY_LIMIT).set(self.sink.limit.limit() as f64);
        result
    }

    /// Writes rows of one partition until acknowledged, refused, or `stop` fires.
    ///
    /// Transient failures are retried with exponential backoff (50 ms → 5 s, jittered) for as
    /// long as it takes: the caller renews the messages' locks meanwhile, and the health gate
    /// pauses receiving. A refused batch is split so only the offending rows are rejected.
    pub async fn write(&self, rows: &[&MappedRow], stop: &CancellationToken) -> Vec<RowOutcome> {
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts = 0usize;
        loop {
            let error = match self.write_once(rows).await {
                Ok(()) => {
                    self.sink.health.mark_healthy();
                    return vec![RowOutcome::Written; rows.len()];
                }
                Err(e) => e,
            };
            attempts += 1;
            match classify::classify(&error) {
                WriteFailure::Rejected if rows.len() > 1 => {
                    // Find the offending rows: write each alone.
                    let mut outcomes = Vec::with_capacity(rows.len());
                    for row in rows {
                        let single = Box::pin(self.write(std::slice::from_ref(row), stop)).await;
                        outcomes.extend(single);
                    }
                    return outcomes;
                }
                WriteFailure::Rejected => {
                    return vec![RowOutcome::Rejected(error.to_string())];
                }
                WriteFailure::Misconfigured => {
                    tracing::error!(route = %self.route, %error, "Cassandra refuses the route's statement; fix the schema or permissions");
                    self.sink.health.mark_unhealthy(&error.to_string());
                }
                WriteFailure::Transient { unreachable, .. } => {
                    tracing::debug!(route = %self.route, %error, attempts, "write failed, retrying");
                    if unreachable || attempts >= PAUSE_AFTER_ATTEMPTS {
                        self.sink.health.mark_unhealthy(&error.to_string());
                    }
                }
            }
            self.metrics.write_retries.increment(1);
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return vec![RowOutcome::Abandoned; rows.len()],
            }
        }
    }
}
