//! One route at run time, and the life of one received batch of messages:
//! map → dead-letter the poison at once → group by partition → write → settle.
//!
//! Invariant: a message is completed only after Cassandra acknowledged its row. Until then its
//! lock is renewed at about half its remaining duration, so a write that is retried for a long
//! time (Cassandra down) does not let the broker redeliver it and burn delivery counts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::mapping::{DeadLetterReason, MappedRow};
use crate::metrics::RouteMetrics;
use crate::schema::RoutePlan;
use crate::sink::batcher::plan_batches;
use crate::sink::{RouteWriter, RowOutcome};
use crate::source::{DeadLetter, LockToken, MessageSource, ReceivedMessage, SourceError};

/// Lock duration assumed when the source does not report `locked_until` (Service Bus's
/// default is 60 s; renewing at 15 s is safe for any lock of 30 s or more).
const ASSUMED_LOCK: Duration = Duration::from_secs(30);

/// Bound on one lock renewal. azservicebus answers a lost lock (410) only after recovering its
/// link (~11 s); waiting that out per message would outlast the locks being renewed.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);

/// A route's plan, writer and counters, shared by its receiver tasks.
#[derive(Debug)]
pub struct RouteRuntime {
    pub plan: RoutePlan,
    pub writer: RouteWriter,
    pub metrics: RouteMetrics,
    /// Receiver tasks currently holding an open source.
    pub(crate) receivers_up: AtomicUsize,
    /// The last attempt to open a source failed in a way retrying cannot fix (entity missing,
    /// no rights, unsupported feature); cleared by the next successful open.
    pub(crate) source_failing: AtomicBool,
}

impl RouteRuntime {
    pub fn new(plan: RoutePlan, writer: RouteWriter, metrics: RouteMetrics) -> Self {
        Self {
            plan,
            writer,
            metrics,
            receivers_up: AtomicUsize::new(0),
            source_failing: AtomicBool::new(false),
        }
    }

    pub fn receivers_up(&self) -> usize {
        self.receivers_up.load(Ordering::Relaxed)
    }

    pub fn source_failing(&self) -> bool {
        self.source_failing.load(Ordering::Relaxed)
    }
}

/// The lock of a mapped message waiting for its write.
struct Pending {
    token: LockToken,
    renew_at: Instant,
    /// The lock was lost while waiting: do not settle (the broker redelivers it; the write is
    /// idempotent, so the redelivery rewrites identical cells).
    lock_lost: bool,
}

fn renew_at(now: Instant, locked_until: Option<OffsetDateTime>) -> Instant {
    let remaining = match locked_until {
        // Already expired (clock skew, slow batch): renew right away.
        Some(until) => {
            Duration::try_from(until - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
        }
        None => ASSUMED_LOCK,
    };
    now + remaining / 2
}

/// Counts of what happened to one batch (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub completed: usize,
    pub dead_lettered: usize,
    pub abandoned: usize,
    pub settle_failures: usize,
    /// The source should be reopened (the lost messages are redelivered):
    /// - a lock renewal timed out or was cut short. azservicebus renews over its `$management`
    ///   link, and fe2o3-amqp-management's `MgmtClient::call` reads the next response on that
    ///   link without matching it to its request (no correlation-id check): a call dropped after
    ///   its request went out leaves the answer queued, and every later call on the source would
    ///   read the answer meant for the one before. A dropped call may also have been midway
    ///   through azservicebus re-attaching the receive link.
    /// - a session lock was lost: the session belongs to another receiver now.
    /// - a complete failed on a link-level error.
    pub reopen_source: bool,
}

