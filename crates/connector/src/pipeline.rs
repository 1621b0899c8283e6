//! Running the routes: receiver tasks per route, the health gate, and graceful shutdown.
//!
//! Each route runs `receivers` tasks. A task owns one [`MessageSource`] (sources take
//! `&mut self`), and loops: wait until Cassandra takes writes → receive a batch → process it to
//! the end (see `route.rs`) → repeat. For a session-enabled entity a task first accepts the
//! next available session and processes that session's batches one after another, which keeps
//! the session's order, until it stays idle for `session_idle_timeout`; different sessions run
//! in parallel on different tasks.
//!
//! Shutdown: `shutdown` stops receiving; batches in flight finish and are settled. Writes
//! still retrying when the grace period ends are abandoned (returned to the entity).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EntityPath;
use crate::route::{process_batch, RouteRuntime};
use crate::sink::health::SinkHealth;
use crate::source::{MessageSource, SourceError};

/// How long closing a source may take before it is dropped instead.
const SOURCE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// After the grace period, how long receiver tasks get to return before `run` returns anyway.
/// A task can only still be running here if it is stuck inside the AMQP client; its messages'
/// locks lapse and they are redelivered (the writes are idempotent).
const STUCK_TASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens sources on the Service Bus namespace. Implemented by the Service Bus client, and by
/// in-process sources in tests.
pub trait SourceOpener: Send + Sync + 'static {
    type Source: MessageSource + 'static;

    /// A receiver on a queue or subscription without sessions.
    fn open(
        &self,
        entity: &EntityPath,
    ) -> impl Future<Output = Result<Self::Source, SourceError>> + Send;

    /// The next session with messages, waiting up to `wait`; `SourceError::NoSessionAvailable`
    /// when none frees up.
    fn accept_next_session(
        &self,
        entity: &EntityPath,
        wait: Duration,
    ) -> impl Future<Output = Result<Self::Source, SourceError>> + Send;
}

/// Runs every route until `shutdown` fires and in-flight work is settled.
pub async fn run<O: SourceOpener>(
    opener: Arc<O>,
    routes: Vec<Arc<RouteRuntime>>,
    health: SinkHealth,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let tracker = TaskTracker::new();
    let deadline = CancellationToken::new();
    for route in &routes {
        for index in 0..route.plan.receivers {
            let receiver = Receiver {
                opener: opener.clone(),
                route: route.clone(),
                health: health.clone(),
                shutdown: shutdown.clone(),
                deadline: deadline.clone(),
                index,
            };
            tracker.spawn(receiver.run());
        }
        tracing::info!(route = %route.plan.name, entity = %route.plan.entity, table = %format!("{}.{}", route.plan.keyspace, route.plan.table), receivers = route.plan.receivers, sessions = route.plan.sessions, "route started");
    }
    tracker.close();
    shutdown.cancelled().await;
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "stopping: no new receives; finishing in-flight messages"
    );
    tokio::select! {
        () = tracker.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: abandoning messages whose writes have not succeeded");
            deadline.cancel();
            if tokio::time::timeout(STUCK_TASK_TIMEOUT, tracker.wait()).await.is_err() {
                tracing::warn!(timeout_seconds = STUCK_TASK_TIMEOUT.as_secs(), "receivers still stuck in the Service Bus client; stopping without them (their messages are redelivered)");
            }
        }
    }
    tracing::info!("all routes stopped");
}

/// One receiver task of one route.
struct Receiver<O: SourceOpener> {
    opener: Arc<O>,
    route: Arc<RouteRuntime>,
    health: SinkHealth,
    shutdown: CancellationToken,
    deadline: CancellationToken,
    index: usize,
}

/// Delays between attempts to (re)open a source.
fn reopen_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

