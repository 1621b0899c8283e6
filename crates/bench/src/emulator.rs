//! `busdrain emulator` as a child process: a fresh data directory (durable store), a free port,
//! and one queue per phase so no phase sees another's messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Child;

use crate::child;

/// Queues of the benchmark namespace.
pub const BROKER_QUEUE: &str = "bench-broker";
pub const DRAIN_QUEUE: &str = "bench-drain";
pub const LATENCY_QUEUE: &str = "bench-latency";
pub const REFERENCE_QUEUE: &str = "bench-reference";

pub struct EmulatorProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl EmulatorProcess {
    /// Starts the emulator from the `busdrain` binary with its store under `run_dir`.
    pub async fn start(busdrain: &Path, run_dir: &Path) -> anyhow::Result<Self> {
        let config = run_dir.join("emulator-config.json");
        std::fs::write(&config, namespace_config())
            .with_context(|| format!("cannot write {}", config.display()))?;
        let data_dir = data_dir(run_dir);
        let port = child::free_port()?;
        let log = run_dir.join("emulator.log");
        let args = vec![
            "--log".to_string(),
            "warn".to_string(),
            "emulator".to_string(),
            "--config".to_string(),
            config.display().to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--http".to_string(),
            "off".to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
        ];
        let mut child = child::spawn(busdrain, &args, &log)?;
        child::wait_for_port(&mut child, port, Duration::from_secs(30))
            .await
            .with_context(|| format!("emulator did not start:\n{}", child::log_tail(&log)))?;
        Ok(Self { child, port, log })
    }

    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://localhost:{};SharedAccessKeyName=RootManageSharedAccessKey;\
             SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
            self.port
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub async fn stop(mut self) {
        child::stop(&mut self.child).await;
    }
}

/// Where [`EmulatorProcess::start`] keeps the store: an existing store there is served as is.
pub fn data_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("emulator-data")
}

/// Microsoft's `Config.json` format. Locks last the Service Bus maximum (5 min) so a slow drain
/// of a large backlog never sees a lock lapse; MaxDeliveryCount is high so nothing is
/// dead-lettered by a retry.
pub fn namespace_config() -> String {
    let queue = |name: &str| {
        serde_json::json!({
            "Name": name,
            "Properties": { "LockDuration": "PT5M", "MaxDeliveryCount": 100 }
        })
    };
    serde_json::json!({
        "UserConfig": {
            "Namespaces": [{
                "Name": "sbemulatorns",
                "Queues": [
                    queue(BROKER_QUEUE),
                    queue(DRAIN_QUEUE),
                    queue(LATENCY_QUEUE),
                    queue(REFERENCE_QUEUE),
                ],
                "Topics": []
            }],
            "Logging": { "Type": "File" }
        }
    })
    .to_string()
}
