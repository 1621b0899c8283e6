//! Application-side link handles. Each handle is meant to be owned by one task; it talks
//! to the connection task through an unbounded command channel (commands come from trusted
//! application code, and deliveries are bounded by link credit) and receives events on its
//! own channel.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::command::{Command, CommandSender, LinkId};
use crate::config::CreditMode;
use crate::delivery::{DispositionEvent, IncomingDelivery, OutgoingDelivery};
use crate::error::SendError;
use crate::types::definitions::{Error, Fields, ReceiverSettleMode, Role, SenderSettleMode};
use crate::types::messaging::{DeliveryState, Source, TargetArchetype};
use crate::types::performatives::Attach;
use crate::types::primitives::Symbol;

/// The connection-local number of a session: the channel the engine uses for it.
/// Links of the same session share it, which is how request/response link pairs
/// (`$cbs`, `$management`) find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u16);

/// Which way messages flow on a link, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDirection {
    /// The client attached as receiver: we send ([`OutgoingLink`]). Its address is the
    /// attach's source address.
    Outgoing,
    /// The client attached as sender: we receive ([`IncomingLink`]). Its address is the
    /// attach's target address.
    Incoming,
}

/// Identity of an attached link, shared by its handle.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    /// Session the link belongs to.
    pub session: SessionId,
    /// Link name chosen by the client.
    pub name: String,
    /// Direction from the server's point of view.
    pub direction: LinkDirection,
    /// Source address for outgoing links, target address for incoming links.
    pub address: Option<String>,
    /// The client's (requested) sender settle mode.
    pub snd_settle_mode: SenderSettleMode,
    /// The client's (requested) receiver settle mode.
    pub rcv_settle_mode: ReceiverSettleMode,
}

/// How the engine answers an attach the application accepts. Start from
/// [`AttachReply::echo`] and change what you need (for example replace a filter value in
/// `source`, or add `com.microsoft:locked-until-utc` to `properties`).
#[derive(Debug, Clone)]
pub struct AttachReply {
    /// Source in our attach (for outgoing links this is the node we send from).
    pub source: Option<Source>,
    /// Target in our attach.
    pub target: Option<TargetArchetype>,
    /// Sender settle mode in use.
    pub snd_settle_mode: SenderSettleMode,
    /// Receiver settle mode in use.
    pub rcv_settle_mode: ReceiverSettleMode,
    /// `max-message-size` we advertise. For incoming links it is also enforced
    /// (`None` = [`crate::ConnectionConfig::max_message_size`]).
    pub max_message_size: Option<u64>,
    /// Attach `properties`.
    pub properties: Option<Fields>,
    /// `offered-capabilities`.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// `desired-capabilities`.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Credit policy for incoming links (ignored for outgoing links).
    pub credit: CreditMode,
}

impl AttachReply {
    /// Echo the client's source, target and settle modes, as a plain AMQP node would.
    /// On links the client sends on, the receiver settle mode is `first`: the engine settles
    /// each delivery with one disposition ([`IncomingLink::settle`]).
    pub fn echo(attach: &Attach) -> Self {
        let rcv_settle_mode = match attach.role {
            Role::Sender => ReceiverSettleMode::First,
            Role::Receiver => attach.rcv_settle_mode.clone(),
        };
        Self {
            source: attach.source.as_deref().cloned(),
            target: attach.target.as_deref().cloned(),
            snd_settle_mode: attach.snd_settle_mode.clone(),
            rcv_settle_mode,
            max_message_size: None,
            properties: None,
            offered_capabilities: None,
            desired_capabilities: None,
            credit: CreditMode::default(),
        }
    }
}

/// An attach from the client waiting for the application's decision. Dropping it
/// without deciding refuses the link with `amqp:internal-error`.
#[derive(Debug)]
pub struct IncomingAttach {
    pub(crate) attach: Attach,
    pub(crate) info: LinkInfo,
    pub(crate) link_id: LinkId,
    pub(crate) commands: CommandSender,
    pub(crate) outgoing_shared: Arc<OutgoingShared>,
    pub(crate) decided: bool,
}

