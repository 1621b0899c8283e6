//! Frame encoding straight into the connection's output buffer.
//!
//! Every performative is written with its **full field list** (trailing nulls included):
//! older pyamqp builds a performative from the list count on the wire and then indexes
//! fields by position (`open[9]`, `begin[7]`, `attach[13]`, flow fields), while
//! `serde_amqp` drops trailing nulls. Simple fields are written by hand (no allocation);
//! composite fields (source, target, error, delivery state, maps) go through `serde_amqp`.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use crate::frame::{FRAME_TYPE_AMQP, FRAME_TYPE_SASL};
use crate::types::definitions::{Error, Fields, ReceiverSettleMode, Role, SenderSettleMode};
use crate::types::messaging::{DeliveryState, Source, TargetArchetype};
use crate::types::primitives::{Array, Symbol};

/// Serialisation of an application-provided value failed.
pub(crate) type EncodeError = serde_amqp::Error;

/// AMQP descriptor codes (part 2.7 and 5.3).
pub(crate) mod code {
    pub const OPEN: u8 = 0x10;
    pub const BEGIN: u8 = 0x11;
    pub const ATTACH: u8 = 0x12;
    pub const FLOW: u8 = 0x13;
    pub const TRANSFER: u8 = 0x14;
    pub const DISPOSITION: u8 = 0x15;
    pub const DETACH: u8 = 0x16;
    pub const END: u8 = 0x17;
    pub const CLOSE: u8 = 0x18;
    pub const SASL_MECHANISMS: u8 = 0x40;
    pub const SASL_OUTCOME: u8 = 0x44;
}

/// Writes frames into a buffer. A failed frame is rolled back so the buffer only ever
/// holds complete frames.
pub(crate) struct FrameEncoder<'a> {
    out: &'a mut BytesMut,
    frame_start: usize,
    list_start: usize,
    count: u32,
}

impl<'a> FrameEncoder<'a> {
    /// Start a frame whose body is the described list `code`.
    pub(crate) fn begin(out: &'a mut BytesMut, frame_type: u8, channel: u16, code: u8) -> Self {
        let frame_start = out.len();
        out.put_u32(0); // size, patched in finish
        out.put_u8(2); // doff: no extended header
        out.put_u8(frame_type);
        out.put_u16(channel);
        out.put_slice(&[0x00, 0x53, code, 0xd0]);
        let list_start = out.len();
        out.put_u32(0); // list size, patched
        out.put_u32(0); // list count, patched
        Self {
            out,
            frame_start,
            list_start,
            count: 0,
        }
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.count += 1;
        self.out.put_u8(0x40);
        self
    }

    pub(crate) fn boolean(&mut self, value: bool) -> &mut Self {
        self.count += 1;
        self.out.put_u8(if value { 0x41 } else { 0x42 });
        self
    }

    pub(crate) fn ubyte(&mut self, value: u8) -> &mut Self {
        self.count += 1;
        self.out.put_u8(0x50);
        self.out.put_u8(value);
        self
    }

    pub(crate) fn ushort(&mut self, value: u16) -> &mut Self {
        self.count += 1;
        self.out.put_u8(0x60);
        self.out.put_u16(value);
        self
    }

    pub(crate) fn uint(&mut self, value: u32) -> &mut Self {
        self.count += 1;
        match value {
            0 => self.out.put_u8(0x43),
            1..=255 => {
                self.out.put_u8(0x52);
                self.out.put_u8(value as u8);
            }
            _ => {
                self.out.put_u8(0x70);
                self.out.put_u32(value);
            }
        }
        self
    }

