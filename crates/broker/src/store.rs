//! The durable store: one redb file, one writer thread doing group commit.
//!
//! Layout (all keys big-endian so byte order is numeric order):
//! - `messages`: `entity_id (u32) ‖ sequence_number (u64)` → encoded [`StoredMessage`]
//!   without its payload (small: opening scans only this table, and settlements rewrite it
//!   without touching the payload).
//! - `payloads`: same key → the payload bytes.
//! - `sequences`: `entity_id` → last sequence number handed out by that queue or topic, so
//!   numbers are never reused even after every message was completed.
//! - `entities`: case-folded entity path → `entity_id`, so ids stay stable when the config
//!   gains or loses entities between runs.
//! - `session_states`: `entity_id ‖ session id (UTF-8)` → session state blob.
//! - `rules`: subscription `entity_id` → its rules after runtime changes, with the config's
//!   rules at the time (see [`StoredRules`]).
//!
//! Writes go through [`Store::submit`]: the writer thread takes every request queued at that
//! moment, applies them all in one transaction committed with `Durability::Immediate` (one
//! fsync), then runs each request's completion callback in submission order. Callbacks update
//! the in-memory entity state, so memory only ever shows committed data, and run in commit
//! order, so sequence numbers become visible in order.
//!
//! Reads use redb's MVCC read transactions and never wait for the writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::BrokerError;
use crate::message::StoredMessage;

const MESSAGES: TableDefinition<[u8; 12], &[u8]> = TableDefinition::new("messages");
const PAYLOADS: TableDefinition<[u8; 12], &[u8]> = TableDefinition::new("payloads");
const SEQUENCES: TableDefinition<u32, u64> = TableDefinition::new("sequences");
const ENTITIES: TableDefinition<&str, u32> = TableDefinition::new("entities");
const SESSION_STATES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("session_states");
const RULES: TableDefinition<u32, &[u8]> = TableDefinition::new("rules");

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "busdrain-broker.redb";

/// Upper bound on requests folded into one transaction; bounds commit latency under load.
const MAX_REQUESTS_PER_COMMIT: usize = 4096;
/// Upper bound on payload bytes folded into one transaction.
const MAX_BYTES_PER_COMMIT: usize = 64 * 1024 * 1024;

/// One change to apply in the write transaction.
pub(crate) enum WriteOp {
    /// Insert or replace a message record; `payload` is written too when given (new
    /// messages, dead-letter moves) and left as is when `None` (settlement updates).
    Put {
        entity: u32,
        sequence_number: i64,
        record: Arc<[u8]>,
        payload: Option<bytes::Bytes>,
    },
    /// Remove a message record and its payload (absent records are ignored).
    Delete { entity: u32, sequence_number: i64 },
    /// Persist the last sequence number handed out by a queue or topic.
    SetLastSequence { entity: u32, last: i64 },
    /// Replace a subscription's stored rules (an encoded [`StoredRules`]).
    SetRules { entity: u32, record: Vec<u8> },
    /// Set (`Some`) or clear (`None`) a session's state blob.
    SetSessionState {
        entity: u32,
        session_id: String,
        state: Option<bytes::Bytes>,
    },
}

/// The outcome of a commit, shared by every request in it.
pub(crate) type CommitResult = Result<(), BrokerError>;

/// Runs on the writer thread after the commit (or its failure). Must not block for long.
pub(crate) type OnCommit = Box<dyn FnOnce(CommitResult) + Send>;

struct WriteRequest {
    ops: Vec<WriteOp>,
    on_commit: OnCommit,
}

/// Handle to the database: reads on the caller's thread, writes through the writer thread.
pub(crate) struct Store {
    db: Arc<Database>,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What [`Store::open`] found on disk.
pub(crate) struct Recovered {
    /// Every stored message (without payload), per entity id, in sequence order.
    pub messages: HashMap<u32, Vec<StoredMessage>>,
    /// Last sequence number per queue/topic id.
    pub last_sequences: HashMap<u32, i64>,
    /// Entity ids by case-folded path, including ones assigned just now.
    pub entity_ids: HashMap<String, u32>,
    /// Session state blobs per entity id.
    pub session_states: HashMap<u32, Vec<(String, Vec<u8>)>>,
    /// Encoded [`StoredRules`] per subscription id.
    pub rules: HashMap<u32, Vec<u8>>,
}

/// A subscription's rules as changed at runtime, with the configuration's rules they were
/// derived from.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredRules {
    pub config: Vec<busdrain_filter::Rule>,
    pub current: Vec<busdrain_filter::Rule>,
}