impl IncomingAttach {
    /// The client's attach, exactly as received (except that a missing
    /// `initial-delivery-count` on a sender attach reads as 0).
    pub fn attach(&self) -> &Attach {
        &self.attach
    }

    /// Session, name, direction and address of the link.
    pub fn info(&self) -> &LinkInfo {
        &self.info
    }

    /// Direction from the server's point of view.
    pub fn direction(&self) -> LinkDirection {
        self.info.direction
    }

    /// Source address (outgoing links) or target address (incoming links).
    pub fn address(&self) -> Option<&str> {
        self.info.address.as_deref()
    }

    /// Accept the link and answer with `reply`. Returns the handle matching the direction.
    pub fn accept(mut self, reply: AttachReply) -> Link {
        self.decided = true;
        let info = Arc::new(self.info.clone());
        match self.info.direction {
            LinkDirection::Outgoing => {
                let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
                self.commands.send(Command::AcceptAttach {
                    link_id: self.link_id,
                    reply: Box::new(reply),
                    events: crate::command::LinkEvents::Outgoing(events_tx),
                });
                Link::Outgoing(OutgoingLink {
                    info,
                    link_id: self.link_id,
                    commands: self.commands.clone(),
                    shared: self.outgoing_shared.clone(),
                    events: events_rx,
                    detached: false,
                })
            }
            LinkDirection::Incoming => {
                let credit = reply.credit;
                let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
                self.commands.send(Command::AcceptAttach {
                    link_id: self.link_id,
                    reply: Box::new(reply),
                    events: crate::command::LinkEvents::Incoming(in_tx),
                });
                Link::Incoming(IncomingLink {
                    info,
                    link_id: self.link_id,
                    commands: self.commands.clone(),
                    events: in_rx,
                    credit,
                    unreported_consumed: 0,
                    detached: false,
                })
            }
        }
    }

    /// Accept with [`AttachReply::echo`] of the client's attach.
    pub fn accept_echo(self) -> Link {
        let reply = AttachReply::echo(&self.attach);
        self.accept(reply)
    }

    /// Refuse the link: the engine answers with an attach carrying no source/target, then
    /// a `detach` (closed) with `error`.
    pub fn refuse(mut self, error: Error) {
        self.decided = true;
        self.commands.send(Command::RefuseAttach {
            link_id: self.link_id,
            error,
        });
    }
}

impl Drop for IncomingAttach {
    fn drop(&mut self) {
        if !self.decided {
            self.commands.send(Command::RefuseAttach {
                link_id: self.link_id,
                error: Error::new(
                    crate::types::definitions::AmqpError::InternalError,
                    Some("attach was not handled".to_string()),
                    None,
                ),
            });
        }
    }
}

/// An accepted link.
#[derive(Debug)]
pub enum Link {
    /// The client receives from it.
    Outgoing(OutgoingLink),
    /// The client sends on it.
    Incoming(IncomingLink),
}

/// Credit state of an outgoing link, shared between the connection task (which applies the
/// client's `flow`) and the [`OutgoingLink`] handle (which spends credit when sending), so
/// that credit is checked without a round trip.
#[derive(Debug, Default)]
pub(crate) struct OutgoingShared {
    state: Mutex<OutgoingFlowState>,
}

#[derive(Debug, Default)]
pub(crate) struct OutgoingFlowState {
    /// Our delivery-count (deliveries sent, plus credit consumed by drain).
    pub delivery_count: u32,
    /// Credit left.
    pub link_credit: u32,
    /// The client asked to drain.
    pub drain: bool,
    /// The link, session or connection is gone.
    pub detached: bool,
    /// A `Flow` event is queued and not yet taken by the handle (coalesces flow events).
    pub flow_event_pending: bool,
    /// The client's `max-message-size` (0 = unlimited).
    pub peer_max_message_size: u64,
}