    pub(crate) fn opt_uint(&mut self, value: Option<u32>) -> &mut Self {
        match value {
            Some(v) => self.uint(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_ulong(&mut self, value: Option<u64>) -> &mut Self {
        let Some(value) = value else {
            return self.null();
        };
        self.count += 1;
        match value {
            0 => self.out.put_u8(0x44),
            1..=255 => {
                self.out.put_u8(0x53);
                self.out.put_u8(value as u8);
            }
            _ => {
                self.out.put_u8(0x80);
                self.out.put_u64(value);
            }
        }
        self
    }

    pub(crate) fn binary(&mut self, value: &[u8]) -> &mut Self {
        self.count += 1;
        if value.len() <= 255 {
            self.out.put_u8(0xa0);
            self.out.put_u8(value.len() as u8);
        } else {
            self.out.put_u8(0xb0);
            self.out.put_u32(value.len() as u32);
        }
        self.out.put_slice(value);
        self
    }

    pub(crate) fn string(&mut self, value: &str) -> &mut Self {
        self.count += 1;
        if value.len() <= 255 {
            self.out.put_u8(0xa1);
            self.out.put_u8(value.len() as u8);
        } else {
            self.out.put_u8(0xb1);
            self.out.put_u32(value.len() as u32);
        }
        self.out.put_slice(value.as_bytes());
        self
    }

    /// Any value through serde_amqp (`None` encodes as null).
    pub(crate) fn serde<T: Serialize>(&mut self, value: &T) -> Result<&mut Self, EncodeError> {
        self.count += 1;
        let mut serializer = serde_amqp::ser::Serializer::new((&mut *self.out).writer());
        value.serialize(&mut serializer)?;
        Ok(self)
    }

    /// Patch sizes and append the payload (transfers).
    pub(crate) fn finish_with_payload(self, payload: &[u8]) {
        let list_size = (self.out.len() - self.list_start - 4) as u32;
        self.out[self.list_start..self.list_start + 4].copy_from_slice(&list_size.to_be_bytes());
        self.out[self.list_start + 4..self.list_start + 8]
            .copy_from_slice(&self.count.to_be_bytes());
        self.out.put_slice(payload);
        let frame_size = (self.out.len() - self.frame_start) as u32;
        self.out[self.frame_start..self.frame_start + 4].copy_from_slice(&frame_size.to_be_bytes());
    }

    pub(crate) fn finish(self) {
        self.finish_with_payload(&[]);
    }

    /// Drop the partially written frame.
    pub(crate) fn abort(self) {
        self.out.truncate(self.frame_start);
    }
}

/// Run `body` on a new frame; roll the frame back if it fails.
fn framed(
    out: &mut BytesMut,
    frame_type: u8,
    channel: u16,
    code: u8,
    body: impl FnOnce(&mut FrameEncoder<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let mut encoder = FrameEncoder::begin(out, frame_type, channel, code);
    match body(&mut encoder) {
        Ok(()) => {
            encoder.finish();
            Ok(())
        }
        Err(error) => {
            encoder.abort();
            Err(error)
        }
    }
}

/// An empty AMQP frame (heartbeat).
pub(crate) fn empty_frame(out: &mut BytesMut) {
    out.put_slice(&[0, 0, 0, 8, 2, FRAME_TYPE_AMQP, 0, 0]);
}

fn symbols(value: &Option<Vec<Symbol>>) -> Option<Array<Symbol>> {
    value.as_ref().map(|v| Array::from(v.clone()))
}

/// Fields of our `open`.
pub(crate) struct OpenFields<'a> {
    pub container_id: &'a str,
    pub max_frame_size: u32,
    pub channel_max: u16,
    pub idle_time_out: Option<u32>,
}

pub(crate) fn open(out: &mut BytesMut, open: &OpenFields<'_>) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, 0, code::OPEN, |e| {
        e.string(open.container_id)
            .null() // hostname
            .uint(open.max_frame_size)
            .ushort(open.channel_max)
            .opt_uint(open.idle_time_out)
            .null() // outgoing-locales
            .null() // incoming-locales
            .null() // offered-capabilities
            .null() // desired-capabilities
            .null(); // properties
        Ok(())
    })
}

/// Fields of our `begin` (always a reply: remote-channel is set).
pub(crate) struct BeginFields {
    pub remote_channel: u16,
    pub next_outgoing_id: u32,
    pub incoming_window: u32,
    pub outgoing_window: u32,
    pub handle_max: u32,
}

pub(crate) fn begin(out: &mut BytesMut, channel: u16, b: &BeginFields) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, channel, code::BEGIN, |e| {
        e.ushort(b.remote_channel)
            .uint(b.next_outgoing_id)
            .uint(b.incoming_window)
            .uint(b.outgoing_window)
            .uint(b.handle_max)
            .null() // offered-capabilities
            .null() // desired-capabilities
            .null(); // properties
        Ok(())
    })
}

/// Fields of our `attach`.
pub(crate) struct AttachFields<'a> {
    pub name: &'a str,
    pub handle: u32,
    pub role: Role,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    pub source: Option<&'a Source>,
    pub target: Option<&'a TargetArchetype>,
    pub initial_delivery_count: Option<u32>,
    pub max_message_size: Option<u64>,
    pub offered_capabilities: &'a Option<Vec<Symbol>>,
    pub desired_capabilities: &'a Option<Vec<Symbol>>,
    pub properties: Option<&'a Fields>,
}

pub(crate) fn attach(
    out: &mut BytesMut,
    channel: u16,
    a: &AttachFields<'_>,
) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, channel, code::ATTACH, |e| {
        e.string(a.name)
            .uint(a.handle)
            .boolean(matches!(a.role, Role::Receiver))
            .ubyte(snd_settle_mode_code(&a.snd_settle_mode))
            .ubyte(rcv_settle_mode_code(&a.rcv_settle_mode))
            .serde(&a.source)?
            .serde(&a.target)?
            .null() // unsettled
            .boolean(false) // incomplete-unsettled
            .opt_uint(a.initial_delivery_count)
            .opt_ulong(a.max_message_size)
            .serde(&symbols(a.offered_capabilities))?
            .serde(&symbols(a.desired_capabilities))?
            .serde(&a.properties)?;
        Ok(())
    })
}

fn snd_settle_mode_code(mode: &SenderSettleMode) -> u8 {
    match mode {
        SenderSettleMode::Unsettled => 0,
        SenderSettleMode::Settled => 1,
        SenderSettleMode::Mixed => 2,
    }
}

