//! Sessions of a session-enabled queue or subscription (issue 4 builds the AMQP side on this).
//!
//! Messages with the same `session_id` form a session. One receiver at a time holds a
//! session's lock ([`SessionLock`]); it receives that session's messages in sequence order.
//! Message locks taken through a session expire with the session lock (renewing the session
//! renews them). Each session has an optional durable state blob.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::{pick_available, Entity, EntityKind, EntityState};
use crate::error::BrokerError;
use crate::message::{Delivery, ReceiveMode, StoredMessage};
use crate::store::WriteOp;
use crate::time::Timestamp;

/// A session held by one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLock {
    /// The session id (echo it in the attach's `com.microsoft:session-filter`).
    pub session_id: String,
    /// Identifies the holder; pass it back to receive, renew and release.
    pub token: Uuid,
    /// When the lock lapses unless renewed (`com.microsoft:locked-until-utc`, in .NET ticks
    /// via [`Timestamp::as_dotnet_ticks`]).
    pub locked_until: Timestamp,
}

/// In-memory view of one session.
#[derive(Debug, Default)]
pub(super) struct SessionEntry {
    /// Available messages of the session, in sequence order.
    pub(super) available: std::collections::BTreeSet<i64>,
    /// Stored messages of the session in any condition.
    pub(super) messages: usize,
    pub(super) lock: Option<SessionLock>,
    pub(super) state: Option<Bytes>,
    /// Last change of messages or state (for `get-message-sessions`' last-updated-time).
    pub(super) updated: Timestamp,
}

impl SessionEntry {
    pub(super) fn is_idle(&self) -> bool {
        self.messages == 0 && self.lock.is_none() && self.state.is_none()
    }

    fn is_locked(&self, now: Timestamp) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|lock| lock.locked_until >= now)
    }
}

impl EntityState {
    /// The session's lock if `token` holds it and it has not expired.
    fn held_session(&self, session_id: &str, token: Uuid, now: Timestamp) -> Option<&SessionLock> {
        self.sessions
            .get(session_id)
            .and_then(|entry| entry.lock.as_ref())
            .filter(|lock| lock.token == token && lock.locked_until >= now)
    }

    /// Moves the expiry of every message lock of `session_id` to `locked_until`.
    fn retime_message_locks(&mut self, session_id: &str, locked_until: Timestamp) {
        let locked: Vec<i64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.lock.is_some() && m.session.as_deref() == Some(session_id))
            .map(|(s, _)| *s)
            .collect();
        for sequence_number in locked {
            if let Some(meta) = self.messages.get_mut(&sequence_number) {
                if let Some(lock) = meta.lock.as_mut() {
                    self.lock_deadlines
                        .remove(&(lock.locked_until, sequence_number));
                    lock.locked_until = locked_until;
                    self.lock_deadlines.insert((locked_until, sequence_number));
                }
            }
        }
    }

    /// Clears session locks that have expired (their message locks expire on their own).
    pub(super) fn lapse_session_locks(&mut self, now: Timestamp) {
        let expired: Vec<Arc<str>> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.lock.as_ref().is_some_and(|l| l.locked_until < now))
            .map(|(id, _)| Arc::clone(id))
            .collect();
        for id in expired {
            if let Some(entry) = self.sessions.get_mut(&id) {
                entry.lock = None;
                if entry.is_idle() {
                    self.sessions.remove(&id);
                }
            }
        }
    }
}

impl Entity {
    fn check_sessions(&self, operation: &'static str) -> Result<(), BrokerError> {
        if self.inner.kind == EntityKind::Topic || !self.inner.properties.requires_session {
            return Err(self
                .inner
                .invalid(operation, "the entity does not require sessions"));
        }
        Ok(())
    }

    fn session_lock_lost(&self, session_id: &str) -> BrokerError {
        BrokerError::SessionLockLost {
            entity: self.inner.name(),
            session_id: session_id.to_owned(),
        }
    }

