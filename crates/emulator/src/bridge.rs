//! Translations between the broker's model and the wire: decoded messages to
//! [`NewMessage`], stored messages to [`DeliveryStamp`], broker errors to AMQP conditions.

use std::time::Duration;

use busdrain_broker::{BrokerError, StoredMessage, Timestamp};
use busdrain_broker::{MessageLock, NewMessage};
use fe2o3_amqp_types::definitions::{Error, ErrorCondition, Fields};
use fe2o3_amqp_types::primitives::Symbol;

use crate::message::{DecodedMessage, DeliveryStamp, MessageState, SystemFields};
use crate::property::{property_map_from_pairs, property_pairs, removed_properties};

/// The broker's view of a message a producer sent.
pub fn new_message(decoded: DecodedMessage) -> NewMessage {
    let application_properties = property_map_from_pairs(&decoded.application_properties);
    NewMessage {
        payload: decoded.payload,
        message_id: decoded.message_id,
        session_id: decoded.session_id,
        partition_key: decoded.partition_key,
        time_to_live: decoded
            .time_to_live_ms
            .map(|ms| Duration::from_millis(u64::from(ms))),
        scheduled_enqueue_time: decoded
            .scheduled_enqueue_time_ms
            .map(Timestamp::from_unix_millis),
        correlation_id: decoded.correlation_id,
        subject: decoded.subject,
        to: decoded.to,
        reply_to: decoded.reply_to,
        reply_to_session_id: decoded.reply_to_session_id,
        content_type: decoded.content_type,
        application_properties,
    }
}

/// What to stamp on a stored message when it is delivered (`lock` for peek-lock) or peeked.
pub fn stamp(message: &StoredMessage, lock: Option<&MessageLock>) -> DeliveryStamp {
    let time_to_live_ms = message.expires_at.map(|expires| {
        let millis = expires
            .as_unix_millis()
            .saturating_sub(message.enqueued_time.as_unix_millis())
            .max(0);
        u32::try_from(millis).unwrap_or(u32::MAX)
    });
    DeliveryStamp {
        sequence_number: message.sequence_number,
        enqueued_time_ms: message.enqueued_time.as_unix_millis(),
        locked_until_ms: lock.map(|l| l.locked_until.as_unix_millis()),
        lock_token: lock.map(|l| l.token),
        delivery_count: message.delivery_count,
        time_to_live_ms,
        state: Some(match message.state {
            busdrain_broker::MessageState::Active => MessageState::Active,
            busdrain_broker::MessageState::Deferred => MessageState::Deferred,
            busdrain_broker::MessageState::Scheduled => MessageState::Scheduled,
        }),
        enqueue_sequence_number: Some(message.sequence_number),
        dead_letter_source: message.dead_letter.as_ref().map(|d| d.source.clone()),
        modified_properties: property_pairs(&message.modified_properties),
        removed_properties: removed_properties(&message.modified_properties),
        system: Some(system_fields(&message.content)),
    }
}

/// The system fields the broker holds (a subscription's rule action may have changed them).
fn system_fields(content: &NewMessage) -> SystemFields {
    SystemFields {
        message_id: content.message_id.clone(),
        correlation_id: content.correlation_id.clone(),
        to: content.to.clone(),
        reply_to: content.reply_to.clone(),
        subject: content.subject.clone(),
        session_id: content.session_id.clone(),
        reply_to_session_id: content.reply_to_session_id.clone(),
        content_type: content.content_type.clone(),
        partition_key: content.partition_key.clone(),
    }
}

/// An AMQP error with any condition symbol (Service Bus uses `com.microsoft:*` ones).
///
/// `info` is always present (empty): the codec drops trailing null fields, and pyamqp
/// indexes all three fields of an error list (an IndexError otherwise, and a hung send).
pub fn amqp_error(condition: &str, description: impl Into<String>) -> Error {
    Error::new(
        ErrorCondition::Custom(Symbol::from(condition)),
        Some(description.into()),
        Some(Fields::new()),
    )
}

pub const NOT_FOUND: &str = "amqp:not-found";
pub const NOT_ALLOWED: &str = "amqp:not-allowed";
pub const INTERNAL_ERROR: &str = "amqp:internal-error";
pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
pub const DECODE_ERROR: &str = "amqp:decode-error";
pub const MESSAGE_LOCK_LOST: &str = "com.microsoft:message-lock-lost";
pub const MESSAGE_NOT_FOUND: &str = "com.microsoft:message-not-found";
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";
pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
pub const DEAD_LETTER: &str = "com.microsoft:dead-letter";
pub const SESSION_CANNOT_BE_LOCKED: &str = "com.microsoft:session-cannot-be-locked";
pub const SESSION_LOCK_LOST: &str = "com.microsoft:session-lock-lost";
pub const TIMEOUT: &str = "com.microsoft:timeout";
pub const ENTITY_ALREADY_EXISTS: &str = "com.microsoft:entity-already-exists";

/// The AMQP condition and `$management` status code of a broker error.
pub fn broker_condition(error: &BrokerError) -> (&'static str, i32) {
    match error {
        BrokerError::EntityNotFound { .. } | BrokerError::InvalidEntityPath(_) => (NOT_FOUND, 404),
        BrokerError::LockLost { .. } => (MESSAGE_LOCK_LOST, 410),
        BrokerError::MessageNotFound { .. } => (MESSAGE_NOT_FOUND, 404),
        BrokerError::MessageSizeExceeded { .. } => (MESSAGE_SIZE_EXCEEDED, 413),
        BrokerError::InvalidOperation { .. } | BrokerError::SessionRequired { .. } => {
            (NOT_ALLOWED, 400)
        }
        BrokerError::InvalidMessage { .. } => (ARGUMENT_ERROR, 400),
        BrokerError::SessionCannotBeLocked { .. } => (SESSION_CANNOT_BE_LOCKED, 410),
        BrokerError::SessionLockLost { .. } => (SESSION_LOCK_LOST, 410),
        BrokerError::RuleAlreadyExists { .. } => (ENTITY_ALREADY_EXISTS, 409),
        BrokerError::RuleNotFound { .. } => (NOT_FOUND, 404),
        _ => (INTERNAL_ERROR, 500),
    }
}

/// A broker error as an AMQP error for a link or a disposition.
pub fn broker_error(error: &BrokerError) -> Error {
    amqp_error(broker_condition(error).0, error.to_string())
}
