//! The connector's commands as a user runs them: `busdrain validate` and `busdrain run` refuse
//! bad configs with a clear message and a non-zero exit, and `busdrain run` stops on SIGTERM
//! with exit 0 — against the real Cassandra node and the `busdrain emulator`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use busdrain_connector::config::Config;

fn cassandra_address() -> String {
    std::env::var("BUSDRAIN_CASSANDRA")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9042".to_owned())
}

fn config(contact_point: &str, table: &str, columns: &str) -> String {
    format!(
        r#"[service_bus]
connection_string = "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=secret-key-123;UseDevelopmentEmulator=true;"

[cassandra]
contact_points = ["{contact_point}"]

[[routes]]
name = "telemetry"
table = "{table}"
source = {{ queue = "telemetry" }}

[routes.columns]
{columns}
"#
    )
}

fn write(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("busdrain-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `busdrain <command> --config <path>`; returns (success, stdout, stderr).
fn busdrain(command: &str, path: &PathBuf) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_busdrain"))
        .args([command, "--config"])
        .arg(path)
        .env("BUSDRAIN_LOG", "error")
        .env_remove("BUSDRAIN_CONFIG")
        .output()
        .expect("run busdrain");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_configs_exit_non_zero_with_every_problem_named() {
    // A keyspace and table only this test uses, created through the connector's own session.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let ks = format!("cli_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let bootstrap = config(&cassandra_address(), "x.y", "a = \"body.a\"");
    let loaded =
        Config::load_str(std::path::Path::new("t.toml"), &bootstrap, Vec::new()).expect("config");
    let session = busdrain_connector::sink::connect(&loaded.config.cassandra)
        .await
        .expect("Cassandra must run: tools/cassandra/cassandra start");
    for cql in [
        format!(
            "CREATE KEYSPACE {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE {ks}.readings (device text, ts timestamp, temp double, count int, \
             PRIMARY KEY (device, ts))"
        ),
    ] {
        session.query_unpaged(cql, &[]).await.expect("schema");
    }
    let address = cassandra_address();
    let table = format!("{ks}.readings");

    let good = write(
        "good",
        &config(
            &address,
            &table,
            "device = \"body.device\"\nts = \"enqueued_time\"\ntemp = \"body.temp\"",
        ),
    );
    let (ok, stdout, stderr) = busdrain("validate", &good);
    assert!(ok, "a good config validates: {stderr}");
    assert!(stdout.contains("OK, 1 route(s)"), "{stdout}");

    let typo = write(
        "typo",
        &config(&address, &table, "device = \"body.device\"")
            .replace("contact_points", "contact_pionts"),
    );
    let (ok, _, stderr) = busdrain("validate", &typo);
    assert!(!ok);
    assert!(
        stderr.contains("typo.toml:5:1: unknown field `contact_pionts`"),
        "{stderr}"
    );

    let wrong = write(
        "wrong",
        &config(
            &address,
            &table,
            "device = \"body.device\"\ntmp = \"body.temp\"\ncount = \"const:abc\"",
        ),
    );
    let (ok, _, stderr) = busdrain("validate", &wrong);
    assert!(!ok);
    assert!(
        stderr.contains("column \"tmp\"") && stderr.contains("Did you mean \"temp\"?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"ts\": primary-key column (timestamp)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("const:\"abc\" cannot fill a int column"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret-key-123"),
        "secrets never appear: {stderr}"
    );

    // `run` refuses the same config before receiving anything.
    let (ok, _, stderr) = busdrain("run", &wrong);
    assert!(!ok);
    assert!(stderr.contains("Did you mean \"temp\"?"), "{stderr}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let unreachable = write(
        "unreachable",
        &config(
            &format!("127.0.0.1:{port}"),
            &table,
            "device = \"body.device\"",
        ),
    );
    let (ok, _, stderr) = busdrain("validate", &unreachable);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("cannot connect to Cassandra at 127.0.0.1:{port}")),
        "{stderr}"
    );

    for path in [good, typo, wrong, unreachable] {
        let _ = std::fs::remove_file(path);
    }
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the child on drop (a failed assertion must not leave processes behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test]
async fn run_stops_on_sigterm_and_exits_zero() {
    let data = std::env::temp_dir().join(format!("busdrain-cli-emulator-{}", std::process::id()));
    let amqp = free_port();
    let _emulator = Killed(
        Command::new(env!("CARGO_BIN_EXE_busdrain"))
            .args(["emulator", "--http", "off", "--listen"])
            .arg(format!("127.0.0.1:{amqp}"))
            .arg("--data-dir")
            .arg(&data)
            .env("BUSDRAIN_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the emulator"),
    );
    wait_for_port(amqp, "the emulator");

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let ks = format!("cli_run_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let admin = free_port();
    let text = config(
        &cassandra_address(),
        &format!("{ks}.t"),
        "id = \"message_id\"",
    )
    .replace(
        "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=secret-key-123;",
        &format!(
            "Endpoint=sb://127.0.0.1:{amqp};SharedAccessKeyName=RootManageSharedAccessKey;\
                 SharedAccessKey=SAS_KEY_VALUE;"
        ),
    )
    .replace("queue = \"telemetry\"", "queue = \"queue.1\"")
        + &format!("\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n");
    let loaded =
        Config::load_str(std::path::Path::new("t.toml"), &text, Vec::new()).expect("config");
    let session = busdrain_connector::sink::connect(&loaded.config.cassandra)
        .await
        .expect("Cassandra must run: tools/cassandra/cassandra start");
    for cql in [
        format!(
            "CREATE KEYSPACE {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!("CREATE TABLE {ks}.t (id text PRIMARY KEY)"),
    ] {
        session.query_unpaged(cql, &[]).await.expect("schema");
    }
    let path = write("run", &text);
    let mut run = Killed(
        Command::new(env!("CARGO_BIN_EXE_busdrain"))
            .args(["run", "--config"])
            .arg(&path)
            .env("BUSDRAIN_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the connector"),
    );
    wait_for_port(admin, "the connector's admin endpoint");
    let pid = run.0.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 60 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "SIGTERM ends with exit 0, got {status}");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(data);
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await;
}
