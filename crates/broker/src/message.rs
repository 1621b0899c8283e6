//! Messages as the broker sees them.
//!
//! The broker never parses AMQP. A message is an opaque `payload` (the encoded AMQP bare
//! message exactly as the client sent it) plus the few system fields the broker must act on,
//! which the emulator extracts from the AMQP sections before calling [`crate::Entity::send`].
//! On delivery the emulator re-encodes header and message annotations from the broker-stamped
//! fields of [`StoredMessage`] around the unchanged payload.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

/// Application properties and property modifications, keyed by property name.
pub type PropertyMap = BTreeMap<String, PropertyValue>;

/// Application property name under which a dead-lettered message carries its reason.
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
/// Application property name under which a dead-lettered message carries its description.
pub const DEAD_LETTER_ERROR_DESCRIPTION: &str = "DeadLetterErrorDescription";
/// Dead-letter reason when a message exceeded the entity's MaxDeliveryCount.
pub const REASON_MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";
/// Dead-letter reason when a message's time to live elapsed.
pub const REASON_TTL_EXPIRED: &str = "TTLExpiredException";

/// A value of an application property (or of a property to modify): the AMQP primitive types
/// that Service Bus allows in application properties, without tying the broker to an AMQP crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PropertyValue {
    Null,
    Bool(bool),
    UByte(u8),
    UShort(u16),
    UInt(u32),
    ULong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Char(char),
    Timestamp(Timestamp),
    Uuid(Uuid),
    Binary(Bytes),
    String(String),
    /// An AMQP `symbol`; kept apart from `String` so it is re-encoded with the same type.
    Symbol(String),
    /// Only in [`StoredMessage::modified_properties`]: a rule action's `REMOVE` of the
    /// property (distinct from `SET p = NULL`, which is `Null`). Last variant, so records
    /// stored before it existed still decode.
    Removed,
}

impl PropertyValue {
    /// The value as a string when it is one (`String` or `Symbol`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropertyValue::String(s) | PropertyValue::Symbol(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        PropertyValue::String(value.to_owned())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        PropertyValue::String(value)
    }
}

/// A message handed to the broker by a sender.
///
/// Every field except `payload` is a copy of something inside `payload`, extracted by the
/// emulator so the broker can act on it without decoding AMQP: identifiers for duplicate
/// detection and correlation filters, the session id for sessions, TTL and scheduling for the
/// broker's clocks, and the application properties for rule filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The encoded AMQP bare message (properties, application-properties, body, footer…) as
    /// sent. Its length is what [`crate::BrokerLimits::max_message_size`] limits.
    pub payload: Bytes,
    /// `properties.message-id`, stringified (Service Bus treats it as a string).
    pub message_id: Option<String>,
    /// `properties.group-id`.
    pub session_id: Option<String>,
    /// `message-annotations["x-opt-partition-key"]`.
    pub partition_key: Option<String>,
    /// `header.ttl`; the effective TTL is the smaller of this and the entity's
    /// DefaultMessageTimeToLive.
    pub time_to_live: Option<Duration>,
    /// `message-annotations["x-opt-scheduled-enqueue-time"]`: the message stays invisible
    /// (state Scheduled) until then.
    pub scheduled_enqueue_time: Option<Timestamp>,
    /// `properties.correlation-id`, stringified.
    pub correlation_id: Option<String>,
    /// `properties.subject` (Service Bus "Label").
    pub subject: Option<String>,
    /// `properties.to`.
    pub to: Option<String>,
    /// `properties.reply-to`.
    pub reply_to: Option<String>,
    /// `properties.reply-to-group-id`.
    pub reply_to_session_id: Option<String>,
    /// `properties.content-type`.
    pub content_type: Option<String>,
    /// The application-properties section.
    pub application_properties: PropertyMap,
}

/// Service Bus message state, as reported in `x-opt-message-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageState {
    /// Deliverable (or currently locked by a receiver).
    Active,
    /// Set aside by `defer`; only `receive_deferred` by sequence number gets it.
    Deferred,
    /// Waiting for its scheduled enqueue time.
    Scheduled,
}

impl MessageState {
    /// The integer Service Bus uses in `x-opt-message-state`.
    pub fn as_wire_value(self) -> i32 {
        match self {
            MessageState::Active => 0,
            MessageState::Deferred => 1,
            MessageState::Scheduled => 2,
        }
    }
}

/// Why and from where a message was moved to a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// `DeadLetterReason` (e.g. `MaxDeliveryCountExceeded`, `TTLExpiredException`, or the
    /// receiver's own reason).
    pub reason: Option<String>,
    /// `DeadLetterErrorDescription`.
    pub description: Option<String>,
    /// The entity the message was dead-lettered from (`x-opt-deadletter-source`), as its
    /// display path, e.g. `queue.1` or `topic.1/Subscriptions/subscription.1`.
    pub source: String,
}

/// A message at rest in an entity, with everything the broker stamped on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// `x-opt-sequence-number`: assigned by the queue or topic, unique and increasing per
    /// entity, never reused (also across restarts). Subscriptions keep the topic's number and a
    /// dead-lettered message keeps the number it had in its source entity.
    pub sequence_number: i64,
    /// `x-opt-enqueued-time`: when the send was accepted.
    pub enqueued_time: Timestamp,
    /// When the message expires (enqueued or scheduled time + effective TTL); `None` = never.
    pub expires_at: Option<Timestamp>,
    /// Failed delivery attempts so far (abandons and lock expiries). This is the AMQP
    /// `header.delivery-count`: the SDKs report it + 1 for received messages and as is for
    /// peeked ones.
    pub delivery_count: u32,
    /// Active, Deferred or Scheduled.
    pub state: MessageState,
    /// What the sender sent.
    pub content: NewMessage,
    /// Set on messages in a dead-letter queue.
    pub dead_letter: Option<DeadLetterInfo>,
    /// Properties changed by abandon / defer / dead-letter (`propertiesToModify`), accumulated
    /// in order. The emulator overlays them on the application properties of `payload` when it
    /// delivers or peeks the message. A dead-lettered message also carries `DeadLetterReason`
    /// and `DeadLetterErrorDescription` here.
    pub modified_properties: PropertyMap,
}

/// A lock held by a peek-lock receiver on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLock {
    /// The lock token. On the wire it is the 16-byte delivery tag in .NET `Guid` byte order
    /// (`Uuid::to_bytes_le`), and an AMQP `uuid` in `$management` requests.
    pub token: Uuid,
    /// `x-opt-locked-until`.
    pub locked_until: Timestamp,
}

/// A message handed to a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message; `delivery_count` is the count of failed attempts before this delivery.
    pub message: StoredMessage,
    /// The lock, for peek-lock receives; `None` for receive-and-delete (already removed).
    pub lock: Option<MessageLock>,
}

/// How a receiver takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Lock the message for the entity's LockDuration; the receiver settles it by lock token.
    PeekLock,
    /// Remove the message on delivery (durably, before it is returned).
    ReceiveAndDelete,
}
