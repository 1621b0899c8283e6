//! The broker's errors.
//!
//! Each variant maps to one Service Bus AMQP error condition; the emulator owns that mapping.
//! The expected one is:
//!
//! | variant | AMQP error condition |
//! |---|---|
//! | `EntityNotFound` | `amqp:not-found` (Service Bus: `com.microsoft:entity-not-found`… SDKs accept `amqp:not-found`) |
//! | `InvalidEntityPath` | `amqp:not-found` |
//! | `InvalidOperation` | `amqp:not-allowed` (`com.microsoft:argument-error` on `$management`) |
//! | `LockLost` | `com.microsoft:message-lock-lost` |
//! | `MessageNotFound` | `com.microsoft:message-not-found` |
//! | `MessageSizeExceeded` | `amqp:link:message-size-exceeded` |
//! | `InvalidMessage` | `com.microsoft:argument-error` |
//! | `SessionRequired` | `amqp:not-allowed` |
//! | `SessionCannotBeLocked` | `com.microsoft:session-cannot-be-locked` |
//! | `SessionLockLost` | `com.microsoft:session-lock-lost` |
//! | `RuleAlreadyExists` | `com.microsoft:entity-already-exists` (status 409) |
//! | `RuleNotFound` | `amqp:not-found` (status 404) |
//! | `Store`, `Corrupt`, `ShuttingDown` | `amqp:internal-error` |

use crate::config::ConfigError;
use crate::path::EntityPathError;

/// Everything a broker operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No queue, topic or subscription with that name is configured.
    #[error("entity `{path}` does not exist")]
    EntityNotFound {
        /// The address as requested.
        path: String,
    },
    /// The address could not be parsed.
    #[error(transparent)]
    InvalidEntityPath(#[from] EntityPathError),
    /// The operation does not apply to this kind of entity (e.g. receive from a topic, send
    /// to a subscription or dead-letter queue, dead-letter from a dead-letter queue).
    #[error("`{operation}` is not allowed on `{entity}`: {reason}")]
    InvalidOperation {
        entity: String,
        operation: &'static str,
        reason: &'static str,
    },
    /// The lock token is unknown, expired, or belongs to a message already settled.
    #[error("the lock on the message in `{entity}` was lost (expired, already settled or unknown token)")]
    LockLost { entity: String },
    /// No message with that sequence number (in the required state) exists in the entity.
    #[error("no message with sequence number {sequence_number} in `{entity}`")]
    MessageNotFound {
        entity: String,
        sequence_number: i64,
    },
    /// The payload is larger than `BrokerLimits::max_message_size`.
    #[error("message of {size} bytes exceeds the limit of {max} bytes for `{entity}`")]
    MessageSizeExceeded {
        entity: String,
        size: usize,
        max: usize,
    },
    /// The message cannot be accepted by this entity (e.g. no session id for a session-enabled
    /// entity).
    #[error("message refused by `{entity}`: {reason}")]
    InvalidMessage { entity: String, reason: String },
    /// The entity requires sessions and the operation was not session-aware.
    #[error("`{entity}` requires sessions: receive through a session receiver")]
    SessionRequired { entity: String },
    /// Another receiver holds the session.
    #[error("session `{session_id}` of `{entity}` is locked by another receiver")]
    SessionCannotBeLocked { entity: String, session_id: String },
    /// The session lock expired, was released, or is held by someone else.
    #[error("the lock on session `{session_id}` of `{entity}` was lost")]
    SessionLockLost { entity: String, session_id: String },
    /// A rule with that name already exists on the subscription.
    #[error("rule `{rule}` already exists on `{entity}`")]
    RuleAlreadyExists { entity: String, rule: String },
    /// No rule with that name exists on the subscription.
    #[error("rule `{rule}` does not exist on `{entity}`")]
    RuleNotFound { entity: String, rule: String },
    /// The durable store failed; the operation may not have been applied.
    #[error("store error while {context}: {message}")]
    Store {
        context: &'static str,
        /// The storage engine's error, as text: one failed commit fails every operation in
        /// its batch, so the error is shared.
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record in the store: {detail}")]
    Corrupt { detail: String },
    /// The broker's writer has stopped (the broker is shutting down or a fatal store error).
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// The namespace configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created or opened.
    #[error("data directory `{path}`: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BrokerError {
    pub(crate) fn store(context: &'static str, source: impl Into<redb::Error>) -> Self {
        BrokerError::Store {
            context,
            message: source.into().to_string(),
        }
    }
}
