//! `busdrain run` as a child process: a generated config with one route mapping the reading
//! JSON to a table, its admin endpoint on a free port, and its progress read from `/metrics`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Child;

use crate::child;

/// How the connector is configured for a phase.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub queue: String,
    pub keyspace: String,
    pub table: String,
    /// `receivers`; `None` leaves the connector's default.
    pub receivers: Option<u32>,
    /// `receive_batch`; `None` leaves the connector's default.
    pub receive_batch: Option<u32>,
}

pub struct ConnectorProcess {
    child: Child,
    admin_port: u16,
    log: PathBuf,
}

/// The counters the benchmark follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub received: u64,
    pub completed: u64,
    pub dead_lettered: u64,
    /// Rows and requests written (the `busdrain_batch_rows` histogram's sum and count).
    pub rows_written: u64,
    pub write_requests: u64,
}

impl ConnectorProcess {
    pub async fn start(
        busdrain: &Path,
        run_dir: &Path,
        name: &str,
        connection_string: &str,
        cassandra: &str,
        route: &RouteSpec,
    ) -> anyhow::Result<Self> {
        let admin_port = child::free_port()?;
        let config = run_dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            config_toml(connection_string, cassandra, admin_port, route),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let log = run_dir.join(format!("{name}.log"));
        let args = vec![
            "--log".to_string(),
            "warn".to_string(),
            "run".to_string(),
            "--config".to_string(),
            config.display().to_string(),
        ];
        let mut child = child::spawn(busdrain, &args, &log)?;
        child::wait_for_port(&mut child, admin_port, Duration::from_secs(60))
            .await
            .with_context(|| format!("connector did not start:\n{}", child::log_tail(&log)))?;
        Ok(Self {
            child,
            admin_port,
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("cannot poll the connector")? {
            anyhow::bail!(
                "the connector exited ({status}):\n{}",
                child::log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// Waits until `/readyz` answers 200 (Cassandra reachable, receivers attached).
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(response) = http_get(self.admin_port, "/readyz").await {
                if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") {
                    return Ok(());
                }
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the connector was not ready within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn progress(&self) -> anyhow::Result<Progress> {
        let page = http_get(self.admin_port, "/metrics").await?;
        Ok(Progress {
            received: metric_sum(&page, "busdrain_messages_received_total"),
            completed: metric_sum(&page, "busdrain_messages_completed_total"),
            dead_lettered: metric_sum(&page, "busdrain_messages_dead_lettered_total"),
            rows_written: metric_sum(&page, "busdrain_batch_rows_sum"),
            write_requests: metric_sum(&page, "busdrain_batch_rows_count"),
        })
    }

    pub async fn stop(mut self) {
        child::stop(&mut self.child).await;
    }
}

fn config_toml(
    connection_string: &str,
    cassandra: &str,
    admin_port: u16,
    route: &RouteSpec,
) -> String {
    let mut tuning = String::new();
    if let Some(receivers) = route.receivers {
        tuning.push_str(&format!("receivers = {receivers}\n"));
    }
    if let Some(batch) = route.receive_batch {
        tuning.push_str(&format!("receive_batch = {batch}\n"));
    }
    format!(
        r#"[service_bus]
connection_string = "{connection_string}"

[cassandra]
contact_points = ["{cassandra}"]
local_datacenter = "datacenter1"
consistency = "LOCAL_QUORUM"

[admin]
listen = "127.0.0.1:{admin_port}"

[[routes]]
name = "bench"
source = {{ queue = "{queue}" }}
table = "{keyspace}.{table}"
{tuning}
[routes.columns]
device_id = "body.device_id"
seq = "body.seq"
ts = "body.ts"
temperature = "body.temperature"
ingested = "now()"
"#,
        queue = route.queue,
        keyspace = route.keyspace,
        table = route.table,
    )
}

/// One HTTP/1.0 GET on the admin endpoint; the whole response (status line, headers, body).
async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot connect to the admin endpoint on port {port}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .context("the admin endpoint did not answer within 5 s")??;
    Ok(response)
}

/// Sum of every sample of `name` (over all label sets) on a Prometheus text page.
fn metric_sum(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_labels_and_ignores_prefixes() {
        let page = "# TYPE busdrain_messages_completed_total counter\n\
            busdrain_messages_completed_total{route=\"a\"} 5\n\
            busdrain_messages_completed_total{route=\"b\"} 7\n\
            busdrain_messages_completed_totalish 100\n\
            busdrain_messages_received_total 3\n";
        assert_eq!(metric_sum(page, "busdrain_messages_completed_total"), 12);
        assert_eq!(metric_sum(page, "busdrain_messages_received_total"), 3);
        assert_eq!(metric_sum(page, "busdrain_messages_dead_lettered_total"), 0);
    }

    #[test]
    fn the_config_maps_every_column() {
        let route = RouteSpec {
            queue: "q".into(),
            keyspace: "ks".into(),
            table: "t".into(),
            receivers: Some(2),
            receive_batch: None,
        };
        let text = config_toml("Endpoint=sb://localhost:1;", "127.0.0.1:9042", 9, &route);
        // The connector's own parser (unknown keys are errors) accepts it.
        let loaded = busdrain_connector::config::Config::load_str(
            Path::new("bench.toml"),
            &text,
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        let route = &loaded.config.routes[0];
        assert_eq!(route.receivers, 2);
        assert_eq!(route.columns.get_ref().len(), 5);
        assert_eq!(*route.table.get_ref(), "ks.t");
    }
}
