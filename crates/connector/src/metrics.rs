//! The connector's metrics: names, labels and units in one place (documented in
//! `docs/configuration.md`). Recorded through the `metrics` facade; exported by the admin
//! server's Prometheus recorder.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const RECEIVED: &str = "busdrain_messages_received_total";
pub const WRITTEN: &str = "busdrain_messages_written_total";
pub const COMPLETED: &str = "busdrain_messages_completed_total";
pub const DEAD_LETTERED: &str = "busdrain_messages_dead_lettered_total";
pub const ABANDONED: &str = "busdrain_messages_abandoned_total";
pub const SETTLE_FAILURES: &str = "busdrain_settle_failures_total";
pub const WRITE_RETRIES: &str = "busdrain_write_retries_total";
pub const BATCH_ROWS: &str = "busdrain_batch_rows";
pub const BATCH_BYTES: &str = "busdrain_batch_bytes";
pub const WRITE_LATENCY: &str = "busdrain_write_latency_seconds";
pub const IN_FLIGHT: &str = "busdrain_messages_in_flight";
pub const LOCK_RENEWALS: &str = "busdrain_lock_renewals_total";
pub const LOCK_RENEWAL_FAILURES: &str = "busdrain_lock_renewal_failures_total";
pub const CONCURRENCY_LIMIT: &str = "busdrain_write_concurrency_limit";
pub const SINK_HEALTHY: &str = "busdrain_cassandra_healthy";
pub const RECEIVE_ERRORS: &str = "busdrain_receive_errors_total";

/// Registers the help text and units (call once, after installing the recorder).
pub fn describe() {
    describe_counter!(RECEIVED, "Messages received from the route's entity.");
    describe_counter!(WRITTEN, "Messages whose row Cassandra acknowledged.");
    describe_counter!(COMPLETED, "Messages completed (settled) after their write.");
    describe_counter!(
        DEAD_LETTERED,
        "Messages dead-lettered, by reason (InvalidJson, MissingField, TypeMismatch, ValueOutOfRange, WriteRejected)."
    );
    describe_counter!(
        ABANDONED,
        "Messages returned to the entity (shutdown before their write succeeded)."
    );
    describe_counter!(
        SETTLE_FAILURES,
        "Settlements that failed (the message will be redelivered)."
    );
    describe_counter!(
        WRITE_RETRIES,
        "Write attempts retried after a transient Cassandra error."
    );
    describe_histogram!(
        BATCH_ROWS,
        Unit::Count,
        "Rows per write request (1 = single INSERT, more = UNLOGGED batch of one partition)."
    );
    describe_histogram!(
        BATCH_BYTES,
        Unit::Bytes,
        "Estimated bytes of bound values per write request."
    );
    describe_histogram!(
        WRITE_LATENCY,
        Unit::Seconds,
        "Latency of successful write requests."
    );
    describe_gauge!(IN_FLIGHT, "Messages received and not yet settled.");
    describe_counter!(
        LOCK_RENEWALS,
        "Message lock renewals while a write was pending."
    );
    describe_counter!(
        LOCK_RENEWAL_FAILURES,
        "Lock renewals that failed (the message will be redelivered)."
    );
    describe_gauge!(
        CONCURRENCY_LIMIT,
        "Current adaptive limit of concurrent write requests."
    );
    describe_gauge!(
        SINK_HEALTHY,
        "1 while Cassandra accepts writes, 0 while receiving is paused."
    );
    describe_counter!(RECEIVE_ERRORS, "Failed receive or session-accept calls.");
}

/// One route's metric handles, registered once so the hot path records without building labels.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub received: metrics::Counter,
    pub written: metrics::Counter,
    pub completed: metrics::Counter,
    dead_lettered: [metrics::Counter; 5],
    pub abandoned: metrics::Counter,
    pub settle_failures: metrics::Counter,
    pub write_retries: metrics::Counter,
    pub batch_rows: metrics::Histogram,
    pub batch_bytes: metrics::Histogram,
    pub write_latency: metrics::Histogram,
    pub in_flight: metrics::Gauge,
    pub lock_renewals: metrics::Counter,
    pub lock_renewal_failures: metrics::Counter,
    pub receive_errors: metrics::Counter,
}

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        let r = route.to_owned();
        let dead_lettered = crate::mapping::DeadLetterReason::ALL.map(|reason| {
            metrics::counter!(DEAD_LETTERED, "route" => r.clone(), "reason" => reason.as_str())
        });
        Self {
            received: metrics::counter!(RECEIVED, "route" => r.clone()),
            written: metrics::counter!(WRITTEN, "route" => r.clone()),
            completed: metrics::counter!(COMPLETED, "route" => r.clone()),
            dead_lettered,
            abandoned: metrics::counter!(ABANDONED, "route" => r.clone()),
            settle_failures: metrics::counter!(SETTLE_FAILURES, "route" => r.clone()),
            write_retries: metrics::counter!(WRITE_RETRIES, "route" => r.clone()),
            batch_rows: metrics::histogram!(BATCH_ROWS, "route" => r.clone()),
            batch_bytes: metrics::histogram!(BATCH_BYTES, "route" => r.clone()),
            write_latency: metrics::histogram!(WRITE_LATENCY, "route" => r.clone()),
            in_flight: metrics::gauge!(IN_FLIGHT, "route" => r.clone()),
            lock_renewals: metrics::counter!(LOCK_RENEWALS, "route" => r.clone()),
            lock_renewal_failures: metrics::counter!(LOCK_RENEWAL_FAILURES, "route" => r.clone()),
            receive_errors: metrics::counter!(RECEIVE_ERRORS, "route" => r),
        }
    }

    pub fn dead_lettered(&self, reason: crate::mapping::DeadLetterReason) -> &metrics::Counter {
        let index = crate::mapping::DeadLetterReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        &self.dead_lettered[index]
    }
}
