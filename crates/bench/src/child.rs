//! Child processes of the benchmark (`busdrain emulator`, `busdrain run`, the Python reference):
//! free ports, logs into the run directory, and waiting for a port to accept connections.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released for the child).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("no local address")?.port())
}

/// Starts `program args…` with stdout and stderr appended to `log` and killed when dropped.
pub fn spawn(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)
        .with_context(|| format!("cannot create log file {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("cannot reopen log file {}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} {}", program.display(), args.join(" ")))
}

/// Waits until `127.0.0.1:port` accepts a TCP connection, failing early if the child exits.
pub async fn wait_for_port(child: &mut Child, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("cannot poll the child process")? {
            anyhow::bail!("the process exited ({status}) before listening on port {port}");
        }
        if Instant::now() > deadline {
            anyhow::bail!("nothing listened on port {port} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Kills the child and reaps it.
pub async fn stop(child: &mut Child) {
    if let Err(error) = child.kill().await {
        tracing::debug!(%error, "stopping a child process");
    }
}
