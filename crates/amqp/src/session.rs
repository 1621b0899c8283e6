//! Per-session and per-link protocol state, owned by the connection task.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::command::{LinkEvents, LinkId};
use crate::config::CreditMode;
use crate::link::{LinkDirection, OutgoingShared};

/// Our `outgoing-window`: we never limit ourselves by it, so it is a constant that is
/// large but far from wrapping in clients that do arithmetic on it.
pub(crate) const OUTGOING_WINDOW: u32 = 65_536;

pub(crate) struct Session {
    /// The client's channel for this session.
    pub remote_channel: u16,
    /// transfer-id of the next transfer frame we send.
    pub next_outgoing_id: u32,
    /// Transfer frames the client still accepts from us.
    pub remote_incoming_window: u32,
    /// transfer-id we expect next from the client.
    pub next_incoming_id: u32,
    /// Transfer frames we still accept from the client.
    pub incoming_window: u32,
    /// delivery-id of the next delivery we send.
    pub next_delivery_id: u32,
    /// Links by our handle.
    pub links: Vec<Option<LinkState>>,
    /// Our handle by the client's handle.
    pub remote_handles: HashMap<u32, u32>,
    /// Our unsettled deliveries: delivery-id → (our handle, link id, tag, state reported).
    pub unsettled_out: HashMap<u32, UnsettledOut>,
    /// The client's unsettled deliveries: delivery-id → our handle.
    pub unsettled_in: HashMap<u32, u32>,
    /// Transfers waiting for the client's incoming window, in order.
    pub pending: VecDeque<PendingTransfer>,
    /// We sent `end` and wait for the client's.
    pub ending: bool,
}

pub(crate) struct UnsettledOut {
    pub handle: u32,
    pub tag: [u8; 16],
    /// An unsettled state was already reported to the application (a client repeating
    /// it is not reported again, which bounds events per delivery).
    pub reported: bool,
}

pub(crate) struct PendingTransfer {
    pub handle: u32,
    pub delivery_id: u32,
    pub tag: [u8; 16],
    pub message_format: u32,
    pub settled: bool,
    pub payload: Bytes,
    /// Payload bytes already sent (a delivery may be cut off by the window mid-way).
    pub offset: usize,
}

impl Session {
    pub(crate) fn new(
        remote_channel: u16,
        remote_incoming_window: u32,
        incoming_window: u32,
    ) -> Self {
        Self {
            remote_channel,
            next_outgoing_id: 0,
            remote_incoming_window,
            next_incoming_id: 0,
            incoming_window,
            next_delivery_id: 0,
            links: Vec::new(),
            remote_handles: HashMap::new(),
            unsettled_out: HashMap::new(),
            unsettled_in: HashMap::new(),
            pending: VecDeque::new(),
            ending: false,
        }
    }

    /// Lowest free local handle not above `handle_max`.
    pub(crate) fn allocate_handle(&mut self, handle_max: u32) -> Option<u32> {
        if let Some(free) = self.links.iter().position(Option::is_none) {
            return Some(free as u32);
        }
        let next = self.links.len() as u32;
        if next > handle_max {
            return None;
        }
        self.links.push(None);
        Some(next)
    }

    pub(crate) fn link_mut(&mut self, handle: u32) -> Option<&mut LinkState> {
        self.links.get_mut(handle as usize).and_then(Option::as_mut)
    }

    /// Forget everything about a link whose detach exchange is complete.
    pub(crate) fn remove_link(&mut self, handle: u32) -> Option<LinkState> {
        let link = self.links.get_mut(handle as usize)?.take()?;
        self.remote_handles.remove(&link.remote_handle);
        self.forget_deliveries(handle);
        Some(link)
    }

    /// Drop delivery state of a link that is going away.
    pub(crate) fn forget_deliveries(&mut self, handle: u32) {
        self.unsettled_out.retain(|_, d| d.handle != handle);
        self.unsettled_in.retain(|_, h| *h != handle);
        self.pending.retain(|p| p.handle != handle);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The client attached; the application has not decided yet.
    Pending,
    /// Both attaches exchanged.
    Attached,
    /// We sent `detach` and wait for the client's.
    Detaching,
}

pub(crate) struct LinkState {
    pub id: LinkId,
    pub name: String,
    pub remote_handle: u32,
    pub direction: LinkDirection,
    pub phase: Phase,
    /// `None` until the application accepts.
    pub events: Option<LinkEvents>,
    /// Credit state of an outgoing link (unused for incoming links).
    pub outgoing: Arc<OutgoingShared>,
    /// Incoming links: how credit is granted.
    pub credit_mode: CreditMode,
    /// Incoming links: credit the client still has.
    pub link_credit: u32,
    /// Incoming links: deliveries received (the receiver's delivery-count).
    pub delivery_count: u32,
    /// Incoming links: deliveries handed to the application and not yet taken/settled.
    pub outstanding: u32,
    /// Incoming links: enforced max message size.
    pub max_message_size: u64,
    /// Incoming links: a multi-frame delivery being reassembled.
    pub partial: Option<PartialDelivery>,
}

pub(crate) struct PartialDelivery {
    pub delivery_id: u32,
    pub tag: Bytes,
    pub message_format: u32,
    pub settled: bool,
    pub payload: PartialPayload,
}

/// Single-frame deliveries keep the frame's bytes (no copy); more frames are appended.
pub(crate) enum PartialPayload {
    One(Bytes),
    Many(BytesMut),
}

impl PartialPayload {
    pub(crate) fn len(&self) -> usize {
        match self {
            PartialPayload::One(b) => b.len(),
            PartialPayload::Many(b) => b.len(),
        }
    }

    pub(crate) fn push(&mut self, more: Bytes) {
        match self {
            PartialPayload::One(first) if first.is_empty() => *first = more,
            PartialPayload::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + more.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&more);
                *self = PartialPayload::Many(joined);
            }
            PartialPayload::Many(buf) => buf.extend_from_slice(&more),
        }
    }

    pub(crate) fn freeze(self) -> Bytes {
        match self {
            PartialPayload::One(b) => b,
            PartialPayload::Many(b) => b.freeze(),
        }
    }
}
