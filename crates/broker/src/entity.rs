//! One queue, topic, subscription or dead-letter queue: its in-memory index and operations.
//!
//! # State and invariants
//! Every stored message of an entity has a [`MessageMeta`] in `EntityState::messages`. The
//! record on disk is the truth for content, delivery count, state and modified properties;
//! the meta mirrors what the broker needs to pick messages without reading disk, plus the
//! lock (locks live only in memory and lapse on restart).
//!
//! A message is in exactly one of these conditions:
//! - *available*: Active, scheduled time passed, unlocked, not busy → in `available`;
//! - *locked*: `lock` is set, token in `locks`, deadline in `lock_deadlines`;
//! - *deferred* (unlocked) or *scheduled*: not in `available`;
//! - *busy*: a write about it is in flight; nobody else may touch it until the write's
//!   completion callback (on the writer thread) sets the new condition.
//!
//! Memory changes that make data visible happen in commit callbacks, after the data is
//! durable, so a receiver never reads a record older than the memory that pointed it there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use busdrain_filter::{MessageProperties, Rule};

use crate::config::EntityProperties;
use crate::duplicates::DuplicateDetector;
use crate::error::BrokerError;
use crate::filter::{filter_view, route_to_subscription, selects_everything};
use crate::message::{
    DeadLetterInfo, Delivery, MessageLock, MessageState, NewMessage, PropertyMap, PropertyValue,
    ReceiveMode, StoredMessage, DEAD_LETTER_ERROR_DESCRIPTION, DEAD_LETTER_REASON,
    REASON_MAX_DELIVERY_COUNT_EXCEEDED, REASON_TTL_EXPIRED,
};
use crate::path::EntityPath;
use crate::store::{encode, CommitResult, Store, WriteOp};
use crate::time::Timestamp;

mod rules;
mod session;
use session::SessionEntry;
pub use session::SessionLock;

/// What kind of entity a handle refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A queue (or a queue's dead-letter queue).
    Queue,
    /// A topic: can be sent to, not received from.
    Topic,
    /// A topic subscription (or its dead-letter queue): can be received from, not sent to.
    Subscription,
}

/// Message counts of an entity, as the Service Bus runtime properties report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Active messages, locked or not.
    pub active: usize,
    /// Active messages currently locked by a receiver.
    pub locked: usize,
    pub deferred: usize,
    pub scheduled: usize,
}

/// In-memory view of one stored message.
#[derive(Debug, Clone)]
struct MessageMeta {
    state: MessageState,
    scheduled_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    lock: Option<MessageLock>,
    busy: bool,
    enqueued_time: Timestamp,
    /// The session the message belongs to, tracked only in session-enabled entities.
    session: Option<Arc<str>>,
}

struct EntityState {
    messages: BTreeMap<i64, MessageMeta>,
    /// Available messages outside sessions (in a session-enabled entity: in `sessions`).
    available: BTreeSet<i64>,
    /// Sessions of a session-enabled entity that have messages, a lock or state.
    sessions: BTreeMap<Arc<str>, SessionEntry>,
    locks: HashMap<Uuid, i64>,
    lock_deadlines: BTreeSet<(Timestamp, i64)>,
    expiries: BTreeSet<(Timestamp, i64)>,
    schedule: BTreeSet<(Timestamp, i64)>,
    /// Last sequence number handed out (queues and topics only).
    last_sequence: i64,
    /// MessageIds within the duplicate detection window (queues and topics that require it).
    duplicates: Option<DuplicateDetector>,
}

impl EntityState {
    fn new(properties: &EntityProperties) -> Self {
        Self {
            messages: BTreeMap::new(),
            available: BTreeSet::new(),
            sessions: BTreeMap::new(),
            locks: HashMap::new(),
            lock_deadlines: BTreeSet::new(),
            expiries: BTreeSet::new(),
            schedule: BTreeSet::new(),
            last_sequence: 0,
            duplicates: properties.requires_duplicate_detection.then(|| {
                DuplicateDetector::new(properties.duplicate_detection_history_time_window)
            }),
        }
    }

    /// Assigns the next sequence number, or — for a MessageId accepted within the duplicate
    /// detection window — returns the original's number and `false` (do not store).
    fn admit(&mut self, message: &NewMessage, now: Timestamp) -> (i64, bool) {
        if let (Some(detector), Some(id)) =
            (self.duplicates.as_mut(), message.message_id.as_deref())
        {
            if let Some(original) = detector.original(id, now) {
                return (original, false);
            }
        }
        self.last_sequence += 1;
        let sequence_number = self.last_sequence;
        if let (Some(detector), Some(id)) =
            (self.duplicates.as_mut(), message.message_id.as_deref())
        {
            detector.remember(id, now, sequence_number);
        }
        (sequence_number, true)
    }

    /// Undoes [`Self::admit`]'s memory of ids whose send failed.
    fn forget_admitted(&mut self, admitted: &[(String, i64)]) {
        if let Some(detector) = self.duplicates.as_mut() {
            for (id, sequence_number) in admitted {
                detector.forget(id, *sequence_number);
            }
        }
    }

    /// The available set a message belongs in: its session's, or the entity's.
    fn available_set(&mut self, session: Option<&Arc<str>>) -> &mut BTreeSet<i64> {
        match session {
            Some(session) => {
                &mut self
                    .sessions
                    .entry(Arc::clone(session))
                    .or_default()
                    .available
            }
            None => &mut self.available,
        }
    }

    fn make_available(&mut self, sequence_number: i64) {
        let session = self
            .messages
            .get(&sequence_number)
            .and_then(|m| m.session.clone());
        self.available_set(session.as_ref()).insert(sequence_number);
    }

    fn make_unavailable(&mut self, sequence_number: i64) -> bool {
        let session = self
            .messages
            .get(&sequence_number)
            .and_then(|m| m.session.clone());
        match session {
            Some(session) => self
                .sessions
                .get_mut(&session)
                .is_some_and(|entry| entry.available.remove(&sequence_number)),
            None => self.available.remove(&sequence_number),
        }
    }

    /// The lowest available sequence number ≥ `from`, outside sessions or in `session`.
    fn next_available(&self, session: Option<&str>, from: i64) -> Option<i64> {
        let set = match session {
            Some(session) => &self.sessions.get(session)?.available,
            None => &self.available,
        };
        set.range(from..).next().copied()
    }

