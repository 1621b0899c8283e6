//! AMQP 1.0 frame decoding (part 2.3): `size:u32 doff:u8 type:u8 channel:u16`, extended
//! header, then a described performative and, for `transfer`, the payload.
//!
//! [`decode_frame`] is a pure function over one complete frame so that it can be fuzzed.

use bytes::Bytes;

use crate::types::performatives::{
    Attach, Close, Detach, Disposition, End, Flow, Performative, Transfer,
};
use crate::types::sasl::{SaslChallenge, SaslInit, SaslMechanisms, SaslOutcome, SaslResponse};

/// Size of the fixed frame header.
pub const FRAME_HEADER_SIZE: usize = 8;
/// Smallest `max-frame-size` AMQP allows.
pub const MIN_MAX_FRAME_SIZE: u32 = 512;
/// Frame type of AMQP frames.
pub const FRAME_TYPE_AMQP: u8 = 0x00;
/// Frame type of SASL frames.
pub const FRAME_TYPE_SASL: u8 = 0x01;

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Channel (session) number; 0 for SASL frames.
    pub channel: u16,
    /// What the frame carries.
    pub body: FrameBody,
}

/// The body of a frame.
#[derive(Debug, Clone)]
// Rare, short-lived values: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum FrameBody {
    /// An AMQP frame without a body: a keep-alive.
    Empty,
    /// An AMQP performative; `payload` is the bytes after it (transfer payloads).
    Amqp {
        /// The performative.
        performative: Performative,
        /// Remaining frame bytes after the performative.
        payload: Bytes,
    },
    /// A SASL frame.
    Sasl(SaslBody),
}

/// SASL frame bodies (part 5.3.3).
#[derive(Debug, Clone)]
pub enum SaslBody {
    /// sasl-mechanisms (server to client).
    Mechanisms(SaslMechanisms),
    /// sasl-init (client to server).
    Init(SaslInit),
    /// sasl-challenge.
    Challenge(SaslChallenge),
    /// sasl-response.
    Response(SaslResponse),
    /// sasl-outcome.
    Outcome(SaslOutcome),
}

/// Why a frame could not be decoded. Each maps to the AMQP error the connection is closed
/// with ([`FrameError::condition`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Declared size is below the 8-byte header or the data offset.
    #[error("frame size {0} is too small")]
    TooSmall(u32),
    /// Declared size exceeds the negotiated `max-frame-size`.
    #[error("frame size {size} exceeds max-frame-size {max}")]
    TooLarge {
        /// Declared size.
        size: u32,
        /// Our limit.
        max: u32,
    },
    /// The buffer length differs from the declared size.
    #[error("frame declares {declared} bytes but {actual} were given")]
    LengthMismatch {
        /// Declared size.
        declared: u32,
        /// Buffer length.
        actual: usize,
    },
    /// `doff` below 2 or beyond the frame.
    #[error("invalid data offset {0}")]
    BadDataOffset(u8),
    /// Neither AMQP (0) nor SASL (1).
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// The body is not a described list we know.
    #[error("undecodable frame body: {0}")]
    Decode(String),
}

impl FrameError {
    /// The AMQP error condition to close the connection with.
    pub fn condition(&self) -> crate::types::definitions::ErrorCondition {
        use crate::types::definitions::{AmqpError, ConnectionError, ErrorCondition};
        match self {
            FrameError::TooSmall(_) => ErrorCondition::AmqpError(AmqpError::FrameSizeTooSmall),
            FrameError::TooLarge { .. }
            | FrameError::LengthMismatch { .. }
            | FrameError::BadDataOffset(_)
            | FrameError::UnknownType(_) => {
                ErrorCondition::ConnectionError(ConnectionError::FramingError)
            }
            FrameError::Decode(_) => ErrorCondition::AmqpError(AmqpError::DecodeError),
        }
    }
}

/// Inspect the start of `buf`: `Ok(None)` if fewer than 4 bytes are buffered, else the
/// declared frame size, validated against `max_frame_size`.
pub fn peek_frame_size(buf: &[u8], max_frame_size: u32) -> Result<Option<usize>, FrameError> {
    let Some(size_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
    if (size as usize) < FRAME_HEADER_SIZE {
        return Err(FrameError::TooSmall(size));
    }
    if size > max_frame_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_size,
        });
    }
    Ok(Some(size as usize))
}

/// Decode one complete frame (header included). Never panics.
pub fn decode_frame(buf: &[u8]) -> Result<Frame, FrameError> {
    decode_frame_bytes(Bytes::copy_from_slice(buf))
}