impl OutgoingShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, OutgoingFlowState> {
        // A poisoned lock only means another thread panicked mid-update of plain integers;
        // the values are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What happened on an [`OutgoingLink`].
#[derive(Debug, Clone)]
pub enum OutgoingLinkEvent {
    /// The client changed its credit (current values; several flows may be coalesced).
    /// When `drain` is set, send what you have, then call [`OutgoingLink::drained`].
    Flow {
        /// Deliveries that may be sent now.
        credit: u32,
        /// The client asked to drain.
        drain: bool,
    },
    /// The client settled or changed the state of a delivery.
    Disposition(DispositionEvent),
    /// The link is gone (client detach, session end, connection close). No further
    /// events follow.
    Detached {
        /// The error that ended the link: the client's, or the session's/connection's.
        error: Option<Error>,
    },
}

/// A link on which the server sends messages (the client is the receiver).
#[derive(Debug)]
pub struct OutgoingLink {
    info: Arc<LinkInfo>,
    link_id: LinkId,
    commands: CommandSender,
    shared: Arc<OutgoingShared>,
    events: UnboundedReceiver<OutgoingLinkEvent>,
    detached: bool,
}

impl OutgoingLink {
    /// Session, name and address.
    pub fn info(&self) -> &LinkInfo {
        &self.info
    }

    /// Credit currently available.
    pub fn credit(&self) -> u32 {
        self.shared.lock().link_credit
    }

    /// The client has asked to drain and the drain has not been completed yet.
    pub fn drain_requested(&self) -> bool {
        self.shared.lock().drain
    }

    /// Queue one delivery. Never exceeds credit: returns [`SendError::NoCredit`] instead.
    pub fn try_send(&mut self, delivery: OutgoingDelivery) -> Result<(), SendError> {
        {
            let mut state = self.shared.lock();
            if state.detached {
                return Err(SendError::Detached);
            }
            let max = state.peer_max_message_size;
            if max > 0 && delivery.payload.len() as u64 > max {
                return Err(SendError::TooLarge {
                    size: delivery.payload.len(),
                    max,
                });
            }
            if state.link_credit == 0 {
                return Err(SendError::NoCredit);
            }
            state.link_credit -= 1;
            state.delivery_count = state.delivery_count.wrapping_add(1);
        }
        self.commands.send(Command::Transfer {
            link_id: self.link_id,
            delivery: Box::new(delivery),
        });
        Ok(())
    }

    /// Answer a disposition the client sent unsettled (rcv-settle-mode `second`): the
    /// engine sends `disposition(settled=true, state)` for `delivery_id`.
    pub fn settle(&self, delivery_id: u32, state: DeliveryState) {
        self.commands.send(Command::SettleOutgoing {
            link_id: self.link_id,
            delivery_id,
            state,
        });
    }

    /// Complete a drain: the engine consumes the remaining credit (advancing
    /// delivery-count) and sends a `flow` with credit 0. Call it after a drain request once
    /// you have sent everything you had. Harmless when no drain is pending.
    pub fn drained(&self) {
        self.commands.send(Command::Drained {
            link_id: self.link_id,
        });
    }

    /// Next event; `None` after [`OutgoingLinkEvent::Detached`] has been returned.
    pub async fn next_event(&mut self) -> Option<OutgoingLinkEvent> {
        let event = self.events.recv().await?;
        Some(self.refresh(event))
    }

    /// Like [`Self::next_event`] but without waiting: `None` if no event is queued.
    pub fn try_next_event(&mut self) -> Option<OutgoingLinkEvent> {
        let event = self.events.try_recv().ok()?;
        Some(self.refresh(event))
    }

    fn refresh(&mut self, event: OutgoingLinkEvent) -> OutgoingLinkEvent {
        match event {
            OutgoingLinkEvent::Flow { .. } => {
                let mut state = self.shared.lock();
                state.flow_event_pending = false;
                OutgoingLinkEvent::Flow {
                    credit: state.link_credit,
                    drain: state.drain,
                }
            }
            OutgoingLinkEvent::Detached { error } => {
                self.detached = true;
                OutgoingLinkEvent::Detached { error }
            }
            other => other,
        }
    }

