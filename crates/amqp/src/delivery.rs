//! Deliveries and dispositions as the application sees them.

use bytes::Bytes;

use crate::types::messaging::DeliveryState;

/// Message format of a plain AMQP message.
pub const MESSAGE_FORMAT_AMQP: u32 = 0;
/// Message format Service Bus clients use for a batch: the payload is a sequence of `data`
/// sections each holding one encoded message. The engine passes it through untouched.
pub const MESSAGE_FORMAT_BATCH: u32 = 0x8001_3700;

/// A message the application sends on an [`crate::OutgoingLink`].
#[derive(Debug, Clone)]
pub struct OutgoingDelivery {
    /// Delivery tag chosen by the application; Service Bus uses it as the lock token
    /// (a uuid in .NET `Guid` byte order). Dispositions from the client come back keyed by it.
    pub tag: [u8; 16],
    /// `message-format`, normally [`MESSAGE_FORMAT_AMQP`].
    pub message_format: u32,
    /// Send pre-settled (receive-and-delete): the client will send no disposition.
    pub settled: bool,
    /// The already encoded message sections. Split across frames as needed.
    pub payload: Bytes,
}

/// A complete (possibly reassembled multi-frame) message received on an
/// [`crate::IncomingLink`].
#[derive(Debug, Clone)]
pub struct IncomingDelivery {
    /// Session-scoped id; pass it to [`crate::IncomingLink::settle`].
    pub delivery_id: u32,
    /// The client's delivery tag (0..=32 bytes).
    pub delivery_tag: Bytes,
    /// `message-format` of the first transfer frame, passed through (e.g.
    /// [`MESSAGE_FORMAT_BATCH`]).
    pub message_format: u32,
    /// The client sent it pre-settled: no disposition will be sent for it.
    pub settled: bool,
    /// The encoded message sections.
    pub payload: Bytes,
}

/// A disposition from the client about one delivery we sent (ranges are expanded).
#[derive(Debug, Clone)]
pub struct DispositionEvent {
    /// Session-scoped id of the delivery; pass it to [`crate::OutgoingLink::settle`].
    pub delivery_id: u32,
    /// The tag the application chose in [`OutgoingDelivery::tag`].
    pub delivery_tag: [u8; 16],
    /// The client considers the delivery settled. When `false` (rcv-settle-mode `second`),
    /// the application answers with [`crate::OutgoingLink::settle`].
    pub settled: bool,
    /// Accepted / Rejected{error} / Released / Modified{..}, or `None` (settled without state).
    pub state: Option<DeliveryState>,
}