/// Like [`decode_frame`] but without copying: transfer payloads are slices of `frame`.
pub(crate) fn decode_frame_bytes(frame: Bytes) -> Result<Frame, FrameError> {
    if frame.len() < FRAME_HEADER_SIZE {
        return Err(FrameError::TooSmall(frame.len() as u32));
    }
    let declared = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if declared as usize != frame.len() {
        return Err(FrameError::LengthMismatch {
            declared,
            actual: frame.len(),
        });
    }
    let doff = frame[4];
    let body_start = doff as usize * 4;
    if doff < 2 || body_start > frame.len() {
        return Err(FrameError::BadDataOffset(doff));
    }
    let frame_type = frame[5];
    let channel = u16::from_be_bytes([frame[6], frame[7]]);
    let body = frame.slice(body_start..);
    match frame_type {
        FRAME_TYPE_AMQP => {
            if body.is_empty() {
                return Ok(Frame {
                    channel,
                    body: FrameBody::Empty,
                });
            }
            let (code, len) = described_header(&body)?;
            let bytes = &body[..len];
            let performative = match code {
                0x10 => Performative::Open(decode(bytes)?),
                0x11 => Performative::Begin(decode(bytes)?),
                0x12 => Performative::Attach(decode::<Attach>(bytes)?),
                0x13 => Performative::Flow(decode::<Flow>(bytes)?),
                0x14 => Performative::Transfer(decode::<Transfer>(bytes)?),
                0x15 => Performative::Disposition(decode_with_error_info::<Disposition>(bytes)?),
                0x16 => Performative::Detach(decode_with_error_info::<Detach>(bytes)?),
                0x17 => Performative::End(decode_with_error_info::<End>(bytes)?),
                0x18 => Performative::Close(decode_with_error_info::<Close>(bytes)?),
                other => {
                    return Err(FrameError::Decode(format!(
                        "unknown performative descriptor {other:#x}"
                    )))
                }
            };
            Ok(Frame {
                channel,
                body: FrameBody::Amqp {
                    performative,
                    payload: body.slice(len..),
                },
            })
        }
        FRAME_TYPE_SASL => {
            let (code, len) = described_header(&body)?;
            if len != body.len() {
                return Err(FrameError::Decode("trailing bytes after SASL body".into()));
            }
            let sasl = match code {
                0x40 => SaslBody::Mechanisms(decode(&body)?),
                0x41 => SaslBody::Init(decode(&body)?),
                0x42 => SaslBody::Challenge(decode(&body)?),
                0x43 => SaslBody::Response(decode(&body)?),
                0x44 => SaslBody::Outcome(decode(&body)?),
                other => {
                    return Err(FrameError::Decode(format!(
                        "unknown SASL descriptor {other:#x}"
                    )))
                }
            };
            Ok(Frame {
                channel,
                body: FrameBody::Sasl(sasl),
            })
        }
        other => Err(FrameError::UnknownType(other)),
    }
}

fn decode<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, FrameError> {
    from_slice_checked(bytes).map_err(FrameError::Decode)
}

/// Decode a performative that may carry an `error`: if the strict decode fails, retry once
/// with string keys in error info maps read as symbols (see `lenient.rs`).
fn decode_with_error_info<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    match from_slice_checked(bytes) {
        Ok(value) => Ok(value),
        Err(strict_error) => match crate::lenient::symbolise_error_info_keys(bytes) {
            Some(rewritten) => from_slice_checked(&rewritten).map_err(FrameError::Decode),
            None => Err(FrameError::Decode(strict_error)),
        },
    }
}

/// `serde_amqp::from_slice` that never panics and never allocates beyond the input: the
/// bytes are first checked structurally (lengths, counts, nesting; see `validate.rs`).
/// serde_amqp 0.18 also overflows an addition on
/// hostile list counts (found by the `decode_frame` fuzz target: `de.rs`,
/// `field_count += consume_list_header()`), which panics in builds with overflow checks.
/// Use this for every decode of bytes that came from the network (messages, request
/// bodies), not only frames.
pub fn from_slice_checked<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    crate::validate::validate_values(bytes)?;
    match std::panic::catch_unwind(|| serde_amqp::from_slice(bytes)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("malformed AMQP encoding".to_string()),
    }
}