    /// Detach (closed) with an optional error. Pending deliveries are dropped.
    pub fn detach(mut self, error: Option<Error>) {
        self.detached = true;
        self.commands.send(Command::Detach {
            link_id: self.link_id,
            error,
        });
    }
}

impl Drop for OutgoingLink {
    fn drop(&mut self) {
        if !self.detached {
            self.commands.send(Command::Detach {
                link_id: self.link_id,
                error: None,
            });
        }
    }
}

/// What happened on an [`IncomingLink`].
#[derive(Debug, Clone)]
pub enum IncomingLinkEvent {
    /// A complete message.
    Delivery(IncomingDelivery),
    /// The link is gone. No further events follow.
    Detached {
        /// The error that ended the link: the client's, ours when the engine detached it
        /// for a protocol rule (`amqp:link:message-size-exceeded`,
        /// `amqp:link:transfer-limit-exceeded`), or the session's/connection's.
        error: Option<Error>,
    },
}

/// A link on which the client sends messages to the server.
#[derive(Debug)]
pub struct IncomingLink {
    info: Arc<LinkInfo>,
    link_id: LinkId,
    commands: CommandSender,
    events: UnboundedReceiver<IncomingLinkEvent>,
    credit: CreditMode,
    /// Pre-settled deliveries taken by the application but not yet reported to the
    /// connection task (auto credit is topped up in batches).
    unreported_consumed: u32,
    detached: bool,
}

impl IncomingLink {
    /// Session, name and address.
    pub fn info(&self) -> &LinkInfo {
        &self.info
    }

    /// Next event; `None` after [`IncomingLinkEvent::Detached`] has been returned.
    pub async fn next_event(&mut self) -> Option<IncomingLinkEvent> {
        let event = self.events.recv().await?;
        Some(self.account(event))
    }

    /// Like [`Self::next_event`] but without waiting.
    pub fn try_next_event(&mut self) -> Option<IncomingLinkEvent> {
        let event = self.events.try_recv().ok()?;
        Some(self.account(event))
    }

    fn account(&mut self, event: IncomingLinkEvent) -> IncomingLinkEvent {
        match &event {
            IncomingLinkEvent::Delivery(delivery) if delivery.settled => {
                if let CreditMode::Auto { window } = self.credit {
                    self.unreported_consumed += 1;
                    let batch = (window / 4).max(1);
                    if self.unreported_consumed >= batch || self.events.is_empty() {
                        self.commands.send(Command::Consumed {
                            link_id: self.link_id,
                            count: self.unreported_consumed,
                        });
                        self.unreported_consumed = 0;
                    }
                }
            }
            IncomingLinkEvent::Detached { .. } => self.detached = true,
            _ => {}
        }
        event
    }

    /// Settle a delivery the client sent unsettled with `state` (normally an outcome:
    /// Accepted, Rejected{error}, Released, Modified). Ignored for pre-settled deliveries.
    pub fn settle(&self, delivery_id: u32, state: DeliveryState) {
        self.commands.send(Command::SettleIncoming {
            link_id: self.link_id,
            delivery_id,
            state,
        });
    }

    /// Set the link credit (switches the link to [`CreditMode::Manual`]).
    pub fn set_credit(&mut self, credit: u32) {
        self.credit = CreditMode::Manual;
        self.commands.send(Command::SetCredit {
            link_id: self.link_id,
            credit,
        });
    }

    /// Detach (closed) with an optional error.
    pub fn detach(mut self, error: Option<Error>) {
        self.detached = true;
        self.commands.send(Command::Detach {
            link_id: self.link_id,
            error,
        });
    }
}

impl Drop for IncomingLink {
    fn drop(&mut self) {
        if !self.detached {
            self.commands.send(Command::Detach {
                link_id: self.link_id,
                error: None,
            });
        }
    }
}

/// Role of the client on a link, mapped to our direction.
#[allow(dead_code)]
pub(crate) fn direction_of_client_role(role: &Role) -> LinkDirection {
    match role {
        Role::Receiver => LinkDirection::Outgoing,
        Role::Sender => LinkDirection::Incoming,
    }
}
