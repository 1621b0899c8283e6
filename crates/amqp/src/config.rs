//! Per-connection limits and identity the engine advertises in its `open` and `begin`.

use std::time::Duration;

/// SASL mechanisms offered by default. .NET insists on `MSSBCBS`; rhea and pyamqp pick
/// `ANONYMOUS` or `PLAIN`. Every mechanism is accepted: authorisation happens later, per
/// operation, through `$cbs` put-token in the application.
pub const DEFAULT_SASL_MECHANISMS: [&str; 4] = ["ANONYMOUS", "PLAIN", "MSSBCBS", "EXTERNAL"];

/// What the engine advertises and enforces on one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// `container-id` in our `open`.
    pub container_id: String,
    /// Largest frame we accept, advertised as `max-frame-size` (AMQP minimum is 512).
    /// Outgoing frames are bounded by the smaller of this and the peer's value.
    pub max_frame_size: u32,
    /// Highest channel number we accept (`channel-max`), bounding sessions per connection.
    pub channel_max: u16,
    /// Highest link handle we accept per session (`handle-max`), bounding links per session.
    pub handle_max: u32,
    /// Our `idle-time-out`. When set, the connection is closed if the peer sends nothing
    /// (not even an empty frame) for this long. `None` advertises no timeout.
    pub idle_timeout: Option<Duration>,
    /// Session `incoming-window` (in transfer frames) we grant; replenished at half.
    pub session_incoming_window: u32,
    /// `max-message-size` applied to links the client sends on, unless the
    /// [`crate::AttachReply`] sets another. Larger messages detach the link with
    /// `amqp:link:message-size-exceeded`.
    pub max_message_size: u64,
    /// SASL mechanisms offered; see [`DEFAULT_SASL_MECHANISMS`].
    pub sasl_mechanisms: Vec<String>,
    /// Time allowed from TCP accept until the peer's `open` has been received.
    pub handshake_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            container_id: "busdrain".to_string(),
            max_frame_size: 256 * 1024,
            channel_max: 255,
            handle_max: 255,
            idle_timeout: Some(Duration::from_secs(240)),
            session_incoming_window: 5000,
            max_message_size: 1024 * 1024,
            sasl_mechanisms: DEFAULT_SASL_MECHANISMS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// How credit is granted on a link the client sends on (an [`crate::IncomingLink`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditMode {
    /// The engine keeps `window` deliveries outstanding: credit is topped up as the
    /// application takes deliveries (pre-settled ones) or settles them (unsettled ones), so
    /// at most `window` deliveries are ever buffered or awaiting settlement.
    Auto {
        /// Deliveries allowed in flight, buffered and unsettled together.
        window: u32,
    },
    /// The application grants credit itself with [`crate::IncomingLink::set_credit`].
    Manual,
}

impl Default for CreditMode {
    fn default() -> Self {
        CreditMode::Auto { window: 100 }
    }
}