/// Encodes a rules record.
pub(crate) fn encode_rules(rules: &StoredRules) -> Result<Vec<u8>, BrokerError> {
    postcard::to_allocvec(rules).map_err(|e| BrokerError::Corrupt {
        detail: format!("cannot encode rules: {e}"),
    })
}

/// Decodes a rules record; an undecodable one is logged and ignored (the config's rules apply).
pub(crate) fn decode_rules(entity: &crate::path::EntityPath, bytes: &[u8]) -> Option<StoredRules> {
    match postcard::from_bytes(bytes) {
        Ok(rules) => Some(rules),
        Err(error) => {
            tracing::warn!(%entity, %error, "stored rules unreadable; using the configured rules");
            None
        }
    }
}

fn key(entity: u32, sequence_number: i64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&entity.to_be_bytes());
    key[4..].copy_from_slice(&(sequence_number as u64).to_be_bytes());
    key
}

fn session_key(entity: u32, session_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + session_id.len());
    key.extend_from_slice(&entity.to_be_bytes());
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn split_key(key: [u8; 12]) -> (u32, i64) {
    let mut entity = [0u8; 4];
    entity.copy_from_slice(&key[..4]);
    let mut sequence = [0u8; 8];
    sequence.copy_from_slice(&key[4..]);
    (
        u32::from_be_bytes(entity),
        u64::from_be_bytes(sequence) as i64,
    )
}

/// Serialises a message record, without its payload (stored apart, see the module docs).
pub(crate) fn encode(message: &StoredMessage) -> Result<Arc<[u8]>, BrokerError> {
    let mut header = message.clone();
    header.content.payload = bytes::Bytes::new();
    postcard::to_allocvec(&header)
        .map(Arc::from)
        .map_err(|e| BrokerError::Corrupt {
            detail: format!("cannot encode message {}: {e}", message.sequence_number),
        })
}

fn decode(entity: u32, sequence_number: i64, bytes: &[u8]) -> Result<StoredMessage, BrokerError> {
    postcard::from_bytes(bytes).map_err(|e| BrokerError::Corrupt {
        detail: format!("message {sequence_number} of entity id {entity}: {e}"),
    })
}

impl Store {
    /// Opens (or creates) the database, assigns ids to `entity_keys` not seen before, and
    /// loads every message so the caller can rebuild its in-memory indexes.
    pub(crate) fn open(
        data_dir: &Path,
        entity_keys: &[String],
    ) -> Result<(Arc<Store>, Recovered), BrokerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BrokerError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let db =
            Database::create(&path).map_err(|e| BrokerError::store("opening the database", e))?;

        let entity_ids = assign_entity_ids(&db, entity_keys)?;
        let (messages, last_sequences, session_states, rules) = load_everything(&db)?;

        let db = Arc::new(db);
        let (sender, receiver) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("broker-writer".to_owned())
            .spawn(move || run_writer(&writer_db, &receiver))
            .map_err(|source| BrokerError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        let store = Arc::new(Store {
            db,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        });
        Ok((
            store,
            Recovered {
                messages,
                last_sequences,
                entity_ids,
                session_states,
                rules,
            },
        ))
    }

    /// Queues `ops` for the next group commit; `on_commit` runs on the writer thread once the
    /// transaction is durable (or failed).
    ///
    /// If the writer is gone (the broker is closed), `on_commit` is dropped without running:
    /// callers awaiting a oneshot inside it see the channel close and report `ShuttingDown`.
    /// It is never run inline, so callers may hold locks the callback takes.
    pub(crate) fn submit(&self, ops: Vec<WriteOp>, on_commit: OnCommit) {
        let request = WriteRequest { ops, on_commit };
        let sent = match self.sender.lock() {
            Ok(guard) => guard
                .as_ref()
                .is_some_and(|sender| sender.send(request).is_ok()),
            Err(_) => false,
        };
        if !sent {
            tracing::debug!("write refused: the broker is closed");
        }
    }

