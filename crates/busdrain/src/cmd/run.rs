//! `busdrain run`: drain the configured routes into Cassandra until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use busdrain_connector::config::Config;
use busdrain_connector::{service, CancellationToken};

/// Arguments of `busdrain run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The connector's TOML config (values may be overridden by `BUSDRAIN__SECTION__KEY`
    /// environment variables; see docs/configuration.md).
    #[arg(long, short, env = "BUSDRAIN_CONFIG", default_value = "busdrain.toml")]
    pub config: PathBuf,
}

pub async fn execute(args: RunArgs) -> anyhow::Result<()> {
    let loaded = Config::load(&args.config)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    service::run(&loaded, shutdown)
        .await
        .context("the connector could not start")?;
    Ok(())
}

/// The first SIGTERM/SIGINT stops receiving and lets in-flight messages settle; a second one
/// exits at once (their locks lapse and the broker redelivers them).
async fn stop_on_signal(shutdown: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("stop signal received; finishing in-flight messages (signal again to exit now)");
    shutdown.cancel();
    wait_for_signal().await;
    tracing::warn!("second stop signal: exiting without waiting");
    std::process::exit(130);
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the connector");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
