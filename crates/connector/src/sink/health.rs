//! Whether Cassandra is taking writes. Receivers wait on this gate before pulling more
//! messages: while Cassandra is down the connector stops receiving instead of burning
//! delivery counts, and resumes by itself when a retried write succeeds again.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct SinkHealth {
    state: Arc<watch::Sender<bool>>,
}

impl Default for SinkHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl SinkHealth {
    /// Starts healthy (the session connected before any route runs).
    pub fn new() -> Self {
        let (tx, _) = watch::channel(true);
        Self {
            state: Arc::new(tx),
        }
    }

    pub fn is_healthy(&self) -> bool {
        *self.state.borrow()
    }

    pub fn mark_healthy(&self) {
        self.state.send_if_modified(|healthy| {
            let changed = !*healthy;
            if changed {
                tracing::info!("Cassandra accepts writes again; receiving resumes");
                metrics::gauge!(crate::metrics::SINK_HEALTHY).set(1.0);
            }
            *healthy = true;
            changed
        });
    }

    pub fn mark_unhealthy(&self, why: &str) {
        self.state.send_if_modified(|healthy| {
            let changed = *healthy;
            if changed {
                tracing::warn!(
                    error = why,
                    "Cassandra is not taking writes; receiving pauses until it does"
                );
                metrics::gauge!(crate::metrics::SINK_HEALTHY).set(0.0);
            }
            *healthy = false;
            changed
        });
    }

    /// Returns at once when healthy, otherwise when the sink becomes healthy.
    pub async fn wait_healthy(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail here.
        let _ = rx.wait_for(|healthy| *healthy).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn receivers_wait_while_unhealthy_and_resume_on_recovery() {
        let health = SinkHealth::new();
        health.wait_healthy().await;
        health.mark_unhealthy("down");
        let waiter = {
            let h = health.clone();
            tokio::spawn(async move { h.wait_healthy().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "must wait while unhealthy");
        health.mark_healthy();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("resumes")
            .expect("task ran");
    }
}