    /// Reads the records of `sequence_numbers` in one read transaction; `None` where absent.
    pub(crate) fn read(
        &self,
        entity: u32,
        sequence_numbers: &[i64],
    ) -> Result<Vec<Option<StoredMessage>>, BrokerError> {
        if sequence_numbers.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self
            .db
            .begin_read()
            .map_err(|e| BrokerError::store("reading messages", e))?;
        let table = txn
            .open_table(MESSAGES)
            .map_err(|e| BrokerError::store("reading messages", e))?;
        let payloads = txn
            .open_table(PAYLOADS)
            .map_err(|e| BrokerError::store("reading messages", e))?;
        sequence_numbers
            .iter()
            .map(|&sequence_number| {
                let k = key(entity, sequence_number);
                let found = table
                    .get(k)
                    .map_err(|e| BrokerError::store("reading messages", e))?;
                let Some(guard) = found else {
                    return Ok(None);
                };
                let mut message = decode(entity, sequence_number, guard.value())?;
                let payload = payloads
                    .get(k)
                    .map_err(|e| BrokerError::store("reading messages", e))?
                    .ok_or_else(|| BrokerError::Corrupt {
                        detail: format!(
                            "message {sequence_number} of entity id {entity} has no payload"
                        ),
                    })?;
                message.content.payload = bytes::Bytes::copy_from_slice(payload.value());
                Ok(Some(message))
            })
            .collect()
    }

    /// Stops accepting writes, lets the writer finish what is queued, and waits for it.
    pub(crate) fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!("broker writer thread panicked");
            }
        }
    }
}

fn assign_entity_ids(
    db: &Database,
    entity_keys: &[String],
) -> Result<HashMap<String, u32>, BrokerError> {
    let context = "assigning entity ids";
    let txn = db
        .begin_write()
        .map_err(|e| BrokerError::store(context, e))?;
    let mut ids = HashMap::new();
    {
        let mut table = txn
            .open_table(ENTITIES)
            .map_err(|e| BrokerError::store(context, e))?;
        let mut next_id = 0u32;
        for entry in table.iter().map_err(|e| BrokerError::store(context, e))? {
            let (name, id) = entry.map_err(|e| BrokerError::store(context, e))?;
            ids.insert(name.value().to_owned(), id.value());
            next_id = next_id.max(id.value().saturating_add(1));
        }
        for entity_key in entity_keys {
            if !ids.contains_key(entity_key) {
                table
                    .insert(entity_key.as_str(), next_id)
                    .map_err(|e| BrokerError::store(context, e))?;
                ids.insert(entity_key.clone(), next_id);
                next_id = next_id.checked_add(1).ok_or_else(|| BrokerError::Corrupt {
                    detail: "entity id space exhausted".to_owned(),
                })?;
            }
        }
    }
    // Make sure the other tables exist so read transactions can open them.
    txn.open_table(MESSAGES)
        .map_err(|e| BrokerError::store(context, e))?;
    txn.open_table(PAYLOADS)
        .map_err(|e| BrokerError::store(context, e))?;
    txn.open_table(SEQUENCES)
        .map_err(|e| BrokerError::store(context, e))?;
    txn.open_table(SESSION_STATES)
        .map_err(|e| BrokerError::store(context, e))?;
    txn.open_table(RULES)
        .map_err(|e| BrokerError::store(context, e))?;
    txn.commit().map_err(|e| BrokerError::store(context, e))?;
    Ok(ids)
}

type Loaded = (
    HashMap<u32, Vec<StoredMessage>>,
    HashMap<u32, i64>,
    HashMap<u32, Vec<(String, Vec<u8>)>>,
    HashMap<u32, Vec<u8>>,
);

fn load_everything(db: &Database) -> Result<Loaded, BrokerError> {
    let context = "loading messages";
    let txn = db
        .begin_read()
        .map_err(|e| BrokerError::store(context, e))?;
    let mut messages: HashMap<u32, Vec<StoredMessage>> = HashMap::new();
    let table = txn
        .open_table(MESSAGES)
        .map_err(|e| BrokerError::store(context, e))?;
    for entry in table.iter().map_err(|e| BrokerError::store(context, e))? {
        let (k, v) = entry.map_err(|e| BrokerError::store(context, e))?;
        let (entity, sequence_number) = split_key(k.value());
        let message = decode(entity, sequence_number, v.value())?;
        messages.entry(entity).or_default().push(message);
    }
    let mut last_sequences = HashMap::new();
    let table = txn
        .open_table(SEQUENCES)
        .map_err(|e| BrokerError::store(context, e))?;
    for entry in table.iter().map_err(|e| BrokerError::store(context, e))? {
        let (entity, last) = entry.map_err(|e| BrokerError::store(context, e))?;
        last_sequences.insert(entity.value(), last.value() as i64);
    }
    let mut session_states: HashMap<u32, Vec<(String, Vec<u8>)>> = HashMap::new();
    let table = txn
        .open_table(SESSION_STATES)
        .map_err(|e| BrokerError::store(context, e))?;
    for entry in table.iter().map_err(|e| BrokerError::store(context, e))? {
        let (k, v) = entry.map_err(|e| BrokerError::store(context, e))?;
        let key = k.value();
        if key.len() < 4 {
            return Err(BrokerError::Corrupt {
                detail: "session state key shorter than an entity id".to_owned(),
            });
        }
        let mut entity = [0u8; 4];
        entity.copy_from_slice(&key[..4]);
        let session_id = String::from_utf8_lossy(&key[4..]).into_owned();
        session_states
            .entry(u32::from_be_bytes(entity))
            .or_default()
            .push((session_id, v.value().to_vec()));
    }
    let mut rules = HashMap::new();
    let table = txn
        .open_table(RULES)
        .map_err(|e| BrokerError::store(context, e))?;
    for entry in table.iter().map_err(|e| BrokerError::store(context, e))? {
        let (entity, record) = entry.map_err(|e| BrokerError::store(context, e))?;
        rules.insert(entity.value(), record.value().to_vec());
    }
    Ok((messages, last_sequences, session_states, rules))
}

