//! Errors surfaced to the application. Protocol errors sent to the peer use the AMQP
//! [`crate::types::definitions::Error`] type instead.

use crate::types::definitions::Error as AmqpErrorBody;

/// Why a connection ended, as returned by [`crate::ConnectionDriver::run`].
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Socket read or write failed.
    #[error("transport i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not complete the protocol header / SASL / open exchange in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer sent a protocol header we do not speak (we answered with ours and closed).
    #[error("unsupported protocol header {0:02x?}")]
    UnsupportedProtocol([u8; 8]),
    /// The peer violated the protocol; we sent `close` with this error.
    #[error("protocol violation: {0:?}")]
    Protocol(AmqpErrorBody),
    /// The peer's `idle-time-out` (as advertised by us) expired.
    #[error("idle timeout expired")]
    IdleTimeout,
    /// The peer closed the connection with an error.
    #[error("peer closed connection with error: {0:?}")]
    ClosedByPeer(AmqpErrorBody),
}

/// Why [`crate::OutgoingLink::try_send`] refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The client has granted no credit; wait for an [`crate::OutgoingLinkEvent::Flow`].
    #[error("no link credit")]
    NoCredit,
    /// The payload is larger than the client's `max-message-size`.
    #[error("message of {size} bytes exceeds the peer's max-message-size {max}")]
    TooLarge {
        /// Encoded payload size.
        size: usize,
        /// The peer's limit.
        max: u64,
    },
    /// The link (or its session or connection) is gone.
    #[error("link detached")]
    Detached,
}
