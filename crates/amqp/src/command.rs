//! Messages from application handles to the connection task.

use tokio::sync::mpsc::UnboundedSender;

use crate::delivery::OutgoingDelivery;
use crate::link::{AttachReply, IncomingLinkEvent, OutgoingLinkEvent, SessionId};
use crate::types::definitions::Error;
use crate::types::messaging::DeliveryState;

/// Connection-unique link id. Never reused, so a command from a stale handle can never
/// reach a newer link that got the same AMQP handle number.
pub(crate) type LinkId = u64;

/// Where the connection task sends a link's events.
#[allow(dead_code)]
#[derive(Debug)]
pub(crate) enum LinkEvents {
    Outgoing(UnboundedSender<OutgoingLinkEvent>),
    Incoming(UnboundedSender<IncomingLinkEvent>),
}

// Fields are consumed by the engine, which is still being written.
#[allow(dead_code)]
#[derive(Debug)]
pub(crate) enum Command {
    AcceptAttach {
        link_id: LinkId,
        reply: Box<AttachReply>,
        events: LinkEvents,
    },
    RefuseAttach {
        link_id: LinkId,
        error: Error,
    },
    Transfer {
        link_id: LinkId,
        delivery: Box<OutgoingDelivery>,
    },
    SettleOutgoing {
        link_id: LinkId,
        delivery_id: u32,
        state: DeliveryState,
    },
    Drained {
        link_id: LinkId,
    },
    SettleIncoming {
        link_id: LinkId,
        delivery_id: u32,
        state: DeliveryState,
    },
    SetCredit {
        link_id: LinkId,
        credit: u32,
    },
    Consumed {
        link_id: LinkId,
        count: u32,
    },
    Detach {
        link_id: LinkId,
        error: Option<Error>,
    },
    EndSession {
        session: SessionId,
        error: Option<Error>,
    },
    Close {
        error: Option<Error>,
    },
}

/// Cloneable sender of commands; sending to a finished connection is a no-op (the handle
/// learns about it from its `Detached` event or from `SendError::Detached`).
#[derive(Debug, Clone)]
pub(crate) struct CommandSender(pub(crate) UnboundedSender<Command>);

impl CommandSender {
    pub(crate) fn send(&self, command: Command) {
        let _ = self.0.send(command);
    }
}