/// The writer loop: block for one request, gather whatever else is queued, commit once.
fn run_writer(db: &Database, receiver: &mpsc::Receiver<WriteRequest>) {
    while let Ok(first) = receiver.recv() {
        let mut bytes = batch_bytes(&first);
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS_PER_COMMIT && bytes < MAX_BYTES_PER_COMMIT {
            match receiver.try_recv() {
                Ok(request) => {
                    bytes += batch_bytes(&request);
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let result = commit(db, &batch);
        if let Err(error) = &result {
            tracing::error!(%error, requests = batch.len(), "broker commit failed");
        }
        for request in batch {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(BrokerError::Store {
                    context: "committing",
                    message: error.to_string(),
                }),
            };
            (request.on_commit)(outcome);
        }
    }
}

fn batch_bytes(request: &WriteRequest) -> usize {
    request
        .ops
        .iter()
        .map(|op| match op {
            WriteOp::Put {
                record, payload, ..
            } => record.len() + payload.as_ref().map_or(0, |p| p.len()),
            _ => 16,
        })
        .sum()
}

fn commit(db: &Database, batch: &[WriteRequest]) -> Result<(), BrokerError> {
    let context = "writing";
    let txn = db
        .begin_write()
        .map_err(|e| BrokerError::store(context, e))?;
    {
        let mut messages = txn
            .open_table(MESSAGES)
            .map_err(|e| BrokerError::store(context, e))?;
        let mut payloads = txn
            .open_table(PAYLOADS)
            .map_err(|e| BrokerError::store(context, e))?;
        let mut sequences = txn
            .open_table(SEQUENCES)
            .map_err(|e| BrokerError::store(context, e))?;
        let mut sessions = txn
            .open_table(SESSION_STATES)
            .map_err(|e| BrokerError::store(context, e))?;
        let mut rules = txn
            .open_table(RULES)
            .map_err(|e| BrokerError::store(context, e))?;
        for op in batch.iter().flat_map(|request| &request.ops) {
            match op {
                WriteOp::Put {
                    entity,
                    sequence_number,
                    record,
                    payload,
                } => {
                    let k = key(*entity, *sequence_number);
                    messages
                        .insert(k, &record[..])
                        .map_err(|e| BrokerError::store(context, e))?;
                    if let Some(payload) = payload {
                        payloads
                            .insert(k, payload.as_ref())
                            .map_err(|e| BrokerError::store(context, e))?;
                    }
                }
                WriteOp::Delete {
                    entity,
                    sequence_number,
                } => {
                    let k = key(*entity, *sequence_number);
                    messages
                        .remove(k)
                        .map_err(|e| BrokerError::store(context, e))?;
                    payloads
                        .remove(k)
                        .map_err(|e| BrokerError::store(context, e))?;
                }
                WriteOp::SetSessionState {
                    entity,
                    session_id,
                    state,
                } => {
                    let key = session_key(*entity, session_id);
                    match state {
                        Some(blob) => sessions.insert(key.as_slice(), blob.as_ref()).map(|_| ()),
                        None => sessions.remove(key.as_slice()).map(|_| ()),
                    }
                    .map_err(|e| BrokerError::store(context, e))?;
                }
                WriteOp::SetRules { entity, record } => {
                    rules
                        .insert(*entity, record.as_slice())
                        .map_err(|e| BrokerError::store(context, e))?;
                }
                WriteOp::SetLastSequence { entity, last } => {
                    sequences
                        .insert(*entity, *last as u64)
                        .map_err(|e| BrokerError::store(context, e))?;
                }
            }
        }
    }
    // Durability::Immediate is redb's default: the commit returns after fsync.
    txn.commit().map_err(|e| BrokerError::store(context, e))
}