    /// Locks a session for one receiver, for the entity's LockDuration.
    ///
    /// `Some(id)`: that session, even if it has no messages yet; `SessionCannotBeLocked` if
    /// another receiver holds it. `None`: the unlocked session whose oldest available message
    /// is oldest; `Ok(None)` when no session has available messages (wait on
    /// [`Entity::watch`] and retry until the client's timeout, then `com.microsoft:timeout`).
    pub fn accept_session(
        &self,
        session_id: Option<&str>,
    ) -> Result<Option<SessionLock>, BrokerError> {
        self.check_sessions("accept-session")?;
        let now = Timestamp::now();
        let mut state = self.inner.state();
        let id: Arc<str> = match session_id {
            Some(id) => {
                if state
                    .sessions
                    .get(id)
                    .is_some_and(|entry| entry.is_locked(now))
                {
                    return Err(BrokerError::SessionCannotBeLocked {
                        entity: self.inner.name(),
                        session_id: id.to_owned(),
                    });
                }
                Arc::from(id)
            }
            None => {
                let next = state
                    .sessions
                    .iter()
                    .filter(|(_, entry)| !entry.available.is_empty() && !entry.is_locked(now))
                    .min_by_key(|(_, entry)| entry.available.first().copied())
                    .map(|(id, _)| Arc::clone(id));
                match next {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let lock = SessionLock {
            session_id: id.to_string(),
            token: Uuid::new_v4(),
            locked_until: now.saturating_add(self.inner.properties.lock_duration),
        };
        state.sessions.entry(id).or_default().lock = Some(lock.clone());
        Ok(Some(lock))
    }

    /// Takes up to `max` available messages of a held session, in sequence order, without
    /// waiting. PeekLock locks expire with the session lock. `SessionLockLost` if `session`
    /// is no longer held.
    pub async fn receive_from_session(
        &self,
        session: &SessionLock,
        max: usize,
        mode: ReceiveMode,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.check_sessions("receive")?;
        let now = Timestamp::now();
        let (picked, expired) = {
            let mut state = self.inner.state();
            let Some(held) = state.held_session(&session.session_id, session.token, now) else {
                return Err(self.session_lock_lost(&session.session_id));
            };
            let locked_until = held.locked_until;
            pick_available(
                &mut state,
                Some(&session.session_id),
                max,
                mode,
                locked_until,
                now,
            )
        };
        if !expired.is_empty() {
            self.inner.expire(expired);
        }
        self.inner.deliver(picked, mode).await
    }

    /// Extends a held session lock (and its message locks) by LockDuration from now.
    pub fn renew_session_lock(
        &self,
        session_id: &str,
        token: Uuid,
    ) -> Result<Timestamp, BrokerError> {
        self.check_sessions("renew-session-lock")?;
        let now = Timestamp::now();
        let locked_until = now.saturating_add(self.inner.properties.lock_duration);
        let mut state = self.inner.state();
        if state.held_session(session_id, token, now).is_none() {
            return Err(self.session_lock_lost(session_id));
        }
        if let Some(lock) = state
            .sessions
            .get_mut(session_id)
            .and_then(|e| e.lock.as_mut())
        {
            lock.locked_until = locked_until;
        }
        state.retime_message_locks(session_id, locked_until);
        Ok(locked_until)
    }

    /// Gives a session up (the receiver detached). Its unsettled messages lose their locks
    /// at the next sweep and are redelivered with delivery_count + 1. Unknown or foreign
    /// tokens are ignored.
    pub fn release_session(&self, session_id: &str, token: Uuid) {
        let now = Timestamp::now();
        let mut state = self.inner.state();
        let held = state
            .sessions
            .get(session_id)
            .and_then(|e| e.lock.as_ref())
            .is_some_and(|lock| lock.token == token);
        if !held {
            return;
        }
        if let Some(entry) = state.sessions.get_mut(session_id) {
            entry.lock = None;
        }
        state.retime_message_locks(session_id, now);
        if state
            .sessions
            .get(session_id)
            .is_some_and(SessionEntry::is_idle)
        {
            state.sessions.remove(session_id);
        }
    }

    /// The session's state blob (`None` if never set). The session must be locked.
    pub fn session_state(&self, session_id: &str) -> Result<Option<Bytes>, BrokerError> {
        self.check_sessions("get-session-state")?;
        let now = Timestamp::now();
        let state = self.inner.state();
        match state.sessions.get(session_id) {
            Some(entry) if entry.is_locked(now) => Ok(entry.state.clone()),
            _ => Err(self.session_lock_lost(session_id)),
        }
    }

    /// Sets (or with `None` clears) the session's state blob, durably. The session must be
    /// locked.
    pub async fn set_session_state(
        &self,
        session_id: &str,
        blob: Option<Bytes>,
    ) -> Result<(), BrokerError> {
        self.check_sessions("set-session-state")?;
        let now = Timestamp::now();
        if !self
            .inner
            .state()
            .sessions
            .get(session_id)
            .is_some_and(|entry| entry.is_locked(now))
        {
            return Err(self.session_lock_lost(session_id));
        }
        let ops = vec![WriteOp::SetSessionState {
            entity: self.inner.id,
            session_id: session_id.to_owned(),
            state: blob.clone(),
        }];
        let entity = Arc::clone(&self.inner);
        let id: Arc<str> = Arc::from(session_id);
        self.inner
            .write(ops, move |result| {
                if result.is_ok() {
                    let mut state = entity.state();
                    let entry = state.sessions.entry(Arc::clone(&id)).or_default();
                    entry.state = blob;
                    entry.updated = Timestamp::now();
                    if entry.is_idle() {
                        state.sessions.remove(&id);
                    }
                }
            })
            .await
    }

    /// Ids of sessions that have messages or state; with `updated_since`, only those changed
    /// since then (`get-message-sessions`).
    pub fn message_sessions(
        &self,
        updated_since: Option<Timestamp>,
    ) -> Result<Vec<String>, BrokerError> {
        self.check_sessions("get-message-sessions")?;
        let state = self.inner.state();
        Ok(state
            .sessions
            .iter()
            .filter(|(_, e)| e.messages > 0 || e.state.is_some())
            .filter(|(_, e)| updated_since.is_none_or(|since| e.updated >= since))
            .map(|(id, _)| id.to_string())
            .collect())
    }

    /// Like [`Entity::peek`], restricted to one session's messages.
    pub async fn peek_session(
        &self,
        session_id: &str,
        from_sequence_number: i64,
        max: usize,
    ) -> Result<Vec<StoredMessage>, BrokerError> {
        self.check_sessions("peek")?;
        let picked: Vec<(i64, crate::message::MessageState)> = {
            let state = self.inner.state();
            state
                .messages
                .range(from_sequence_number..)
                .filter(|(_, m)| m.session.as_deref() == Some(session_id))
                .take(max)
                .map(|(s, m)| (*s, m.state))
                .collect()
        };
        self.inner.read_peeked(picked)
    }

    /// Loads stored session states (at open).
    pub(crate) fn recover_session_states(&self, states: Vec<(String, Vec<u8>)>) {
        let mut state = self.inner.state();
        for (id, blob) in states {
            let entry = state.sessions.entry(Arc::from(id.as_str())).or_default();
            entry.state = Some(Bytes::from(blob));
        }
    }
}

impl Entity {
    /// The session's current, unexpired lock, whoever holds it. The `$management` session
    /// operations name only the session id, so they act on the current holder's lock.
    pub fn session_holder(&self, session_id: &str) -> Option<SessionLock> {
        let now = Timestamp::now();
        self.inner
            .state()
            .sessions
            .get(session_id)
            .and_then(|entry| entry.lock.clone())
            .filter(|lock| lock.locked_until >= now)
    }

    /// When `session`'s lock lapses if it is still held by the same token (renewals move
    /// it); `None` once it expired or was released.
    pub fn session_locked_until(&self, session: &SessionLock) -> Option<Timestamp> {
        let now = Timestamp::now();
        self.inner
            .state()
            .held_session(&session.session_id, session.token, now)
            .map(|lock| lock.locked_until)
    }
}
