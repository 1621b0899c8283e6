//! busdrain-broker: the durable Service Bus entity model behind `busdrain emulator`.
//!
//! It owns queues, topics, subscriptions and their dead-letter queues; message locks, delivery
//! counts, deferral, scheduling, TTL and dead-lettering; and the durable store (redb, group
//! commit). It knows nothing of AMQP: a message's payload is opaque bytes, and the emulator
//! (`busdrain-emulator`) translates frames to calls on [`Entity`]. See `README.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), busdrain_broker::BrokerError> {
//! use busdrain_broker::{Broker, BrokerLimits, EntityPath, NamespaceConfig, NewMessage, ReceiveMode};
//! let broker = Broker::open("data".as_ref(), NamespaceConfig::default_namespace(), BrokerLimits::default())?;
//! let queue = broker.entity(&EntityPath::parse("/queue.1")?)?;
//! queue.send(vec![NewMessage { payload: "hello".into(), ..Default::default() }]).await?;
//! for delivery in queue.receive(10, ReceiveMode::PeekLock).await? {
//!     if let Some(lock) = delivery.lock {
//!         queue.complete(lock.token).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

mod broker;
pub mod config;
mod duplicates;
mod duration;
mod entity;
mod error;
mod filter;
mod message;
mod path;
mod store;
mod time;

pub use broker::{Broker, BrokerLimits};
pub use busdrain_filter::Rule;
pub use config::{
    ConfigError, EntityProperties, NamespaceConfig, QueueConfig, SubscriptionConfig, TopicConfig,
    TopicProperties,
};
pub use duration::{format_duration, parse_duration, DurationParseError};
pub use entity::{AvailabilityWatch, Entity, EntityKind, MessageCounts, SessionLock};
pub use error::BrokerError;
pub use filter::matches;
pub use message::{
    DeadLetterInfo, Delivery, MessageLock, MessageState, NewMessage, PropertyMap, PropertyValue,
    ReceiveMode, StoredMessage, DEAD_LETTER_ERROR_DESCRIPTION, DEAD_LETTER_REASON,
    REASON_MAX_DELIVERY_COUNT_EXCEEDED, REASON_TTL_EXPIRED,
};
pub use path::{EntityPath, EntityPathError, DEAD_LETTER_QUEUE_SEGMENT, SUBSCRIPTIONS_SEGMENT};
pub use time::Timestamp;