    fn insert(&mut self, sequence_number: i64, meta: MessageMeta) {
        if let Some(expires_at) = meta.expires_at {
            self.expiries.insert((expires_at, sequence_number));
        }
        if let Some(session) = &meta.session {
            let entry = self.sessions.entry(Arc::clone(session)).or_default();
            entry.messages += 1;
            entry.updated = Timestamp::now();
        }
        let available = match meta.state {
            MessageState::Scheduled => {
                if let Some(at) = meta.scheduled_at {
                    self.schedule.insert((at, sequence_number));
                }
                false
            }
            MessageState::Active => meta.lock.is_none() && !meta.busy,
            MessageState::Deferred => false,
        };
        self.messages.insert(sequence_number, meta);
        if available {
            self.make_available(sequence_number);
        }
    }

    fn remove(&mut self, sequence_number: i64) {
        self.make_unavailable(sequence_number);
        if let Some(meta) = self.messages.remove(&sequence_number) {
            if let Some(session) = &meta.session {
                if let Some(entry) = self.sessions.get_mut(session) {
                    entry.messages = entry.messages.saturating_sub(1);
                    entry.updated = Timestamp::now();
                    if entry.is_idle() {
                        self.sessions.remove(session);
                    }
                }
            }
            if let Some(lock) = meta.lock {
                self.locks.remove(&lock.token);
                self.lock_deadlines
                    .remove(&(lock.locked_until, sequence_number));
            }
            if let Some(expires_at) = meta.expires_at {
                self.expiries.remove(&(expires_at, sequence_number));
            }
            if let Some(at) = meta.scheduled_at {
                self.schedule.remove(&(at, sequence_number));
            }
        }
    }

    /// Takes the lock `token` off its message and marks the message busy for a settlement.
    /// Fails with `LockLost` when the token is unknown or its lock already expired.
    fn take_lock(&mut self, token: Uuid, now: Timestamp) -> Option<i64> {
        let sequence_number = *self.locks.get(&token)?;
        let meta = self.messages.get_mut(&sequence_number)?;
        let lock = meta.lock?;
        if lock.locked_until < now {
            // Expired but not yet swept: the sweeper owns it now.
            return None;
        }
        self.locks.remove(&token);
        self.lock_deadlines
            .remove(&(lock.locked_until, sequence_number));
        meta.lock = None;
        meta.busy = true;
        Some(sequence_number)
    }

    /// Ends a busy period: the message is back in `state`, available if Active.
    fn release(&mut self, sequence_number: i64, state: MessageState) -> bool {
        let Some(meta) = self.messages.get_mut(&sequence_number) else {
            return false;
        };
        meta.busy = false;
        meta.state = state;
        if state == MessageState::Active {
            self.make_available(sequence_number);
            return true;
        }
        false
    }

    fn lock(&mut self, sequence_number: i64, locked_until: Timestamp) -> Option<MessageLock> {
        self.make_unavailable(sequence_number);
        let meta = self.messages.get_mut(&sequence_number)?;
        let lock = MessageLock {
            token: Uuid::new_v4(),
            locked_until,
        };
        meta.lock = Some(lock);
        self.locks.insert(lock.token, sequence_number);
        self.lock_deadlines
            .insert((lock.locked_until, sequence_number));
        Some(lock)
    }
}

/// Takes up to `max` available messages in sequence order (outside sessions, or of
/// `session`): locks them until `locked_until` (PeekLock) or marks them busy for deletion.
/// Messages found expired are marked busy and returned separately for expiry.
fn pick_available(
    state: &mut EntityState,
    session: Option<&str>,
    max: usize,
    mode: ReceiveMode,
    locked_until: Timestamp,
    now: Timestamp,
) -> (Vec<(i64, Option<MessageLock>)>, Vec<i64>) {
    let mut picked = Vec::new();
    let mut expired = Vec::new();
    let mut cursor = i64::MIN;
    while picked.len() < max {
        let Some(sequence_number) = state.next_available(session, cursor) else {
            break;
        };
        cursor = sequence_number.saturating_add(1);
        let Some(meta) = state.messages.get_mut(&sequence_number) else {
            // Unreachable by the invariants; never loop on it.
            match session {
                Some(session) => {
                    if let Some(entry) = state.sessions.get_mut(session) {
                        entry.available.remove(&sequence_number);
                    }
                }
                None => {
                    state.available.remove(&sequence_number);
                }
            }
            continue;
        };
        if meta.expires_at.is_some_and(|at| at <= now) {
            meta.busy = true;
            state.make_unavailable(sequence_number);
            expired.push(sequence_number);
            continue;
        }
        match mode {
            ReceiveMode::PeekLock => {
                let lock = state.lock(sequence_number, locked_until);
                picked.push((sequence_number, lock));
            }
            ReceiveMode::ReceiveAndDelete => {
                meta.busy = true;
                state.make_unavailable(sequence_number);
                picked.push((sequence_number, None));
            }
        }
    }
    (picked, expired)
}

/// A message's meta as rebuilt from its record (after a restart every lock has lapsed).
/// `sessions`: whether the entity groups messages by session.
fn meta_of(message: &StoredMessage, sessions: bool) -> MessageMeta {
    MessageMeta {
        state: message.state,
        scheduled_at: message.content.scheduled_enqueue_time,
        expires_at: message.expires_at,
        lock: None,
        busy: false,
        enqueued_time: message.enqueued_time,
        session: if sessions {
            message.content.session_id.as_deref().map(Arc::from)
        } else {
            None
        },
    }
}

/// Shared state behind an [`Entity`] handle.
pub(crate) struct EntityInner {
    pub(crate) id: u32,
    pub(crate) path: EntityPath,
    pub(crate) kind: EntityKind,
    pub(crate) properties: EntityProperties,
    pub(crate) max_message_size: usize,
    state: Mutex<EntityState>,
    changes: watch::Sender<u64>,
    store: Arc<Store>,
    /// The DLQ of a queue or subscription; `None` for topics and for DLQs themselves.
    pub(crate) dead_letter_queue: Option<Arc<EntityInner>>,
    /// A topic's subscriptions.
    pub(crate) subscriptions: Vec<Arc<EntityInner>>,
    /// A subscription's rules (empty for other entities); changed through `$management`.
    pub(crate) rules: RwLock<Vec<Rule>>,
    config_rules: Vec<Rule>,
    /// Serialises rule changes (read-modify-write across an await).
    rule_changes: tokio::sync::Mutex<()>,
}

