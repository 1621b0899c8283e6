//! The engine driven by Microsoft's JavaScript SDK (`@azure/service-bus` 7.x on rhea)
//! through the in-test echo broker. Needs `npm ci` in `tests/conformance/node` (or
//! `BUSDRAIN_NODE_MODULES` pointing at a node_modules with @azure/service-bus). The test
//! fails, never skips, when it is missing.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use busdrain_amqp::ConnectionConfig;

fn node_modules() -> PathBuf {
    if let Ok(path) = std::env::var("BUSDRAIN_NODE_MODULES") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/node/node_modules")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_sends_and_receives_through_the_engine() {
    let broker = support::EchoBroker::start(ConnectionConfig::default()).await;
    let modules = node_modules();
    assert!(
        modules.join("@azure/service-bus").exists(),
        "@azure/service-bus missing under {}: see this file's header",
        modules.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/roundtrip.js");
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(broker.port.to_string())
        .env("NODE_PATH", &modules)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("node SDK run timed out")
        .expect("wait for node");
    assert!(status.success(), "node SDK roundtrip failed: {status}");
}