/// Descriptor code and total encoded length of the described list at the start of `buf`.
///
/// Transfer frames carry the payload right after the performative, so its exact length
/// must be known before decoding. Symbolic descriptors (`amqp:open:list`, ...) are mapped
/// to their numeric codes.
fn described_header(buf: &[u8]) -> Result<(u64, usize), FrameError> {
    let short = || FrameError::Decode("truncated performative".into());
    if buf.first() != Some(&0x00) {
        return Err(FrameError::Decode(
            "frame body is not a described type".into(),
        ));
    }
    let (code, mut pos) = match buf.get(1).ok_or_else(short)? {
        0x53 => (*buf.get(2).ok_or_else(short)? as u64, 3),
        0x44 => (0, 2),
        0x80 => {
            let raw = buf.get(2..10).ok_or_else(short)?;
            let mut be = [0u8; 8];
            be.copy_from_slice(raw);
            (u64::from_be_bytes(be), 10)
        }
        0xa3 => {
            let len = *buf.get(2).ok_or_else(short)? as usize;
            let name = buf.get(3..3 + len).ok_or_else(short)?;
            (symbolic_code(name)?, 3 + len)
        }
        0xb3 => {
            let raw = buf.get(2..6).ok_or_else(short)?;
            let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            let end = 6usize.checked_add(len).ok_or_else(short)?;
            let name = buf.get(6..end).ok_or_else(short)?;
            (symbolic_code(name)?, end)
        }
        other => {
            return Err(FrameError::Decode(format!(
                "unsupported descriptor constructor {other:#04x}"
            )))
        }
    };
    let constructor = *buf.get(pos).ok_or_else(short)?;
    pos += 1;
    let body_len = match constructor {
        0x45 => 0,
        0xc0 => {
            let size = *buf.get(pos).ok_or_else(short)? as usize;
            1 + size
        }
        0xd0 => {
            let raw = buf.get(pos..pos + 4).ok_or_else(short)?;
            let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            4usize.checked_add(size).ok_or_else(short)?
        }
        other => {
            return Err(FrameError::Decode(format!(
                "performative is not a list (constructor {other:#04x})"
            )))
        }
    };
    let end = pos.checked_add(body_len).ok_or_else(short)?;
    if end > buf.len() {
        return Err(short());
    }
    Ok((code, end))
}