/// Processes one received batch to the end: every message is settled (or, if its lock was
/// lost, left to the broker) before this returns. `deadline` ends write retries (shutdown
/// grace expired): the unwritten messages are abandoned.
pub async fn process_batch<S: MessageSource>(
    route: &RouteRuntime,
    source: &mut S,
    messages: Vec<ReceivedMessage>,
    deadline: &CancellationToken,
) -> BatchReport {
    let metrics = &route.metrics;
    let count = messages.len();
    metrics.received.increment(count as u64);
    metrics.in_flight.increment(count as f64);
    let mut report = BatchReport::default();
    let now_wall = OffsetDateTime::now_utc();
    let now = Instant::now();

    let mut pending = Vec::with_capacity(count);
    let mut rows = Vec::with_capacity(count);
    for message in messages {
        match route.plan.mapper.map(&message, now_wall) {
            Ok(row) => {
                rows.push(row);
                pending.push(Pending {
                    token: message.lock_token,
                    renew_at: renew_at(now, message.locked_until),
                    lock_lost: false,
                });
            }
            Err(error) => {
                tracing::warn!(route = %route.plan.name, sequence_number = message.sequence_number, %error, "dead-lettering poison message");
                settle_dead_letter(
                    route,
                    source,
                    message.lock_token,
                    error.reason,
                    error.dead_letter(),
                    &mut report,
                )
                .await;
            }
        }
    }

    let (outcomes, reopen_source) = write_all(route, source, &rows, &mut pending, deadline).await;
    report.reopen_source = reopen_source;

    for (p, outcome) in pending.iter().zip(outcomes) {
        if p.lock_lost {
            report.settle_failures += 1;
            // Not settled, but released: see `MessageSource::release`.
            source.release(p.token).await;
            continue;
        }
        match outcome {
            RowOutcome::Written => {
                metrics.written.increment(1);
                match source.complete(p.token).await {
                    Ok(()) => {
                        metrics.completed.increment(1);
                        report.completed += 1;
                    }
                    Err(error) => {
                        metrics.settle_failures.increment(1);
                        report.settle_failures += 1;
                        report.reopen_source = true;
                        tracing::warn!(route = %route.plan.name, %error, "complete failed; the message will be redelivered and rewritten idempotently");
                    }
                }
            }
            RowOutcome::Rejected(why) => {
                let description = crate::mapping::coerce::truncate_chars(
                    &format!(
                        "route {}: Cassandra rejected the row: {why}",
                        route.plan.name
                    ),
                    1024,
                );
                let dead_letter = DeadLetter {
                    reason: DeadLetterReason::WriteRejected.as_str().to_owned(),
                    description,
                };
                settle_dead_letter(
                    route,
                    source,
                    p.token,
                    DeadLetterReason::WriteRejected,
                    dead_letter,
                    &mut report,
                )
                .await;
            }
            RowOutcome::Abandoned => match source.abandon(p.token).await {
                Ok(()) => {
                    metrics.abandoned.increment(1);
                    report.abandoned += 1;
                }
                Err(error) => {
                    metrics.settle_failures.increment(1);
                    report.settle_failures += 1;
                    tracing::warn!(route = %route.plan.name, %error, "abandon failed; the lock will lapse");
                }
            },
        }
    }
    metrics.in_flight.decrement(count as f64);
    report
}

async fn settle_dead_letter<S: MessageSource>(
    route: &RouteRuntime,
    source: &mut S,
    token: LockToken,
    reason: DeadLetterReason,
    why: DeadLetter,
    report: &mut BatchReport,
) {
    match source.dead_letter(token, why).await {
        Ok(()) => {
            route.metrics.dead_lettered(reason).increment(1);
            report.dead_lettered += 1;
        }
        Err(error) => {
            route.metrics.settle_failures.increment(1);
            report.settle_failures += 1;
            tracing::warn!(route = %route.plan.name, %error, "dead-letter failed; the message will be redelivered");
        }
    }
}

