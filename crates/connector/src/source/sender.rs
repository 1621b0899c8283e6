//! Sending messages to a queue or topic: what `busdrain send`, the integration tests and the
//! benchmarks use to produce traffic. The connector itself never sends.
//!
//! Messages go out in as few AMQP transfers as the link's maximum message size allows
//! (azservicebus batches with message format 0x80013700, one `data` section per message).

use std::collections::BTreeMap;

use azservicebus::{CreateMessageBatchOptions, ServiceBusMessage, ServiceBusSender};
use azservicebus_amqp_types::messaging::ApplicationProperties;
use azservicebus_amqp_types::primitives::OrderedMap;
use bytes::Bytes;

use super::error_classification::classify;
use super::message_mapping::simple_value_of;
use super::panic_guard::contain;
use super::{PropertyValue, SourceError};

/// One message to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingMessage {
    pub body: Bytes,
    pub message_id: Option<String>,
    /// Required by session-enabled entities.
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub subject: Option<String>,
    pub content_type: Option<String>,
    pub application_properties: BTreeMap<String, PropertyValue>,
}

impl OutgoingMessage {
    /// A JSON body with content type `application/json`.
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            content_type: Some("application/json".to_string()),
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A message was refused before sending (too large for the link, an id too long, …).
    #[error("message {index} of the batch cannot be sent: {reason}")]
    InvalidMessage { index: usize, reason: String },
    /// The broker or the connection failed; see the classification.
    #[error(transparent)]
    Broker(#[from] SourceError),
}

/// A sender on one queue or topic. Owned by one task (azservicebus sends take `&mut self`).
pub struct MessageSender {
    sender: ServiceBusSender,
    entity: String,
    /// Set when azservicebus panicked inside a send (see `panic_guard`): every later call fails
    /// with a transient error and the caller opens a new sender.
    poisoned: bool,
}

impl std::fmt::Debug for MessageSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSender")
            .field("entity", &self.entity)
            .finish_non_exhaustive()
    }
}

impl MessageSender {
    pub(crate) fn new(sender: ServiceBusSender, entity: String) -> Self {
        Self {
            sender,
            entity,
            poisoned: false,
        }
    }

    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// Sends every message, packing them into as few batched transfers as the broker's size
    /// limit allows. Returns once the broker acknowledged all of them. On error, the messages
    /// of earlier transfers were sent and the rest were not.
    pub async fn send(&mut self, messages: Vec<OutgoingMessage>) -> Result<(), SendError> {
        let mut batch = self.new_batch()?;
        for (index, outgoing) in messages.into_iter().enumerate() {
            let message = to_service_bus_message(outgoing)
                .map_err(|reason| SendError::InvalidMessage { index, reason })?;
            let message = match batch.try_add_message(message) {
                Ok(()) => continue,
                Err(azservicebus::amqp::error::TryAddMessageError::BatchFull(message)) => message,
                Err(other) => {
                    return Err(SendError::InvalidMessage {
                        index,
                        reason: other.to_string(),
                    })
                }
            };
            // The batch is full: send it and start the next one with this message.
            self.send_batch(batch).await?;
            batch = self.new_batch()?;
            if let Err(refused) = batch.try_add_message(message) {
                return Err(SendError::InvalidMessage {
                    index,
                    reason: format!(
                        "{refused} (larger than the {} bytes the broker accepts in one transfer)",
                        batch.max_size_in_bytes()
                    ),
                });
            }
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    fn new_batch(&self) -> Result<azservicebus::ServiceBusMessageBatch, SendError> {
        self.sender
            .create_message_batch(CreateMessageBatchOptions::default())
            .map_err(|e| {
                SendError::Broker(SourceError::Fatal(format!(
                    "cannot create a message batch for `{}`: {e}",
                    self.entity
                )))
            })
    }

    async fn send_batch(
        &mut self,
        batch: azservicebus::ServiceBusMessageBatch,
    ) -> Result<(), SendError> {
        let Self {
            sender,
            entity,
            poisoned,
        } = self;
        contain("sending", entity, poisoned, async {
            Box::pin(sender.send_message_batch(batch))
                .await
                .map_err(|e| classify("sending", entity, &e))
        })
        .await
        .map_err(SendError::Broker)
    }

    /// Detaches the link. A sender whose client panicked is dropped without a detach (its state
    /// is not trusted); the broker releases the link when the connection closes.
    pub async fn close(self) -> Result<(), SourceError> {
        let Self {
            sender,
            entity,
            mut poisoned,
        } = self;
        contain("closing the sender", &entity, &mut poisoned, async {
            Box::pin(sender.dispose())
                .await
                .map_err(|e| classify("closing the sender", &entity, &e))
        })
        .await
    }
}

fn to_service_bus_message(outgoing: OutgoingMessage) -> Result<ServiceBusMessage, String> {
    let mut message = ServiceBusMessage::new(outgoing.body.to_vec());
    if let Some(id) = outgoing.message_id {
        message
            .set_message_id(id)
            .map_err(|e| format!("message id: {e}"))?;
    }
    if let Some(session_id) = outgoing.session_id {
        message
            .set_session_id(session_id)
            .map_err(|e| format!("session id: {e}"))?;
    }
    message.set_correlation_id(outgoing.correlation_id);
    message.set_subject(outgoing.subject);
    message.set_content_type(outgoing.content_type);
    if !outgoing.application_properties.is_empty() {
        let mut properties = OrderedMap::new();
        for (name, value) in &outgoing.application_properties {
            properties.insert(name.clone(), simple_value_of(value));
        }
        *message.application_properties_mut() = Some(ApplicationProperties(properties));
    }
    Ok(message)
}
