//! The engine driven by Microsoft's Python SDK (`azure-servicebus` 7.x) through the
//! in-test echo broker. Needs the project venv: `python3 -m venv .venv &&
//! .venv/bin/pip install 'azure-servicebus==7.*'` at the workspace root (or set
//! `BUSDRAIN_PYTHON`). The test fails, never skips, when it is missing.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use busdrain_amqp::ConnectionConfig;

fn python() -> PathBuf {
    if let Ok(path) = std::env::var("BUSDRAIN_PYTHON") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_sends_and_receives_through_the_engine() {
    let broker = support::EchoBroker::start(ConnectionConfig::default()).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/roundtrip.py");
    let python = python();
    assert!(
        python.exists(),
        "python venv with azure-servicebus missing at {}: see this file's header",
        python.display()
    );
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(broker.port.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("python SDK run timed out")
        .expect("wait for python");
    assert!(status.success(), "python SDK roundtrip failed: {status}");
}