impl<O: SourceOpener> Receiver<O> {
    async fn run(self) {
        let mut backoff = reopen_backoff();
        while !self.shutdown.is_cancelled() {
            if !self.wait_until_healthy().await {
                break;
            }
            let asked = tokio::time::Instant::now();
            let opening = async {
                if self.route.plan.sessions {
                    self.opener
                        .accept_next_session(&self.route.plan.entity, self.route.plan.receive_wait)
                        .await
                } else {
                    self.opener.open(&self.route.plan.entity).await
                }
            };
            // Not raced against shutdown: dropping an attach midway leaves the AMQP session of
            // azservicebus 0.25 (fe2o3 0.14) with an unattached handle, which wedges every
            // other receiver on that connection in recovery. An open returns within the
            // operation timeout (a session accept within `receive_wait`).
            let opened = opening.await;
            if self.shutdown.is_cancelled() {
                if let Ok(source) = opened {
                    self.close_source(source).await;
                }
                break;
            }
            let source = match opened {
                Ok(source) => {
                    backoff = reopen_backoff();
                    self.route.source_failing.store(false, Ordering::Relaxed);
                    source
                }
                Err(SourceError::NoSessionAvailable) => {
                    // The source waits for a session itself; if it answered at once, pause so
                    // an idle session entity is not polled in a tight loop.
                    if asked.elapsed() < Duration::from_millis(100) {
                        self.pause(Duration::from_millis(500)).await;
                    }
                    continue;
                }
                Err(error) => {
                    self.route.metrics.receive_errors.increment(1);
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    if matches!(error, SourceError::Fatal(_)) {
                        self.route.source_failing.store(true, Ordering::Relaxed);
                        tracing::error!(route = %self.route.plan.name, %error, "cannot open the source");
                    } else {
                        tracing::warn!(route = %self.route.plan.name, %error, retry_in_ms = delay.as_millis() as u64, "cannot open the source; retrying");
                    }
                    self.pause(delay).await;
                    continue;
                }
            };
            self.route.receivers_up.fetch_add(1, Ordering::Relaxed);
            let closed_by_error = self.drain(source).await;
            self.route.receivers_up.fetch_sub(1, Ordering::Relaxed);
            if closed_by_error {
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                self.pause(delay).await;
            }
        }
        tracing::debug!(route = %self.route.plan.name, receiver = self.index, "receiver stopped");
    }

    /// Receives and processes until shutdown, a receive error, or (sessions) idleness.
    /// Returns whether it stopped because of an error.
    async fn drain(&self, mut source: O::Source) -> bool {
        let plan = &self.route.plan;
        let mut idle_since = tokio::time::Instant::now();
        let mut failed = false;
        while !self.shutdown.is_cancelled() {
            if !self.wait_until_healthy().await {
                break;
            }
            // Not raced against shutdown: a receive returns within `receive_wait`, and
            // dropping it midway could strand messages that were already locked for us.
            let messages = match source.receive(plan.receive_batch, plan.receive_wait).await {
                Ok(messages) => messages,
                Err(error) => {
                    self.route.metrics.receive_errors.increment(1);
                    tracing::warn!(route = %plan.name, %error, "receive failed; reopening the source");
                    failed = true;
                    break;
                }
            };
            if messages.is_empty() {
                if plan.sessions && idle_since.elapsed() >= plan.session_idle_timeout {
                    // Release the session so another (or this) task can take the next one.
                    break;
                }
                continue;
            }
            idle_since = tokio::time::Instant::now();
            let report = process_batch(&self.route, &mut source, messages, &self.deadline).await;
            tracing::trace!(route = %plan.name, ?report, "batch settled");
            if report.reopen_source {
                // A renewal was cut short (its `$management` answer may still be queued and
                // would be read by the next call), a session lock was lost, or a complete
                // failed: start over on fresh links (see `BatchReport::reopen_source`).
                tracing::info!(route = %plan.name, "reopening the source");
                break;
            }
        }
        self.close_source(source).await;
        failed
    }

    /// Closes a source, bounded: closing a link that is mid-recovery can hang.
    async fn close_source(&self, source: O::Source) {
        let route = &self.route.plan.name;
        match tokio::time::timeout(SOURCE_CLOSE_TIMEOUT, source.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%route, %error, "closing the source failed"),
            Err(_) => tracing::debug!(%route, "closing the source timed out"),
        }
    }

    /// Waits for the sink health gate; false if shutdown came first.
    async fn wait_until_healthy(&self) -> bool {
        if self.health.is_healthy() {
            return true;
        }
        tokio::select! {
            () = self.health.wait_healthy() => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    async fn pause(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.shutdown.cancelled() => {}
        }
    }
}
