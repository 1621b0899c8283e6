//! Shared helpers of the connector's integration tests: config text, messages, an in-process
//! message *source* (Cassandra is always the real node), and a TCP proxy that can cut the
//! connector off from Cassandra to simulate an outage.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busdrain_connector::config::EntityPath;
use busdrain_connector::pipeline::SourceOpener;
use busdrain_connector::source::{
    DeadLetter, LockToken, MessageSource, ReceivedMessage, SourceError,
};
use bytes::Bytes;
use scylla::client::session::Session;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The `busdrain` binary for tests that run the emulator as a process: `BUSDRAIN_BIN`, else
/// `target/debug/busdrain` (test binaries of another crate get no `CARGO_BIN_EXE_busdrain`).
pub fn busdrain_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("BUSDRAIN_BIN") {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let binary = target.join("debug").join("busdrain");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p busdrain` first, or set BUSDRAIN_BIN",
        binary.display()
    );
    binary
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the kernel hands out a free port")
}

pub async fn run_cql(session: &Session, cql: &str) {
    if let Err(e) = session.query_unpaged(cql, &[]).await {
        panic!("{cql}: {e}");
    }
}

/// A config with one route `r1` on queue `q` into `ks.table`.
pub fn config_text(ks: &str, table: &str, columns: &str, extra: &str) -> String {
    format!(
        r#"
[service_bus]
connection_string = "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=x;UseDevelopmentEmulator=true;"

[cassandra]
contact_points = ["{}"]
consistency = "ONE"
request_timeout = "2s"

[[routes]]
name = "r1"
table = "{ks}.{table}"
source = {{ queue = "q" }}
receivers = 2
receive_batch = 64
receive_wait = "100ms"
{extra}

[routes.columns]
{columns}
"#,
        busdrain_testsupport::cassandra_address()
    )
}

pub fn message_at(body: &str, enqueued: OffsetDateTime, sequence_number: i64) -> ReceivedMessage {
    ReceivedMessage {
        lock_token: LockToken(uuid::Uuid::new_v4()),
        body: Bytes::copy_from_slice(body.as_bytes()),
        message_id: Some(format!("m-{sequence_number}")),
        sequence_number,
        enqueued_time: enqueued,
        locked_until: None,
        session_id: None,
        correlation_id: None,
        subject: None,
        content_type: Some("application/json".into()),
        partition_key: None,
        delivery_count: 1,
        application_properties: BTreeMap::new(),
    }
}

/// What the fake broker saw.
#[derive(Debug, Default)]
pub struct BrokerState {
    pub queue: VecDeque<ReceivedMessage>,
    pub completed: Vec<ReceivedMessage>,
    pub dead_lettered: Vec<(ReceivedMessage, DeadLetter)>,
    pub abandoned: Vec<ReceivedMessage>,
    pub renewals: usize,
    /// Received and not settled yet, by lock token.
    pub locked: BTreeMap<uuid::Uuid, ReceivedMessage>,
    /// Sessions currently held by a receiver.
    pub held_sessions: std::collections::BTreeSet<String>,
    /// Most sessions held at the same time.
    pub max_concurrent_sessions: usize,
    pub session_renewals: usize,
    /// When set, opening a source fails with this `SourceError::Fatal` message.
    pub refuse_open: Option<String>,
}

/// An in-process queue with peek-lock semantics, standing in for Service Bus.
#[derive(Debug, Clone)]
pub struct FakeBroker {
    pub state: Arc<Mutex<BrokerState>>,
    pub lock_duration: Duration,
}

impl FakeBroker {
    pub fn new(lock_duration: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(BrokerState::default())),
            lock_duration,
        }
    }

    pub fn send(&self, message: ReceivedMessage) {
        self.lock().queue.push_back(message);
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `done` holds, up to `timeout`.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&BrokerState) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if done(&self.lock()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        done(&self.lock())
    }
}

pub struct FakeSource {
    broker: FakeBroker,
    /// The session this source holds (session-enabled entities).
    session: Option<String>,
}

impl FakeSource {
    fn settle(&mut self, token: LockToken) -> Result<ReceivedMessage, SourceError> {
        self.broker
            .lock()
            .locked
            .remove(&token.0)
            .ok_or_else(|| SourceError::LockLost(format!("unknown lock token {}", token.0)))
    }
}

impl MessageSource for FakeSource {
    async fn receive(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, SourceError> {
        let taken: Vec<ReceivedMessage> = {
            let mut state = self.broker.lock();
            let until = OffsetDateTime::now_utc() + self.broker.lock_duration;
            let mut batch = Vec::new();
            if self.session.is_none() {
                let n = max_messages.min(state.queue.len());
                batch.extend(state.queue.drain(..n).map(|mut m| {
                    m.locked_until = Some(until);
                    m
                }));
            } else {
                // Broker order is kept: a session receiver takes only its session's messages.
                let mut rest = VecDeque::with_capacity(state.queue.len());
                while let Some(mut m) = state.queue.pop_front() {
                    if batch.len() < max_messages && m.session_id == self.session {
                        m.locked_until = Some(until);
                        batch.push(m);
                    } else {
                        rest.push_back(m);
                    }
                }
                state.queue = rest;
            }
            for m in &batch {
                state.locked.insert(m.lock_token.0, m.clone());
            }
            batch
        };
        if taken.is_empty() {
            tokio::time::sleep(max_wait).await;
        }
        Ok(taken)
    }

    async fn complete(&mut self, token: LockToken) -> Result<(), SourceError> {
        let m = self.settle(token)?;
        self.broker.lock().completed.push(m);
        Ok(())
    }

    async fn abandon(&mut self, token: LockToken) -> Result<(), SourceError> {
        let m = self.settle(token)?;
        let mut state = self.broker.lock();
        state.abandoned.push(m.clone());
        state.queue.push_back(m);
        Ok(())
    }

    async fn dead_letter(&mut self, token: LockToken, why: DeadLetter) -> Result<(), SourceError> {
        let m = self.settle(token)?;
        self.broker.lock().dead_lettered.push((m, why));
        Ok(())
    }

    async fn renew_lock(&mut self, token: LockToken) -> Result<OffsetDateTime, SourceError> {
        let mut state = self.broker.lock();
        if !state.locked.contains_key(&token.0) {
            return Err(SourceError::LockLost("not locked".into()));
        }
        state.renewals += 1;
        Ok(OffsetDateTime::now_utc() + self.broker.lock_duration)
    }

    fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    async fn renew_session_lock(&mut self) -> Result<Option<OffsetDateTime>, SourceError> {
        if self.session.is_none() {
            return Ok(None);
        }
        self.broker.lock().session_renewals += 1;
        Ok(Some(OffsetDateTime::now_utc() + self.broker.lock_duration))
    }

    async fn close(self) -> Result<(), SourceError> {
        if let Some(session) = &self.session {
            self.broker.lock().held_sessions.remove(session);
        }
        Ok(())
    }
}

impl SourceOpener for FakeBroker {
    type Source = FakeSource;

    async fn open(&self, _entity: &EntityPath) -> Result<FakeSource, SourceError> {
        if let Some(why) = self.lock().refuse_open.clone() {
            return Err(SourceError::Fatal(why));
        }
        Ok(FakeSource {
            broker: self.clone(),
            session: None,
        })
    }

    async fn accept_next_session(
        &self,
        _entity: &EntityPath,
        wait: Duration,
    ) -> Result<FakeSource, SourceError> {
        {
            let mut state = self.lock();
            let free = state
                .queue
                .iter()
                .filter_map(|m| m.session_id.clone())
                .find(|s| !state.held_sessions.contains(s));
            if let Some(session) = free {
                state.held_sessions.insert(session.clone());
                state.max_concurrent_sessions =
                    state.max_concurrent_sessions.max(state.held_sessions.len());
                return Ok(FakeSource {
                    broker: self.clone(),
                    session: Some(session),
                });
            }
        }
        tokio::time::sleep(wait).await;
        Err(SourceError::NoSessionAvailable)
    }
}

/// A TCP proxy in front of Cassandra that can be switched off (every connection cut, new ones
/// refused) and on again, to take Cassandra away from the connector without stopping the
/// shared node.
pub struct CassandraProxy {
    pub addr: SocketAddr,
    up: Arc<tokio::sync::watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl CassandraProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (tx, _) = tokio::sync::watch::channel(true);
        let up = Arc::new(tx);
        let accept = {
            let up = up.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !*up.borrow() {
                        drop(client);
                        continue;
                    }
                    let mut down = up.subscribe();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let (mut cr, mut cw) = client.into_split();
                        let (mut sr, mut sw) = server.into_split();
                        tokio::select! {
                            _ = tokio::io::copy(&mut cr, &mut sw) => {}
                            _ = tokio::io::copy(&mut sr, &mut cw) => {}
                            _ = down.wait_for(|up| !*up) => {}
                        }
                    });
                }
            })
        };
        Self { addr, up, accept }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for CassandraProxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.accept.abort();
    }
}

pub mod process;
pub mod servicebus;
