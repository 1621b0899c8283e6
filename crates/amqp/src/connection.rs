//! Public entry point: [`accept`] splits one transport into the application's
//! [`Connection`] handle and the [`ConnectionDriver`] that runs the protocol.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::command::{Command, CommandSender};
use crate::config::ConnectionConfig;
use crate::error::ConnectionError;
use crate::link::{IncomingAttach, SessionId};
use crate::types::definitions::{Error, Fields};

/// What the client said about itself.
#[derive(Debug, Clone)]
pub struct OpenInfo {
    /// The client's `container-id`.
    pub container_id: String,
    /// `hostname` from the client's `open` (the namespace host for Service Bus clients).
    pub hostname: Option<String>,
    /// SASL mechanism the client chose, `None` if it skipped SASL.
    pub sasl_mechanism: Option<String>,
    /// `properties` of the client's `open`.
    pub properties: Option<Fields>,
}

/// Connection-level events for the application.
#[derive(Debug)]
// Rare, short-lived values: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ConnectionEvent {
    /// The client's `open` arrived and was answered. Always the first event.
    Opened(OpenInfo),
    /// The client wants a link; decide with [`IncomingAttach::accept`] or
    /// [`IncomingAttach::refuse`]. Frames for the link that arrive before the decision are
    /// held (flow) or refused (transfer without credit).
    Attach(IncomingAttach),
    /// A session ended (by either side); its links have received `Detached`.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// The client's error, if it ended the session with one.
        error: Option<Error>,
    },
    /// The connection is closed; no further events follow.
    Closed {
        /// The error, if it was not a clean close.
        error: Option<Error>,
    },
}

/// The application's handle on one connection.
#[derive(Debug)]
pub struct Connection {
    events: UnboundedReceiver<ConnectionEvent>,
    commands: CommandSender,
}

impl Connection {
    /// Next connection event; `None` once the driver has finished.
    pub async fn next_event(&mut self) -> Option<ConnectionEvent> {
        self.events.recv().await
    }

    /// End a session (all its links detach) with an optional error.
    pub fn end_session(&self, session: SessionId, error: Option<Error>) {
        self.commands.send(Command::EndSession { session, error });
    }

    /// Close the connection with an optional error.
    pub fn close(&self, error: Option<Error>) {
        self.commands.send(Command::Close { error });
    }
}

/// Runs the protocol on one transport: header and SASL negotiation, frames, sessions,
/// links, heartbeats. Spawn [`ConnectionDriver::run`] on its own task.
#[allow(dead_code)] // consumed by the engine, still being written
pub struct ConnectionDriver<IO> {
    pub(crate) io: IO,
    pub(crate) config: ConnectionConfig,
    pub(crate) events: UnboundedSender<ConnectionEvent>,
    pub(crate) commands_tx: CommandSender,
    pub(crate) commands_rx: UnboundedReceiver<Command>,
}

impl<IO> std::fmt::Debug for ConnectionDriver<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<IO> ConnectionDriver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Serve the connection until it closes. Returns `Ok` on a clean close by either side.
    /// Every handle learns about the end through its `Detached` / `Closed` event.
    pub async fn run(self) -> Result<(), ConnectionError> {
        crate::engine::run(self).await
    }
}

/// Prepare to serve one accepted transport (a `TcpStream`, or a TLS stream around one).
pub fn accept<IO>(io: IO, config: ConnectionConfig) -> (Connection, ConnectionDriver<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (events_tx, events_rx) = unbounded_channel();
    let (commands_tx, commands_rx) = unbounded_channel();
    let commands = CommandSender(commands_tx);
    (
        Connection {
            events: events_rx,
            commands: commands.clone(),
        },
        ConnectionDriver {
            io,
            config,
            events: events_tx,
            commands_tx: commands,
            commands_rx,
        },
    )
}