/// What the broker decides about an entity when building it from the configuration.
pub(crate) struct EntitySpec {
    pub(crate) id: u32,
    pub(crate) path: EntityPath,
    pub(crate) kind: EntityKind,
    pub(crate) properties: EntityProperties,
    pub(crate) max_message_size: usize,
    pub(crate) dead_letter_queue: Option<Arc<EntityInner>>,
    pub(crate) subscriptions: Vec<Arc<EntityInner>>,
    /// A subscription's rules now (from the store, or the config).
    pub(crate) rules: Vec<Rule>,
    /// A subscription's rules in the configuration, stored with changed rules so a changed
    /// config can be detected at the next open.
    pub(crate) config_rules: Vec<Rule>,
}

/// A cheap, cloneable handle to one entity. Obtained from [`crate::Broker::entity`].
#[derive(Clone)]
pub struct Entity {
    pub(crate) inner: Arc<EntityInner>,
}

/// Wakes a receiver when messages may have become available in an entity: new sends,
/// released locks, abandoned messages, activated scheduled messages.
///
/// Create it before calling [`Entity::receive`] so no wake-up between the two is missed.
pub struct AvailabilityWatch {
    receiver: watch::Receiver<u64>,
}

impl AvailabilityWatch {
    /// Resolves when something changed since the watch was created or last resolved.
    /// Fails with [`BrokerError::ShuttingDown`] when the broker is gone.
    pub async fn changed(&mut self) -> Result<(), BrokerError> {
        self.receiver
            .changed()
            .await
            .map_err(|_| BrokerError::ShuttingDown)
    }
}

impl EntityInner {
    pub(crate) fn new(spec: EntitySpec, store: Arc<Store>) -> Self {
        let state = Mutex::new(EntityState::new(&spec.properties));
        Self {
            id: spec.id,
            path: spec.path,
            kind: spec.kind,
            properties: spec.properties,
            max_message_size: spec.max_message_size,
            state,
            changes: watch::Sender::new(0),
            store,
            dead_letter_queue: spec.dead_letter_queue,
            subscriptions: spec.subscriptions,
            rules: RwLock::new(spec.rules),
            config_rules: spec.config_rules,
            rule_changes: tokio::sync::Mutex::new(()),
        }
    }

    /// The subscription's current rules.
    pub(crate) fn rules(&self) -> std::sync::RwLockReadGuard<'_, Vec<Rule>> {
        self.rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, EntityState> {
        // A poisoned mutex means a panic while holding it (a bug); the index is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    fn name(&self) -> String {
        self.path.to_string()
    }

    /// Rebuilds the index from stored records (called once, at open).
    pub(crate) fn recover(&self, messages: Vec<StoredMessage>, last_sequence: i64) {
        let mut state = self.state();
        state.last_sequence = last_sequence;
        let now = Timestamp::now();
        for message in messages {
            let mut meta = meta_of(&message, self.properties.requires_session);
            if meta.state == MessageState::Scheduled && meta.scheduled_at.is_none_or(|at| at <= now)
            {
                meta.state = MessageState::Active;
            }
            state.last_sequence = state.last_sequence.max(message.sequence_number);
            state.insert(message.sequence_number, meta);
        }
    }

    fn invalid(&self, operation: &'static str, reason: &'static str) -> BrokerError {
        BrokerError::InvalidOperation {
            entity: self.name(),
            operation,
            reason,
        }
    }

    fn is_dead_letter_queue(&self) -> bool {
        self.path.dead_letter
    }

    fn check_receivable(&self, operation: &'static str) -> Result<(), BrokerError> {
        if self.kind == EntityKind::Topic {
            return Err(self.invalid(
                operation,
                "a topic cannot be received from; use one of its subscriptions",
            ));
        }
        if self.properties.requires_session && !self.is_dead_letter_queue() {
            return Err(BrokerError::SessionRequired {
                entity: self.name(),
            });
        }
        Ok(())
    }

    /// Effective expiry of a message sent to this entity.
    fn expiry(&self, message: &NewMessage, visible_from: Timestamp) -> Option<Timestamp> {
        let ttl = match (
            message.time_to_live,
            self.properties.default_message_time_to_live,
        ) {
            (Some(own), Some(default)) => Some(own.min(default)),
            (own, default) => own.or(default),
        };
        ttl.filter(|ttl| !ttl.is_zero())
            .map(|ttl| visible_from.saturating_add(ttl))
    }

    /// Builds the record of a new message in this entity.
    fn new_record(
        &self,
        sequence_number: i64,
        message: NewMessage,
        now: Timestamp,
    ) -> StoredMessage {
        let scheduled = message.scheduled_enqueue_time.filter(|at| *at > now);
        let visible_from = scheduled.unwrap_or(now);
        StoredMessage {
            sequence_number,
            enqueued_time: now,
            expires_at: self.expiry(&message, visible_from),
            delivery_count: 0,
            state: if scheduled.is_some() {
                MessageState::Scheduled
            } else {
                MessageState::Active
            },
            content: message,
            dead_letter: None,
            modified_properties: PropertyMap::new(),
        }
    }

