//! Processes of the fault tests: the emulator with a `Config.json`, `busdrain run` as a child
//! (so it can be SIGKILLed), and a dedicated Cassandra node that a test may stop and start
//! without touching the shared node on 127.0.0.1.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{busdrain_binary, free_port};

/// The last `lines` lines of a log file (for failure messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A queue of Microsoft's emulator `Config.json` format.
pub fn queue_json(name: &str, lock_duration: &str, requires_session: bool) -> serde_json::Value {
    serde_json::json!({
        "Name": name,
        "Properties": {
            "DeadLetteringOnMessageExpiration": false,
            "DefaultMessageTimeToLive": "PT1H",
            "DuplicateDetectionHistoryTimeWindow": "PT20S",
            "ForwardDeadLetteredMessagesTo": "",
            "ForwardTo": "",
            "LockDuration": lock_duration,
            "MaxDeliveryCount": 10,
            "RequiresDuplicateDetection": false,
            "RequiresSession": requires_session
        }
    })
}

/// A topic whose subscriptions take every message (no rules).
pub fn topic_json(name: &str, subscriptions: &[&str], lock_duration: &str) -> serde_json::Value {
    let subscriptions: Vec<serde_json::Value> = subscriptions
        .iter()
        .map(|sub| {
            serde_json::json!({
                "Name": sub,
                "Properties": {
                    "DeadLetteringOnMessageExpiration": false,
                    "DefaultMessageTimeToLive": "PT1H",
                    "LockDuration": lock_duration,
                    "MaxDeliveryCount": 10,
                    "ForwardDeadLetteredMessagesTo": "",
                    "ForwardTo": "",
                    "RequiresSession": false
                },
                "Rules": []
            })
        })
        .collect();
    serde_json::json!({
        "Name": name,
        "Properties": {
            "DefaultMessageTimeToLive": "PT1H",
            "DuplicateDetectionHistoryTimeWindow": "PT20S",
            "RequiresDuplicateDetection": false
        },
        "Subscriptions": subscriptions
    })
}

/// A `busdrain emulator` child on a free port with its own data directory; killed on drop
/// (its log tail is printed if the test is failing).
pub struct EmulatorChild {
    child: Child,
    pub port: u16,
    /// `None`: the emulator's built-in entities (`queue.1`, `topic.1`, ...).
    config: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl EmulatorChild {
    /// Serves the given queues and topics (Microsoft's emulator `Config.json` format).
    pub fn start(queues: Vec<serde_json::Value>, topics: Vec<serde_json::Value>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = serde_json::json!({
            "UserConfig": {
                "Namespaces": [{ "Name": "sbemulatorns", "Queues": queues, "Topics": topics }],
                "Logging": { "Type": "Console" }
            }
        });
        let path = dir.path().join("Config.json");
        std::fs::write(&path, config.to_string()).expect("write Config.json");
        Self::launch(dir, Some(path))
    }

    /// Serves the emulator's built-in entities (no `Config.json`).
    pub fn start_default() -> Self {
        Self::launch(tempfile::tempdir().expect("a temporary directory"), None)
    }

    fn launch(dir: tempfile::TempDir, config: Option<PathBuf>) -> Self {
        let port = free_port();
        let child = spawn_emulator(dir.path(), config.as_deref(), port);
        let mut emulator = Self {
            child,
            port,
            config,
            dir,
        };
        emulator.wait_until_listening();
        emulator
    }

    fn wait_until_listening(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the emulator exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not listen on {addr} within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -STOP`: the process keeps its sockets open and answers nothing.
    pub fn freeze(&self) {
        let status = Command::new("kill")
            .arg("-STOP")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP failed");
    }

    /// `kill -9`, then starts again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_emulator(self.dir.path(), self.config.as_deref(), self.port);
        self.wait_until_listening();
    }

    pub fn connection_string(&self) -> String {
        self.connection_string_with_key(EMULATOR_KEY)
    }

    /// The connection string with another SAS key (a wrong one is refused).
    pub fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "Endpoint=sb://127.0.0.1:{};SharedAccessKeyName=RootManageSharedAccessKey;\
             SharedAccessKey={key};UseDevelopmentEmulator=true;",
            self.port
        )
    }

    pub fn log(&self) -> String {
        log_tail(&self.dir.path().join("emulator.log"), 60)
    }
}

/// The key of the emulator's `RootManageSharedAccessKey` policy.
pub const EMULATOR_KEY: &str = "SAS_KEY_VALUE";

/// Starts `busdrain emulator`; the log is appended to, so a restart keeps the earlier lines.
fn spawn_emulator(dir: &Path, config: Option<&Path>, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("emulator.log"))
        .expect("log file");
    let log_err = log.try_clone().expect("log file handle");
    let mut command = Command::new(busdrain_binary());
    command.arg("emulator");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(["--http", "off", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .expect("start the emulator")
}

impl Drop for EmulatorChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- emulator log (last lines) ---\n{}", self.log());
        }
    }
}

/// `busdrain run --config <file>` as a child process with its admin endpoint on a free port;
/// SIGKILLed on drop.
pub struct ConnectorChild {
    child: Child,
    pub admin: SocketAddr,
    log: PathBuf,
}

impl ConnectorChild {
    /// Writes `config` (which must contain `[admin] listen = "{admin}"`, filled in here) to
    /// `dir/<name>.toml` and starts the connector; returns once `/healthz` answers.
    pub fn start(dir: &Path, name: &str, config: &str) -> Self {
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config.replace("{admin}", &admin.to_string()))
            .expect("write the connector config");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("connector log");
        let err = out.try_clone().expect("connector log handle");
        // BUSDRAIN_TEST_LOG (e.g. `info,busdrain_connector=debug`) sets the connector's filter.
        let filter = std::env::var("BUSDRAIN_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        let child = Command::new(busdrain_binary())
            .args(["--log", &filter, "run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start busdrain run");
        let mut connector = Self { child, admin, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while connector.get("/healthz").map(|(status, _)| status) != Some(200) {
            assert!(
                connector.is_running(),
                "busdrain run exited during startup:\n{}",
                connector.log()
            );
            assert!(
                Instant::now() < deadline,
                "busdrain run did not serve /healthz within 60 s:\n{}",
                connector.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        connector
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; panics unless it exits 0 within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "busdrain run exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "busdrain run did not exit within {timeout:?} of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` on the admin endpoint: status and body, `None` if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    /// The sum of a metric over all its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let Some((200, text)) = self.get("/metrics") else {
            return 0.0;
        };
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        log_tail(&self.log, 60)
    }
}