fn rcv_settle_mode_code(mode: &ReceiverSettleMode) -> u8 {
    match mode {
        ReceiverSettleMode::First => 0,
        ReceiverSettleMode::Second => 1,
    }
}

/// Fields of a `flow` we send.
pub(crate) struct FlowFields {
    pub next_incoming_id: Option<u32>,
    pub incoming_window: u32,
    pub next_outgoing_id: u32,
    pub outgoing_window: u32,
    /// `(handle, delivery-count, link-credit, drain)` for link flows.
    pub link: Option<(u32, u32, u32, bool)>,
}

pub(crate) fn flow(out: &mut BytesMut, channel: u16, f: &FlowFields) {
    let mut e = FrameEncoder::begin(out, FRAME_TYPE_AMQP, channel, code::FLOW);
    e.opt_uint(f.next_incoming_id)
        .uint(f.incoming_window)
        .uint(f.next_outgoing_id)
        .uint(f.outgoing_window);
    match f.link {
        Some((handle, delivery_count, link_credit, drain)) => {
            e.uint(handle)
                .uint(delivery_count)
                .uint(link_credit)
                .uint(0) // available
                .boolean(drain);
        }
        None => {
            e.null().null().null().null().boolean(false);
        }
    }
    e.boolean(false) // echo
        .null(); // properties
    e.finish();
}

/// Header fields of one transfer frame.
pub(crate) struct TransferFields<'a> {
    pub handle: u32,
    /// `Some` on the first frame of a delivery (id, tag, format, settled).
    pub first: Option<(u32, &'a [u8], u32, bool)>,
    pub more: bool,
}

/// Bytes a transfer frame needs besides the payload, with a 32-byte tag at most.
pub(crate) const TRANSFER_OVERHEAD: usize = 8 + 4 + 8 + 4 * 5 + 2 + 34 + 6;

pub(crate) fn transfer(out: &mut BytesMut, channel: u16, t: &TransferFields<'_>, payload: &[u8]) {
    let mut e = FrameEncoder::begin(out, FRAME_TYPE_AMQP, channel, code::TRANSFER);
    e.uint(t.handle);
    match t.first {
        Some((delivery_id, tag, format, settled)) => {
            e.uint(delivery_id)
                .binary(tag)
                .uint(format)
                .boolean(settled);
        }
        None => {
            e.null().null().null().null();
        }
    }
    e.boolean(t.more)
        .null() // rcv-settle-mode
        .null() // state
        .boolean(false) // resume
        .boolean(false) // aborted
        .boolean(false); // batchable
    e.finish_with_payload(payload);
}

pub(crate) fn disposition(
    out: &mut BytesMut,
    channel: u16,
    role: Role,
    first: u32,
    last: u32,
    settled: bool,
    state: &DeliveryState,
) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, channel, code::DISPOSITION, |e| {
        e.boolean(matches!(role, Role::Receiver)).uint(first);
        if last == first {
            e.null();
        } else {
            e.uint(last);
        }
        e.boolean(settled);
        if matches!(state, DeliveryState::Accepted(_)) {
            // accepted: described empty list, the overwhelmingly common case
            e.count += 1;
            e.out.put_slice(&[0x00, 0x53, 0x24, 0x45]);
        } else {
            e.serde(state)?;
        }
        e.boolean(false); // batchable
        Ok(())
    })
}

pub(crate) fn detach(
    out: &mut BytesMut,
    channel: u16,
    handle: u32,
    closed: bool,
    error: Option<&Error>,
) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, channel, code::DETACH, |e| {
        e.uint(handle).boolean(closed).serde(&error)?;
        Ok(())
    })
}

pub(crate) fn end(
    out: &mut BytesMut,
    channel: u16,
    error: Option<&Error>,
) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, channel, code::END, |e| {
        e.serde(&error)?;
        Ok(())
    })
}

pub(crate) fn close(out: &mut BytesMut, error: Option<&Error>) -> Result<(), EncodeError> {
    framed(out, FRAME_TYPE_AMQP, 0, code::CLOSE, |e| {
        e.serde(&error)?;
        Ok(())
    })
}

pub(crate) fn sasl_mechanisms(
    out: &mut BytesMut,
    mechanisms: &[String],
) -> Result<(), EncodeError> {
    let symbols: Vec<Symbol> = mechanisms
        .iter()
        .map(|m| Symbol::from(m.as_str()))
        .collect();
    framed(out, FRAME_TYPE_SASL, 0, code::SASL_MECHANISMS, |e| {
        e.serde(&Array::from(symbols))?;
        Ok(())
    })
}

/// `sasl-outcome` with code ok (0) and no additional data.
pub(crate) fn sasl_outcome_ok(out: &mut BytesMut) {
    let mut e = FrameEncoder::begin(out, FRAME_TYPE_SASL, 0, code::SASL_OUTCOME);
    e.ubyte(0).null();
    e.finish();
}