/// Writes every pending row (partition batches concurrently) while renewing the locks of the
/// messages that wait. Returns one outcome per pending message, in order, and whether the
/// source should be reopened (see [`BatchReport::reopen_source`]).
///
/// The writes are polled all the time, renewals included: a renewal is only a way to avoid a
/// redelivery, and a lost lock costs nothing but an idempotent rewrite.
async fn write_all<S: MessageSource>(
    route: &RouteRuntime,
    source: &mut S,
    mapped: &[MappedRow],
    pending: &mut [Pending],
    deadline: &CancellationToken,
) -> (Vec<RowOutcome>, bool) {
    if pending.is_empty() {
        return (Vec::new(), false);
    }
    let mut reopen_source = false;
    let rows: Vec<&MappedRow> = mapped.iter().collect();
    let groups = plan_batches(&rows, &route.plan.batch);
    let writes = futures::future::join_all(groups.iter().map(|group| {
        let group_rows: Vec<&MappedRow> = group.iter().map(|&i| rows[i]).collect();
        async move { route.writer.write(&group_rows, deadline).await }
    }));
    tokio::pin!(writes);
    let results = loop {
        let next_renewal = pending
            .iter()
            .filter(|p| !p.lock_lost)
            .map(|p| p.renew_at)
            .min()
            .unwrap_or_else(|| Instant::now() + ASSUMED_LOCK);
        tokio::select! {
            results = &mut writes => break results,
            () = tokio::time::sleep_until(next_renewal) => {}
        }
        tokio::select! {
            results = &mut writes => {
                // The renewal in progress is dropped midway; the link may be mid-recovery.
                reopen_source = true;
                break results;
            }
            healthy = renew_due_locks(route, source, pending) => {
                reopen_source |= !healthy;
            }
        }
    };
    let mut outcomes = vec![RowOutcome::Abandoned; pending.len()];
    for (group, result) in groups.iter().zip(results) {
        for (&i, outcome) in group.iter().zip(result) {
            outcomes[i] = outcome;
        }
    }
    (outcomes, reopen_source)
}

/// Renews the locks that are due. When a lock was lost or a renewal timed out, the remaining
/// locks of the batch are given up (released and redelivered) rather than renewed one slow
/// request after another. Returns false when the source should be reopened: a session lock was
/// lost (the session is gone), or a renewal was cut short (see [`BatchReport::reopen_source`]).
async fn renew_due_locks<S: MessageSource>(
    route: &RouteRuntime,
    source: &mut S,
    pending: &mut [Pending],
) -> bool {
    let now = Instant::now();
    if source.session_id().is_some() {
        // A session's messages are covered by the session lock: renew that once for all.
        match source.renew_session_lock().await {
            Ok(Some(until)) => {
                route.metrics.lock_renewals.increment(1);
                let next = renew_at(Instant::now(), Some(until));
                pending.iter_mut().for_each(|p| p.renew_at = next);
                return true;
            }
            Ok(None) => {}
            Err(SourceError::Transient(error)) => {
                route.metrics.lock_renewal_failures.increment(1);
                tracing::debug!(route = %route.plan.name, %error, "session lock renewal failed; retrying soon");
                let retry = Instant::now() + Duration::from_secs(1);
                pending.iter_mut().for_each(|p| p.renew_at = retry);
                return true;
            }
            Err(error) => {
                route.metrics.lock_renewal_failures.increment(1);
                tracing::warn!(route = %route.plan.name, %error, "session lock lost while writes were pending");
                pending.iter_mut().for_each(|p| p.lock_lost = true);
                return false;
            }
        }
    }
    let mut healthy = true;
    for p in pending
        .iter_mut()
        .filter(|p| !p.lock_lost && p.renew_at <= now)
    {
        match tokio::time::timeout(RENEW_TIMEOUT, source.renew_lock(p.token)).await {
            Ok(Ok(until)) => {
                route.metrics.lock_renewals.increment(1);
                p.renew_at = renew_at(Instant::now(), Some(until));
            }
            Ok(Err(SourceError::Transient(error))) => {
                route.metrics.lock_renewal_failures.increment(1);
                tracing::debug!(route = %route.plan.name, %error, "lock renewal failed; retrying soon");
                p.renew_at = Instant::now() + Duration::from_secs(1);
            }
            Ok(Err(error)) => {
                // The broker answered: the management link is in step, the source stays usable.
                route.metrics.lock_renewal_failures.increment(1);
                tracing::warn!(route = %route.plan.name, %error, "message lock lost while its write was pending; giving up the batch's locks");
                give_up_locks(pending);
                break;
            }
            Err(_elapsed) => {
                route.metrics.lock_renewal_failures.increment(1);
                tracing::warn!(route = %route.plan.name, timeout_ms = RENEW_TIMEOUT.as_millis() as u64, "lock renewal timed out; giving up the batch's locks");
                healthy = false;
                break;
            }
        }
    }
    if !healthy {
        give_up_locks(pending);
    }
    healthy
}

/// Gives up every lock of the batch: the messages are released once their writes end (see
/// `process_batch`), then redelivered and rewritten idempotently.
fn give_up_locks(pending: &mut [Pending]) {
    pending.iter_mut().for_each(|p| p.lock_lost = true);
}