impl Drop for ConnectorChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Cassandra node of its own (first address `ip`, run dir under `dir`, the shared jar cache
/// linked in), started with `tools/cassandra/cassandra`; stopped on drop, even when the test
/// fails. The shared node on 127.0.0.1 is never touched.
pub struct DedicatedCassandra {
    pub ip: String,
    cache: PathBuf,
}

impl DedicatedCassandra {
    pub fn start(dir: &Path, ip: &str) -> Self {
        let shared_cache = std::env::var_os("BUSDRAIN_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/busdrain")))
            .expect("HOME or BUSDRAIN_CACHE is set");
        let cache = dir.join("cassandra-cache");
        std::fs::create_dir_all(&cache).expect("cache dir");
        let mut linked = false;
        for entry in std::fs::read_dir(&shared_cache).expect("the shared Cassandra cache exists") {
            let entry = entry.expect("cache entry");
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("cassandra-")
                && name != "cassandra-run"
                && entry.path().is_dir()
            {
                std::os::unix::fs::symlink(entry.path(), cache.join(&name)).expect("link jars");
                linked = true;
            }
        }
        assert!(
            linked,
            "no Cassandra jars in {}: run `tools/cassandra/cassandra fetch`",
            shared_cache.display()
        );
        let node = Self {
            ip: ip.to_owned(),
            cache,
        };
        node.tool("start");
        node
    }

    pub fn address(&self) -> String {
        format!("{}:9042", self.ip)
    }

    /// Runs `tools/cassandra/cassandra <command>` for this node; panics with its output on failure.
    pub fn tool(&self, command: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/cassandra/cassandra");
        let output = Command::new(script)
            .arg(command)
            .env("BUSDRAIN_CACHE", &self.cache)
            .env("BUSDRAIN_CASSANDRA_FIRST_IP", &self.ip)
            .stdin(Stdio::null())
            .output()
            .expect("run tools/cassandra/cassandra");
        assert!(
            output.status.success(),
            "tools/cassandra/cassandra {command} ({}) failed:\n{}{}",
            self.ip,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for DedicatedCassandra {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/cassandra/cassandra");
        let _ = Command::new(script)
            .arg("stop")
            .env("BUSDRAIN_CACHE", &self.cache)
            .env("BUSDRAIN_CASSANDRA_FIRST_IP", &self.ip)
            .stdin(Stdio::null())
            .output();
    }
}