    fn validate_send(&self, messages: &[NewMessage]) -> Result<(), BrokerError> {
        if self.is_dead_letter_queue() {
            return Err(self.invalid("send", "a dead-letter queue cannot be sent to"));
        }
        if self.kind == EntityKind::Subscription {
            return Err(self.invalid(
                "send",
                "a subscription cannot be sent to; send to its topic",
            ));
        }
        for message in messages {
            if message.payload.len() > self.max_message_size {
                return Err(BrokerError::MessageSizeExceeded {
                    entity: self.name(),
                    size: message.payload.len(),
                    max: self.max_message_size,
                });
            }
            if self.properties.requires_session && message.session_id.is_none() {
                return Err(BrokerError::InvalidMessage {
                    entity: self.name(),
                    reason: "the entity requires sessions and the message has no SessionId"
                        .to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Submits a write and awaits its commit.
    async fn write(
        &self,
        ops: Vec<WriteOp>,
        on_commit: impl FnOnce(&CommitResult) + Send + 'static,
    ) -> Result<(), BrokerError> {
        let (done, wait) = oneshot::channel();
        self.store.submit(
            ops,
            Box::new(move |result| {
                on_commit(&result);
                let _ = done.send(result);
            }),
        );
        wait.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Sends to a queue or topic: assigns sequence numbers (dropping duplicates), writes every
    /// copy in one commit, and makes the copies visible once durable.
    async fn send_messages(
        self: &Arc<Self>,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<i64>, BrokerError> {
        let now = Timestamp::now();
        let mut ops = Vec::with_capacity(messages.len() + 1);
        let mut stored: Vec<(Arc<EntityInner>, i64, MessageMeta)> = Vec::new();
        let mut sequence_numbers = Vec::with_capacity(messages.len());
        let mut admitted_ids = Vec::new();
        let wait = {
            let mut state = self.state();
            for message in messages {
                let (sequence_number, store) = state.admit(&message, now);
                sequence_numbers.push(sequence_number);
                if !store {
                    continue;
                }
                if let Some(id) = &message.message_id {
                    admitted_ids.push((id.clone(), sequence_number));
                }
                for (target, record) in self.copies(message, sequence_number, now) {
                    let encoded = match encode(&record) {
                        Ok(encoded) => encoded,
                        Err(error) => {
                            state.forget_admitted(&admitted_ids);
                            return Err(error);
                        }
                    };
                    ops.push(WriteOp::Put {
                        entity: target.id,
                        sequence_number,
                        record: encoded,
                        payload: Some(record.content.payload.clone()),
                    });
                    let meta = meta_of(&record, target.properties.requires_session);
                    stored.push((target, sequence_number, meta));
                }
            }
            ops.push(WriteOp::SetLastSequence {
                entity: self.id,
                last: state.last_sequence,
            });
            let sender = Arc::clone(self);
            // Submitted under the state lock so commit order follows sequence order.
            let (done, wait) = oneshot::channel();
            self.store.submit(
                ops,
                Box::new(move |result| {
                    if result.is_ok() {
                        let mut touched: Vec<Arc<EntityInner>> = Vec::new();
                        for (target, sequence_number, meta) in stored {
                            target.state().insert(sequence_number, meta);
                            if !touched.iter().any(|t| Arc::ptr_eq(t, &target)) {
                                touched.push(target);
                            }
                        }
                        for target in touched {
                            target.notify();
                        }
                    } else {
                        sender.state().forget_admitted(&admitted_ids);
                    }
                    let _ = done.send(result.map(|()| sequence_numbers));
                }),
            );
            wait
        };
        wait.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// The stored copies of one sent message: the message itself for a queue; for a topic,
    /// one per subscription whose rules select it (with the rule action's changes).
    fn copies(
        self: &Arc<Self>,
        message: NewMessage,
        sequence_number: i64,
        now: Timestamp,
    ) -> Vec<(Arc<EntityInner>, StoredMessage)> {
        if self.kind != EntityKind::Topic {
            let record = self.new_record(sequence_number, message, now);
            return vec![(Arc::clone(self), record)];
        }
        // Built on first use: the $Default rule needs no view of the message.
        let mut view: Option<MessageProperties> = None;
        let mut copies = Vec::new();
        for subscription in &self.subscriptions {
            let routed = {
                let rules = subscription.rules();
                if selects_everything(&rules) {
                    Some(Default::default())
                } else {
                    let view =
                        view.get_or_insert_with(|| filter_view(&message, sequence_number, now));
                    route_to_subscription(&rules, &message, view)
                }
            };
            let Some(routed) = routed else { continue };
            let content = routed.content.unwrap_or_else(|| message.clone());
            let mut record = subscription.new_record(sequence_number, content, now);
            record.modified_properties = routed.modified_properties;
            copies.push((Arc::clone(subscription), record));
        }
        copies
    }

    /// Feeds the duplicate detector with MessageIds of stored messages (at open).
    pub(crate) fn remember_message_ids(&self, ids: &[(String, Timestamp, i64)]) {
        let mut state = self.state();
        if let Some(detector) = state.duplicates.as_mut() {
            let mut sorted: Vec<&(String, Timestamp, i64)> = ids.iter().collect();
            sorted.sort_by_key(|(_, at, _)| *at);
            for (id, at, sequence_number) in sorted {
                detector.remember(id, *at, *sequence_number);
            }
        }
    }

    /// Reads peeked messages, reporting the state the index knows (Scheduled → Active on
    /// activation). A message settled between the index read and the record read is skipped.
    fn read_peeked(
        &self,
        picked: Vec<(i64, MessageState)>,
    ) -> Result<Vec<StoredMessage>, BrokerError> {
        let sequence_numbers: Vec<i64> = picked.iter().map(|(s, _)| *s).collect();
        let records = self.read_records(&sequence_numbers)?;
        Ok(picked
            .into_iter()
            .zip(records)
            .filter_map(|((_, state), record)| {
                record.map(|mut message| {
                    message.state = state;
                    message
                })
            })
            .collect())
    }

    /// Reads the records of messages this caller has locked or marked busy.
    fn read_records(
        &self,
        sequence_numbers: &[i64],
    ) -> Result<Vec<Option<StoredMessage>>, BrokerError> {
        self.store.read(self.id, sequence_numbers)
    }

    /// Undoes a busy mark after a failed write (the message is as it was before).
    fn unbusy(&self, sequence_numbers: &[i64]) {
        let mut state = self.state();
        let mut any = false;
        for &sequence_number in sequence_numbers {
            let Some(state_before) = state.messages.get(&sequence_number).map(|m| m.state) else {
                continue;
            };
            any |= state.release(sequence_number, state_before);
        }
        drop(state);
        if any {
            self.notify();
        }
    }

    /// Drops metas whose record vanished (only after a store inconsistency; logged).
    fn forget(&self, sequence_numbers: &[i64]) {
        let mut state = self.state();
        for &sequence_number in sequence_numbers {
            tracing::error!(entity = %self.path, sequence_number, "message record missing from the store; dropping it from the index");
            state.remove(sequence_number);
        }
    }

    async fn receive(
        self: &Arc<Self>,
        max: usize,
        mode: ReceiveMode,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.check_receivable("receive")?;
        let now = Timestamp::now();
        let locked_until = now.saturating_add(self.properties.lock_duration);
        let (picked, expired) = {
            let mut state = self.state();
            pick_available(&mut state, None, max, mode, locked_until, now)
        };
        if !expired.is_empty() {
            self.expire(expired);
        }
        self.deliver(picked, mode).await
    }

    /// Reads the picked messages and, for receive-and-delete, deletes them durably.
    async fn deliver(
        self: &Arc<Self>,
        picked: Vec<(i64, Option<MessageLock>)>,
        mode: ReceiveMode,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let sequence_numbers: Vec<i64> = picked.iter().map(|(s, _)| *s).collect();
        let records = match self.read_records(&sequence_numbers) {
            Ok(records) => records,
            Err(error) => {
                self.release_picked(&picked, mode);
                return Err(error);
            }
        };
        let now = Timestamp::now();
        let mut deliveries = Vec::with_capacity(picked.len());
        let mut missing = Vec::new();
        for ((sequence_number, lock), record) in picked.into_iter().zip(records) {
            match record {
                Some(mut message) => {
                    if message.state == MessageState::Scheduled {
                        message.state = MessageState::Active;
                    }
                    deliveries.push(Delivery { message, lock });
                }
                None => missing.push(sequence_number),
            }
        }
        if !missing.is_empty() {
            self.forget(&missing);
        }
        if mode == ReceiveMode::ReceiveAndDelete && !deliveries.is_empty() {
            let deleted: Vec<i64> = deliveries
                .iter()
                .map(|d| d.message.sequence_number)
                .collect();
            let ops = deleted
                .iter()
                .map(|&sequence_number| WriteOp::Delete {
                    entity: self.id,
                    sequence_number,
                })
                .collect();
            let entity = Arc::clone(self);
            let to_remove = deleted.clone();
            let result = self
                .write(ops, move |result| {
                    if result.is_ok() {
                        let mut state = entity.state();
                        for sequence_number in to_remove {
                            state.remove(sequence_number);
                        }
                    }
                })
                .await;
            if let Err(error) = result {
                self.unbusy(&deleted);
                return Err(error);
            }
        }
        let _ = now;
        Ok(deliveries)
    }

    fn release_picked(&self, picked: &[(i64, Option<MessageLock>)], mode: ReceiveMode) {
        let sequence_numbers: Vec<i64> = picked.iter().map(|(s, _)| *s).collect();
        if mode == ReceiveMode::PeekLock {
            let mut state = self.state();
            for (sequence_number, lock) in picked {
                if let Some(lock) = lock {
                    state.locks.remove(&lock.token);
                    state
                        .lock_deadlines
                        .remove(&(lock.locked_until, *sequence_number));
                    if let Some(meta) = state.messages.get_mut(sequence_number) {
                        meta.lock = None;
                        meta.busy = true;
                    }
                }
            }
        }
        self.unbusy(&sequence_numbers);
    }

    /// Settles a locked message: takes the lock, then applies `settle` to its record.
    async fn settle_locked(
        self: &Arc<Self>,
        token: Uuid,
        settlement: Settlement,
    ) -> Result<(), BrokerError> {
        let now = Timestamp::now();
        let sequence_number = {
            let mut state = self.state();
            state.take_lock(token, now)
        };
        let Some(sequence_number) = sequence_number else {
            return Err(BrokerError::LockLost {
                entity: self.name(),
            });
        };
        let result = self.apply(sequence_number, settlement).await;
        if result.is_err() {
            self.unbusy(&[sequence_number]);
        }
        result
    }

    /// Applies a settlement to a busy message (its record is read, changed and written).
    async fn apply(
        self: &Arc<Self>,
        sequence_number: i64,
        settlement: Settlement,
    ) -> Result<(), BrokerError> {
        let (done, wait) = oneshot::channel();
        self.apply_with(
            sequence_number,
            settlement,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        wait.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Callback form of [`Self::apply`], usable from the sweeper thread. On failure the
    /// message stays busy unless the caller undoes it; `finish` always runs.
    fn apply_with(
        self: &Arc<Self>,
        sequence_number: i64,
        settlement: Settlement,
        finish: Box<dyn FnOnce(CommitResult) + Send>,
    ) {
        let entity = Arc::clone(self);
        if let Settlement::Complete | Settlement::Drop = settlement {
            let ops = vec![WriteOp::Delete {
                entity: self.id,
                sequence_number,
            }];
            self.store.submit(
                ops,
                Box::new(move |result| {
                    if result.is_ok() {
                        entity.state().remove(sequence_number);
                    }
                    finish(result);
                }),
            );
            return;
        }
        let record = match self.read_records(&[sequence_number]) {
            Ok(mut records) => records.pop().flatten(),
            Err(error) => return finish(Err(error)),
        };
        let Some(mut record) = record else {
            self.forget(&[sequence_number]);
            return finish(Err(BrokerError::MessageNotFound {
                entity: self.name(),
                sequence_number,
            }));
        };
        if record.state == MessageState::Scheduled {
            record.state = MessageState::Active;
        }
        let dead_letter = match settlement {
            Settlement::Complete | Settlement::Drop => None,
            Settlement::Abandon { modified } | Settlement::LockExpired { modified } => {
                record.modified_properties.extend(modified);
                record.delivery_count = record.delivery_count.saturating_add(1);
                let exceeded = record.delivery_count >= self.properties.max_delivery_count;
                match &self.dead_letter_queue {
                    Some(_) if exceeded => Some(DeadLetter {
                        reason: Some(REASON_MAX_DELIVERY_COUNT_EXCEEDED.to_owned()),
                        description: Some(format!(
                            "Message could not be consumed after {} delivery attempts.",
                            self.properties.max_delivery_count
                        )),
                    }),
                    _ => None,
                }
            }
            Settlement::Defer { modified } => {
                record.modified_properties.extend(modified);
                // Service Bus counts the delivery that ended in a deferral: a deferred
                // message fetched by sequence number reports delivery count 1, not 0
                // (the SDKs' own live tests assert it). Deferral never dead-letters.
                record.delivery_count = record.delivery_count.saturating_add(1);
                record.state = MessageState::Deferred;
                None
            }
            Settlement::DeadLetter {
                reason,
                description,
                modified,
            } => {
                record.modified_properties.extend(modified);
                Some(DeadLetter {
                    reason,
                    description,
                })
            }
            Settlement::Expire => Some(DeadLetter {
                reason: Some(REASON_TTL_EXPIRED.to_owned()),
                description: Some("The message expired and was dead lettered.".to_owned()),
            }),
        };
        match (dead_letter, &self.dead_letter_queue) {
            (Some(dead_letter), Some(dlq)) => {
                self.move_to_dead_letter_queue(record, dead_letter, Arc::clone(dlq), finish);
            }
            _ => {
                let state_after = record.state;
                let ops = match encode(&record) {
                    // The payload never changes after the send: only the record is rewritten.
                    Ok(bytes) => vec![WriteOp::Put {
                        entity: self.id,
                        sequence_number,
                        record: bytes,
                        payload: None,
                    }],
                    Err(error) => return finish(Err(error)),
                };
                self.store.submit(
                    ops,
                    Box::new(move |result| {
                        if result.is_ok() && entity.state().release(sequence_number, state_after) {
                            entity.notify();
                        }
                        finish(result);
                    }),
                );
            }
        }
    }

    fn move_to_dead_letter_queue(
        self: &Arc<Self>,
        mut record: StoredMessage,
        dead_letter: DeadLetter,
        dlq: Arc<EntityInner>,
        finish: Box<dyn FnOnce(CommitResult) + Send>,
    ) {
        let sequence_number = record.sequence_number;
        if let Some(reason) = &dead_letter.reason {
            record.modified_properties.insert(
                DEAD_LETTER_REASON.to_owned(),
                PropertyValue::String(reason.clone()),
            );
        }
        if let Some(description) = &dead_letter.description {
            record.modified_properties.insert(
                DEAD_LETTER_ERROR_DESCRIPTION.to_owned(),
                PropertyValue::String(description.clone()),
            );
        }
        record.dead_letter = Some(DeadLetterInfo {
            reason: dead_letter.reason,
            description: dead_letter.description,
            source: self.name(),
        });
        // Dead-letter queues do not expire messages, and a deferred message becomes active.
        record.expires_at = None;
        record.state = MessageState::Active;
        let bytes = match encode(&record) {
            Ok(bytes) => bytes,
            Err(error) => return finish(Err(error)),
        };
        let ops = vec![
            WriteOp::Put {
                entity: dlq.id,
                sequence_number,
                record: bytes,
                payload: Some(record.content.payload.clone()),
            },
            WriteOp::Delete {
                entity: self.id,
                sequence_number,
            },
        ];
        let source = Arc::clone(self);
        let meta = meta_of(&record, dlq.properties.requires_session);
        self.store.submit(
            ops,
            Box::new(move |result| {
                if result.is_ok() {
                    source.state().remove(sequence_number);
                    dlq.state().insert(sequence_number, meta);
                    dlq.notify();
                }
                finish(result);
            }),
        );
    }

    /// Expires busy messages (TTL passed): dead-letter or drop them, asynchronously.
    pub(crate) fn expire(self: &Arc<Self>, sequence_numbers: Vec<i64>) {
        let settlement = if self.properties.dead_lettering_on_message_expiration {
            Settlement::Expire
        } else {
            Settlement::Drop
        };
        for sequence_number in sequence_numbers {
            let entity = Arc::clone(self);
            self.apply_with(
                sequence_number,
                settlement.clone(),
                Box::new(move |result| {
                    if let Err(error) = result {
                        tracing::warn!(entity = %entity.path, sequence_number, %error, "expiring message failed; will retry");
                        entity.unbusy(&[sequence_number]);
                    }
                }),
            );
        }
    }

    /// One sweep: lapse expired locks, activate due scheduled messages, expire messages whose
    /// TTL passed. Called periodically by the broker's sweeper thread.
    pub(crate) fn sweep(self: &Arc<Self>, now: Timestamp) {
        let mut lapsed = Vec::new();
        let mut expired = Vec::new();
        let mut activated = false;
        {
            let mut state = self.state();
            while let Some(&(deadline, sequence_number)) = state.lock_deadlines.first() {
                if deadline > now {
                    break;
                }
                state.lock_deadlines.pop_first();
                if let Some(meta) = state.messages.get_mut(&sequence_number) {
                    if let Some(lock) = meta.lock.take() {
                        meta.busy = true;
                        state.locks.remove(&lock.token);
                        lapsed.push(sequence_number);
                    }
                }
            }
            state.lapse_session_locks(now);
            while let Some(&(at, sequence_number)) = state.schedule.first() {
                if at > now {
                    break;
                }
                state.schedule.pop_first();
                if let Some(meta) = state.messages.get_mut(&sequence_number) {
                    if meta.state == MessageState::Scheduled && !meta.busy {
                        meta.state = MessageState::Active;
                        state.make_available(sequence_number);
                        activated = true;
                    }
                }
            }
            let due: Vec<i64> = state
                .expiries
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, s)| *s)
                .collect();
            for sequence_number in due {
                if state.make_unavailable(sequence_number) {
                    if let Some(meta) = state.messages.get_mut(&sequence_number) {
                        meta.busy = true;
                        expired.push(sequence_number);
                    }
                }
            }
        }
        if activated {
            self.notify();
        }
        for sequence_number in lapsed {
            let entity = Arc::clone(self);
            self.apply_with(
                sequence_number,
                Settlement::LockExpired {
                    modified: PropertyMap::new(),
                },
                Box::new(move |result| {
                    if let Err(error) = result {
                        tracing::warn!(entity = %entity.path, sequence_number, %error, "releasing an expired lock failed");
                        entity.unbusy(&[sequence_number]);
                    }
                }),
            );
        }
        if !expired.is_empty() {
            self.expire(expired);
        }
    }

    fn counts(&self) -> MessageCounts {
        let state = self.state();
        let mut counts = MessageCounts::default();
        for meta in state.messages.values() {
            match meta.state {
                MessageState::Active => {
                    counts.active += 1;
                    if meta.lock.is_some() {
                        counts.locked += 1;
                    }
                }
                MessageState::Deferred => counts.deferred += 1,
                MessageState::Scheduled => counts.scheduled += 1,
            }
        }
        counts
    }
}

/// What to do with a message whose lock (or busy mark) the caller holds.
#[derive(Clone)]
enum Settlement {
    Complete,
    Abandon {
        modified: PropertyMap,
    },
    LockExpired {
        modified: PropertyMap,
    },
    Defer {
        modified: PropertyMap,
    },
    DeadLetter {
        reason: Option<String>,
        description: Option<String>,
        modified: PropertyMap,
    },
    /// TTL passed and the entity dead-letters on expiration.
    Expire,
    /// TTL passed and the entity drops expired messages.
    Drop,
}

struct DeadLetter {
    reason: Option<String>,
    description: Option<String>,
}

impl Entity {
    /// The entity's address, in the case the configuration used.
    pub fn path(&self) -> &EntityPath {
        &self.inner.path
    }

    /// Queue, topic or subscription (a DLQ has the kind of its parent; see [`Self::path`]).
    pub fn kind(&self) -> EntityKind {
        self.inner.kind
    }

    /// Whether this is a `$DeadLetterQueue` sub-queue.
    pub fn is_dead_letter_queue(&self) -> bool {
        self.inner.is_dead_letter_queue()
    }

    /// Lock duration, max delivery count, TTL, session and duplicate-detection settings.
    /// For a topic: its TTL and duplicate detection; the rest are defaults.
    pub fn properties(&self) -> &EntityProperties {
        &self.inner.properties
    }

    /// Largest accepted payload, in bytes (advertise it as the link's `max-message-size`).
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// Stores messages and returns their sequence numbers; resolves only once they are
    /// durable. A topic fans each message out to every subscription with a matching rule.
    /// A message with a future `scheduled_enqueue_time` stays Scheduled until then.
    ///
    /// Errors: `MessageSizeExceeded` (nothing stored), `InvalidMessage` (no session id on a
    /// session entity), `InvalidOperation` (subscription or DLQ), `Store`.
    pub async fn send(&self, messages: Vec<NewMessage>) -> Result<Vec<i64>, BrokerError> {
        self.inner.validate_send(&messages)?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.send_messages(messages).await
    }

    /// Takes up to `max` available messages in sequence order, without waiting.
    ///
    /// PeekLock: each delivery carries a lock valid for the entity's LockDuration.
    /// ReceiveAndDelete: the messages are durably removed before this returns.
    /// Errors: `InvalidOperation` on a topic, `SessionRequired` on a session entity.
    pub async fn receive(
        &self,
        max: usize,
        mode: ReceiveMode,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.inner.receive(max, mode).await
    }

    /// A watch that fires when messages may have become available; see [`AvailabilityWatch`].
    pub fn watch(&self) -> AvailabilityWatch {
        AvailabilityWatch {
            receiver: self.inner.changes.subscribe(),
        }
    }

    /// Removes a locked message for good. `LockLost` if the lock expired or is unknown.
    pub async fn complete(&self, lock_token: Uuid) -> Result<(), BrokerError> {
        self.inner
            .settle_locked(lock_token, Settlement::Complete)
            .await
    }

    /// Releases a locked message for redelivery with delivery_count + 1 and
    /// `modified_properties` merged; at MaxDeliveryCount it is dead-lettered with reason
    /// `MaxDeliveryCountExceeded`. A deferred message stays deferred.
    pub async fn abandon(
        &self,
        lock_token: Uuid,
        modified_properties: PropertyMap,
    ) -> Result<(), BrokerError> {
        self.inner
            .settle_locked(
                lock_token,
                Settlement::Abandon {
                    modified: modified_properties,
                },
            )
            .await
    }

    /// Gives a locked message back without counting a failed delivery (AMQP `released`:
    /// e.g. pyamqp releases prefetched messages it did not hand to the application). Nothing
    /// is written: the message is available again at once, delivery_count unchanged.
    pub fn release(&self, lock_token: Uuid) -> Result<(), BrokerError> {
        let now = Timestamp::now();
        let mut state = self.inner.state();
        let Some(sequence_number) = state.take_lock(lock_token, now) else {
            return Err(BrokerError::LockLost {
                entity: self.inner.name(),
            });
        };
        let message_state = state
            .messages
            .get(&sequence_number)
            .map_or(MessageState::Active, |m| m.state);
        let available = state.release(sequence_number, message_state);
        drop(state);
        if available {
            self.inner.notify();
        }
        Ok(())
    }

    /// Moves a locked message to the dead-letter queue with the given reason and description
    /// (also added to `modified_properties` as `DeadLetterReason`/`DeadLetterErrorDescription`).
    /// `InvalidOperation` on a dead-letter queue.
    pub async fn dead_letter(
        &self,
        lock_token: Uuid,
        reason: Option<String>,
        description: Option<String>,
        modified_properties: PropertyMap,
    ) -> Result<(), BrokerError> {
        if self.inner.is_dead_letter_queue() {
            return Err(self.inner.invalid(
                "dead-letter",
                "a message in a dead-letter queue cannot be dead-lettered again",
            ));
        }
        self.inner
            .settle_locked(
                lock_token,
                Settlement::DeadLetter {
                    reason,
                    description,
                    modified: modified_properties,
                },
            )
            .await
    }

    /// Sets a locked message aside (state Deferred); only [`Self::receive_deferred`] gets it.
    pub async fn defer(
        &self,
        lock_token: Uuid,
        modified_properties: PropertyMap,
    ) -> Result<(), BrokerError> {
        self.inner
            .settle_locked(
                lock_token,
                Settlement::Defer {
                    modified: modified_properties,
                },
            )
            .await
    }

    /// Extends locks by the entity's LockDuration from now; returns the new expiries in the
    /// order of `lock_tokens`. `LockLost` (and nothing renewed) if any token is unknown or
    /// expired.
    pub fn renew_lock(&self, lock_tokens: &[Uuid]) -> Result<Vec<Timestamp>, BrokerError> {
        let now = Timestamp::now();
        let mut state = self.inner.state();
        let mut found = Vec::with_capacity(lock_tokens.len());
        for token in lock_tokens {
            let sequence_number = state.locks.get(token).copied();
            let lock = sequence_number
                .and_then(|s| state.messages.get(&s))
                .and_then(|m| m.lock)
                .filter(|lock| lock.locked_until >= now);
            match (sequence_number, lock) {
                (Some(sequence_number), Some(lock)) => found.push((sequence_number, lock)),
                _ => {
                    return Err(BrokerError::LockLost {
                        entity: self.inner.name(),
                    })
                }
            }
        }
        let locked_until = now.saturating_add(self.inner.properties.lock_duration);
        for (sequence_number, lock) in &found {
            state
                .lock_deadlines
                .remove(&(lock.locked_until, *sequence_number));
            state
                .lock_deadlines
                .insert((locked_until, *sequence_number));
            if let Some(meta) = state.messages.get_mut(sequence_number) {
                meta.lock = Some(MessageLock {
                    token: lock.token,
                    locked_until,
                });
            }
        }
        Ok(vec![locked_until; found.len()])
    }

    /// Up to `max` messages with sequence number ≥ `from_sequence_number`, in order, in every
    /// state (active, locked, deferred, scheduled), without locking them.
    pub async fn peek(
        &self,
        from_sequence_number: i64,
        max: usize,
    ) -> Result<Vec<StoredMessage>, BrokerError> {
        if self.inner.kind == EntityKind::Topic {
            return Err(self
                .inner
                .invalid("peek", "a topic holds no messages; peek a subscription"));
        }
        let picked: Vec<(i64, MessageState)> = {
            let state = self.inner.state();
            state
                .messages
                .range(from_sequence_number..)
                .take(max)
                .map(|(s, meta)| (*s, meta.state))
                .collect()
        };
        self.inner.read_peeked(picked)
    }

    /// Receives deferred messages by sequence number (PeekLock locks them; they stay Deferred
    /// until settled). `MessageNotFound` if any number is not a deferred, unlocked message;
    /// then nothing is received.
    pub async fn receive_deferred(
        &self,
        sequence_numbers: &[i64],
        mode: ReceiveMode,
    ) -> Result<Vec<Delivery>, BrokerError> {
        if self.inner.kind == EntityKind::Topic {
            return Err(self
                .inner
                .invalid("receive-deferred", "a topic cannot be received from"));
        }
        let now = Timestamp::now();
        let picked = {
            let mut state = self.inner.state();
            for &sequence_number in sequence_numbers {
                let ok = state.messages.get(&sequence_number).is_some_and(|m| {
                    m.state == MessageState::Deferred && m.lock.is_none() && !m.busy
                });
                if !ok {
                    return Err(BrokerError::MessageNotFound {
                        entity: self.inner.name(),
                        sequence_number,
                    });
                }
            }
            let mut picked = Vec::with_capacity(sequence_numbers.len());
            for &sequence_number in sequence_numbers {
                match mode {
                    ReceiveMode::PeekLock => {
                        let lock = state.lock(
                            sequence_number,
                            now.saturating_add(self.inner.properties.lock_duration),
                        );
                        picked.push((sequence_number, lock));
                    }
                    ReceiveMode::ReceiveAndDelete => {
                        if let Some(meta) = state.messages.get_mut(&sequence_number) {
                            meta.busy = true;
                        }
                        picked.push((sequence_number, None));
                    }
                }
            }
            picked
        };
        self.inner.deliver(picked, mode).await
    }

    /// Cancels scheduled messages (those not yet activated) by sequence number. Numbers that
    /// are unknown or already active are ignored. On a topic, cancels the copies in every
    /// subscription.
    pub async fn cancel_scheduled(&self, sequence_numbers: &[i64]) -> Result<(), BrokerError> {
        let targets: Vec<Arc<EntityInner>> = match self.inner.kind {
            EntityKind::Topic => self.inner.subscriptions.iter().map(Arc::clone).collect(),
            _ => vec![Arc::clone(&self.inner)],
        };
        for target in targets {
            let cancelled: Vec<i64> = {
                let mut state = target.state();
                let mut cancelled = Vec::new();
                for sequence_number in sequence_numbers {
                    if let Some(meta) = state.messages.get_mut(sequence_number) {
                        if meta.state == MessageState::Scheduled && !meta.busy {
                            meta.busy = true;
                            cancelled.push(*sequence_number);
                        }
                    }
                }
                cancelled
            };
            for sequence_number in cancelled {
                let result = target.apply(sequence_number, Settlement::Complete).await;
                if let Err(error) = result {
                    target.unbusy(&[sequence_number]);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Deletes up to `max` messages enqueued before `enqueued_before`, in sequence order
    /// (`batch-delete-messages`): active, deferred and scheduled ones, not locked ones. With
    /// `session_id`, only that session's. Returns how many were deleted (durably).
    pub async fn delete_messages(
        &self,
        max: usize,
        enqueued_before: Timestamp,
        session_id: Option<&str>,
    ) -> Result<usize, BrokerError> {
        if self.inner.kind == EntityKind::Topic {
            return Err(self
                .inner
                .invalid("batch-delete-messages", "a topic holds no messages"));
        }
        let chosen: Vec<i64> = {
            let mut state = self.inner.state();
            let chosen: Vec<i64> = state
                .messages
                .iter()
                .filter(|(_, m)| m.lock.is_none() && !m.busy && m.enqueued_time < enqueued_before)
                .filter(|(_, m)| session_id.is_none_or(|id| m.session.as_deref() == Some(id)))
                .take(max)
                .map(|(s, _)| *s)
                .collect();
            for sequence_number in &chosen {
                state.make_unavailable(*sequence_number);
                if let Some(meta) = state.messages.get_mut(sequence_number) {
                    meta.busy = true;
                }
            }
            chosen
        };
        if chosen.is_empty() {
            return Ok(0);
        }
        let ops = chosen
            .iter()
            .map(|&sequence_number| WriteOp::Delete {
                entity: self.inner.id,
                sequence_number,
            })
            .collect();
        let entity = Arc::clone(&self.inner);
        let deleted = chosen.clone();
        let result = self
            .inner
            .write(ops, move |result| {
                if result.is_ok() {
                    let mut state = entity.state();
                    for sequence_number in deleted {
                        state.remove(sequence_number);
                    }
                }
            })
            .await;
        match result {
            Ok(()) => Ok(chosen.len()),
            Err(error) => {
                self.inner.unbusy(&chosen);
                Err(error)
            }
        }
    }

    /// Current message counts (from memory).
    pub fn counts(&self) -> MessageCounts {
        self.inner.counts()
    }
}
