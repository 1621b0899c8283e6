//! The Service Bus side of the connector, behind a small trait so the AMQP client can be
//! replaced (azservicebus today) and so the pipeline never sees client-library types.
//!
//! Contract the pipeline relies on:
//! - A `MessageSource` is owned by one task; every method takes `&mut self`.
//! - A message is settled exactly once, by the source that received it, with the lock token
//!   it came with. Settling after the lock expired returns `SourceError::LockLost`: the
//!   message will be redelivered, and the idempotent write makes that harmless.
//! - `receive` returns an empty vector when nothing arrived within `max_wait`; it never
//!   blocks longer than `max_wait` plus one network round trip.

mod connection_string;
mod credential;
mod error_classification;
mod message_mapping;
mod panic_guard;
mod sender;
mod servicebus;

pub use connection_string::{ConnectionStringError, ServiceBusConnectionString};
pub use credential::Credential;
pub use sender::{MessageSender, OutgoingMessage, SendError};
pub use servicebus::{
    ConnectorSettings, ReceiverSettings, ServiceBusConnector, ServiceBusSource, SourceEntity,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use time::OffsetDateTime;

/// An application-property value as carried by Service Bus.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    String(String),
    Timestamp(OffsetDateTime),
    Uuid(uuid::Uuid),
    Binary(Bytes),
}

/// Opaque handle identifying one received message for settlement and lock renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockToken(pub uuid::Uuid);

/// One message as the pipeline sees it: the body bytes and every broker property a
/// mapping may refer to.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub lock_token: LockToken,
    pub body: Bytes,
    pub message_id: Option<String>,
    pub sequence_number: i64,
    pub enqueued_time: OffsetDateTime,
    pub locked_until: Option<OffsetDateTime>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub subject: Option<String>,
    pub content_type: Option<String>,
    pub partition_key: Option<String>,
    /// 1 on first delivery (Service Bus counts the current delivery).
    pub delivery_count: u32,
    pub application_properties: BTreeMap<String, PropertyValue>,
}

/// Why a message is dead-lettered: the `DeadLetterReason` and `DeadLetterErrorDescription`
/// application properties the DLQ message will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The message's lock expired or was lost; it will be redelivered. The message is still
    /// held by the source until it is settled or [released](MessageSource::release).
    #[error("message lock lost: {0}")]
    LockLost(String),
    /// No session was available within the wait (session-enabled entities only).
    #[error("no session available")]
    NoSessionAvailable,
    /// The entity does not exist or the credentials may not use it; retrying will not help.
    #[error("{0}")]
    Fatal(String),
    /// Network or broker trouble that a reconnect and retry may fix.
    #[error("{0}")]
    Transient(String),
}

/// Receives and settles messages of one entity (a queue, a subscription, or one session of
/// either) in peek-lock mode.
pub trait MessageSource: Send {
    fn receive(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, SourceError>> + Send;

    fn complete(
        &mut self,
        token: LockToken,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Return the message to the entity for redelivery (counts toward MaxDeliveryCount).
    fn abandon(&mut self, token: LockToken)
        -> impl Future<Output = Result<(), SourceError>> + Send;

    fn dead_letter(
        &mut self,
        token: LockToken,
        why: DeadLetter,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Hands back a message the pipeline gave up on (its lock was lost, or is being left to
    /// lapse): it is not settled and will be redelivered. Never fails; by the time this is
    /// called the outcome no longer matters to the caller.
    ///
    /// It must still be called: an AMQP receiver whose credit is refilled automatically (fe2o3's
    /// `CreditMode::Auto`, azservicebus with a prefetch) refills only after it has *disposed of*
    /// half its credit's worth of deliveries. Deliveries dropped without a disposition keep their
    /// credit forever, so a receiver that drops a prefetch's worth of them never gets another
    /// message (the broker has no credit to send with), while it looks healthy.
    fn release(&mut self, token: LockToken) -> impl Future<Output = ()> + Send {
        let _ = token;
        async {}
    }

    /// Extend the lock; returns the new expiry.
    fn renew_lock(
        &mut self,
        token: LockToken,
    ) -> impl Future<Output = Result<OffsetDateTime, SourceError>> + Send;

    /// The session this source is bound to, if the entity is session-enabled.
    fn session_id(&self) -> Option<&str>;

    /// Extend the session lock (session-bound sources only; others return `Ok(None)`).
    /// A session lock, like a message lock, lapses unless renewed; when it does, the broker
    /// hands the session to another receiver and settlements here fail with `LockLost`.
    fn renew_session_lock(
        &mut self,
    ) -> impl Future<Output = Result<Option<OffsetDateTime>, SourceError>> + Send {
        async { Ok(None) }
    }

    /// Close links cleanly (unsettled messages become available again when their locks lapse).
    fn close(self) -> impl Future<Output = Result<(), SourceError>> + Send;
}