fn symbolic_code(name: &[u8]) -> Result<u64, FrameError> {
    let code = match name {
        b"amqp:open:list" => 0x10,
        b"amqp:begin:list" => 0x11,
        b"amqp:attach:list" => 0x12,
        b"amqp:flow:list" => 0x13,
        b"amqp:transfer:list" => 0x14,
        b"amqp:disposition:list" => 0x15,
        b"amqp:detach:list" => 0x16,
        b"amqp:end:list" => 0x17,
        b"amqp:close:list" => 0x18,
        b"amqp:sasl-mechanisms:list" => 0x40,
        b"amqp:sasl-init:list" => 0x41,
        b"amqp:sasl-challenge:list" => 0x42,
        b"amqp:sasl-response:list" => 0x43,
        b"amqp:sasl-outcome:list" => 0x44,
        _ => {
            return Err(FrameError::Decode(format!(
                "unknown descriptor {}",
                String::from_utf8_lossy(name)
            )))
        }
    };
    Ok(code)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use serde_amqp::described::Described;
    use serde_amqp::descriptor::Descriptor;
    use serde_amqp::primitives::OrderedMap;
    use serde_amqp::Value;

    use super::*;
    use crate::encode;
    use crate::types::definitions::{AmqpError, ErrorCondition, Role};
    use crate::types::messaging::{Accepted, DeliveryState};

    fn one_frame(out: &BytesMut) -> Frame {
        let size = peek_frame_size(out, u32::MAX).unwrap().unwrap();
        assert_eq!(size, out.len(), "exactly one frame expected");
        decode_frame(out).unwrap()
    }

    #[test]
    fn encoded_performatives_decode_back() {
        let mut out = BytesMut::new();
        encode::transfer(
            &mut out,
            3,
            &encode::TransferFields {
                handle: 7,
                first: Some((42, &[1, 2, 3], 0x8001_3700, false)),
                more: true,
            },
            b"payload",
        );
        let frame = one_frame(&out);
        assert_eq!(frame.channel, 3);
        let FrameBody::Amqp {
            performative: Performative::Transfer(t),
            payload,
        } = frame.body
        else {
            panic!("expected transfer");
        };
        assert_eq!(t.handle.0, 7);
        assert_eq!(t.delivery_id, Some(42));
        assert_eq!(t.delivery_tag.map(|b| b.to_vec()), Some(vec![1, 2, 3]));
        assert_eq!(t.message_format, Some(0x8001_3700));
        assert!(t.more);
        assert_eq!(&payload[..], b"payload");

        out.clear();
        encode::disposition(
            &mut out,
            0,
            Role::Receiver,
            5,
            9,
            true,
            &DeliveryState::Accepted(Accepted {}),
        )
        .unwrap();
        let FrameBody::Amqp {
            performative: Performative::Disposition(d),
            ..
        } = one_frame(&out).body
        else {
            panic!("expected disposition");
        };
        assert_eq!(
            (d.role, d.first, d.last, d.settled),
            (Role::Receiver, 5, Some(9), true)
        );
        assert!(matches!(d.state, Some(DeliveryState::Accepted(_))));

        out.clear();
        let error = crate::types::definitions::Error::new(
            AmqpError::NotFound,
            Some("gone".to_string()),
            None,
        );
        encode::detach(&mut out, 1, 4, true, Some(&error)).unwrap();
        let FrameBody::Amqp {
            performative: Performative::Detach(detach),
            ..
        } = one_frame(&out).body
        else {
            panic!("expected detach");
        };
        assert_eq!(detach.handle.0, 4);
        assert_eq!(
            detach.error.map(|e| e.condition),
            Some(ErrorCondition::AmqpError(AmqpError::NotFound))
        );
    }

    #[test]
    fn flow_encodes_every_field_with_large_numbers() {
        let mut out = BytesMut::new();
        encode::flow(
            &mut out,
            0,
            &encode::FlowFields {
                next_incoming_id: Some(u32::MAX),
                incoming_window: 300,
                next_outgoing_id: 0,
                outgoing_window: 65536,
                link: Some((1, 70_000, 255, true)),
            },
        );
        // list32 count of an 11-field flow.
        assert_eq!(&out[8..12], &[0x00, 0x53, 0x13, 0xd0]);
        assert_eq!(u32::from_be_bytes([out[16], out[17], out[18], out[19]]), 11);
        let FrameBody::Amqp {
            performative: Performative::Flow(f),
            ..
        } = one_frame(&out).body
        else {
            panic!("expected flow");
        };
        assert_eq!(f.next_incoming_id, Some(u32::MAX));
        assert_eq!(f.delivery_count, Some(70_000));
        assert_eq!(f.link_credit, Some(255));
        assert!(f.drain);
    }

    #[test]
    fn empty_frame_is_a_keep_alive() {
        let mut out = BytesMut::new();
        encode::empty_frame(&mut out);
        assert!(matches!(one_frame(&out).body, FrameBody::Empty));
    }

    #[test]
    fn header_errors_map_to_amqp_conditions() {
        assert_eq!(peek_frame_size(&[0, 0, 0], 512), Ok(None));
        assert_eq!(
            peek_frame_size(&[0, 0, 0, 7], 512),
            Err(FrameError::TooSmall(7))
        );
        assert!(matches!(
            peek_frame_size(&[0, 0, 2, 1], 512),
            Err(FrameError::TooLarge {
                size: 513,
                max: 512
            })
        ));
        assert!(matches!(
            decode_frame(&[0, 0, 0, 8, 1, 0, 0, 0]),
            Err(FrameError::BadDataOffset(1))
        ));
        assert!(matches!(
            decode_frame(&[0, 0, 0, 8, 2, 7, 0, 0]),
            Err(FrameError::UnknownType(7))
        ));
        assert!(matches!(
            decode_frame(&[0, 0, 0, 9, 2, 0, 0, 0]),
            Err(FrameError::LengthMismatch { .. })
        ));
        assert_eq!(
            FrameError::TooSmall(3).condition(),
            ErrorCondition::AmqpError(AmqpError::FrameSizeTooSmall)
        );
        assert_eq!(
            FrameError::Decode(String::new()).condition(),
            ErrorCondition::AmqpError(AmqpError::DecodeError)
        );
    }

    #[test]
    fn truncated_and_unknown_bodies_are_decode_errors() {
        // Unknown descriptor 0x30.
        let frame = [0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x30, 0x45];
        assert!(matches!(decode_frame(&frame), Err(FrameError::Decode(_))));
        // List size pointing past the end of the frame.
        let frame = [0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0x40, 0x01];
        assert!(matches!(decode_frame(&frame), Err(FrameError::Decode(_))));
        // Symbolic descriptor is accepted: `amqp:close:list` with an empty list.
        let mut frame = vec![0, 0, 0, 0, 2, 0, 0, 0, 0x00, 0xa3, 15];
        frame.extend_from_slice(b"amqp:close:list");
        frame.push(0x45);
        let len = frame.len() as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode_frame(&frame).unwrap().body,
            FrameBody::Amqp {
                performative: Performative::Close(_),
                ..
            }
        ));
    }

    /// Found by the `decode_frame` fuzz target: a source list claiming 2^32-1 fields made
    /// serde_amqp overflow (a panic with overflow checks).
    #[test]
    fn hostile_list_count_is_an_error_not_a_panic() {
        let mut frame = vec![0, 0, 0, 100, 2, 0, 0, 0];
        frame.extend_from_slice(&[
            0x00, 0x53, 0x12, 0xc0, 0x1c, 0x07, 0xa1, 0x01, 0x73, 0x43, 0x42, 0x50, 0x00, 0x50,
            0x01, 0x00, 0x53, 0x28, 0xd0,
        ]);
        let tail = [
            0x04, 0x01, 0xa1, 0, 0, 0, 0x53, 0x29, 0xc0, 0x04, 0x01, 0x75, 0x2b, 0x71,
        ];
        frame.resize(100 - tail.len(), 0xff);
        frame.extend_from_slice(&tail);
        // The plain decoder really does panic on it (in builds with overflow checks) ...
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let raw = std::panic::catch_unwind(|| {
            let _ = serde_amqp::from_slice::<Attach>(&frame[8..]);
        });
        std::panic::set_hook(previous_hook);
        if cfg!(debug_assertions) {
            assert!(
                raw.is_err(),
                "serde_amqp no longer panics: this guard may be obsolete"
            );
        }
        // ... while ours reports a decode error.
        assert!(matches!(decode_frame(&frame), Err(FrameError::Decode(_))));
    }

    /// Found by the `connection` fuzz target: an open whose hostname is a str32 claiming
    /// 0xb1b1b1b1 bytes made serde_amqp allocate ~3 GB.
    #[test]
    fn huge_declared_string_is_rejected_before_allocation() {
        let mut frame = vec![0, 0, 0, 33, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0x14, 0x05];
        frame.extend_from_slice(&[0xa1, 0x03, b'r', b'a', b'w', 0xb1]);
        frame.resize(33, 0xb1);
        assert!(matches!(decode_frame(&frame), Err(FrameError::Decode(_))));
    }

    fn described(code: u64, fields: Vec<Value>) -> Value {
        Value::Described(Box::new(Described {
            descriptor: Descriptor::Code(code),
            value: Value::List(fields),
        }))
    }

    /// What rhea (the JS SDK) sends to dead-letter: a rejected outcome whose error info
    /// map has string keys, where the spec says symbols.
    #[test]
    fn disposition_with_string_keyed_error_info_decodes() {
        let mut info = OrderedMap::new();
        info.insert(
            Value::String("DeadLetterReason".into()),
            Value::String("bad".into()),
        );
        info.insert(
            Value::String("DeadLetterErrorDescription".into()),
            Value::String("why".into()),
        );
        let error = described(
            0x1d,
            vec![
                Value::Symbol("com.microsoft:dead-letter".into()),
                Value::Null,
                Value::Map(info),
            ],
        );
        let disposition = described(
            0x15,
            vec![
                Value::Bool(true),
                Value::Uint(5),
                Value::Uint(5),
                Value::Bool(true),
                described(0x25, vec![error]),
            ],
        );
        let body = serde_amqp::to_vec(&disposition).unwrap();
        assert!(
            from_slice_checked::<Disposition>(&body).is_err(),
            "the strict decode must refuse string keys, or this test proves nothing"
        );
        let mut frame = Vec::new();
        frame.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
        frame.extend_from_slice(&[2, 0, 0, 1]);
        frame.extend_from_slice(&body);

        let decoded = decode_frame(&frame).expect("lenient decode");
        let FrameBody::Amqp {
            performative: Performative::Disposition(d),
            ..
        } = decoded.body
        else {
            panic!("expected a disposition");
        };
        assert_eq!(d.first, 5);
        let Some(DeliveryState::Rejected(rejected)) = d.state else {
            panic!("expected rejected, got {:?}", d.state);
        };
        let error = rejected.error.expect("error");
        let info = error.info.expect("info");
        let reason = info
            .get(&crate::types::primitives::Symbol::from("DeadLetterReason"))
            .expect("reason key as a symbol");
        assert_eq!(reason, &Value::String("bad".into()));
    }
}
