//! busdrain-amqp: an AMQP 1.0 server engine (connections, sessions, links) that knows
//! nothing of Service Bus. See README.md in this crate for the model and an example.

mod command;
mod config;
mod connection;
mod delivery;
mod encode;
mod engine;
mod error;
pub mod frame;
mod handshake;
mod lenient;
mod link;
mod session;
mod validate;

pub use config::{ConnectionConfig, CreditMode, DEFAULT_SASL_MECHANISMS};
pub use connection::{accept, Connection, ConnectionDriver, ConnectionEvent, OpenInfo};
pub use delivery::{
    DispositionEvent, IncomingDelivery, OutgoingDelivery, MESSAGE_FORMAT_AMQP, MESSAGE_FORMAT_BATCH,
};
pub use error::{ConnectionError, SendError};
pub use frame::{decode_frame, from_slice_checked, Frame, FrameBody, FrameError, SaslBody};
pub use link::{
    AttachReply, IncomingAttach, IncomingLink, IncomingLinkEvent, Link, LinkDirection, LinkInfo,
    OutgoingLink, OutgoingLinkEvent, SessionId,
};

/// The AMQP type crate this engine speaks (`fe2o3-amqp-types` 0.18); use it for
/// `Source`, `Target`, `Error`, `DeliveryState`, ... so versions always match.
pub use fe2o3_amqp_types as types;
/// The AMQP codec (`serde_amqp` 0.18) used for performatives and messages.
pub use serde_amqp;
