//! The Service Bus view of an AMQP message: what we read from a producer's message, and the
//! annotated message we hand to a consumer.
//!
//! The broker stores a message's **bare bytes**: every section except `header` and
//! `delivery-annotations` (those belong to one hop, and we rebuild both on delivery), so body,
//! properties and application properties reach consumers byte for byte.

use bytes::Bytes;
use fe2o3_amqp_types::messaging::{Header, MessageId, Properties};
use serde_amqp::primitives::{OrderedMap, Symbol, Timestamp};
use serde_amqp::Value;

use crate::codec::{self, CodecError, SectionKind};

/// The message-format of a batched send: the outer message's Data sections each hold one
/// encoded message (Microsoft.Azure.Amqp `AmqpConstants.AmqpBatchedMessageFormat`).
pub const BATCH_MESSAGE_FORMAT: u32 = 0x8001_3700;

pub const PARTITION_KEY: &str = "x-opt-partition-key";
pub const VIA_PARTITION_KEY: &str = "x-opt-via-partition-key";
pub const SCHEDULED_ENQUEUE_TIME: &str = "x-opt-scheduled-enqueue-time";
pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub const LOCKED_UNTIL: &str = "x-opt-locked-until";
pub const ENQUEUE_SEQUENCE_NUMBER: &str = "x-opt-enqueue-sequence-number";
pub const MESSAGE_STATE: &str = "x-opt-message-state";
pub const DEAD_LETTER_SOURCE: &str = "x-opt-deadletter-source";
pub const LOCK_TOKEN: &str = "x-opt-lock-token";
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// Keys the broker stamps; a producer's values for them are dropped on enqueue.
const BROKER_OWNED: [&str; 6] = [
    SEQUENCE_NUMBER,
    ENQUEUED_TIME,
    LOCKED_UNTIL,
    ENQUEUE_SEQUENCE_NUMBER,
    MESSAGE_STATE,
    DEAD_LETTER_SOURCE,
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed message: {0}")]
    Codec(#[from] CodecError),
    #[error("malformed {section} section: {reason}")]
    Section {
        section: &'static str,
        reason: String,
    },
    #[error("a batched message holds a {0:?} section where only data sections are allowed")]
    BatchSection(SectionKind),
    #[error("a batched message holds no messages")]
    EmptyBatch,
    #[error("cannot encode the delivery: {0}")]
    Encode(String),
}

/// What the broker needs from a message a producer sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedMessage {
    pub message_id: Option<String>,
    /// `properties.group-id`.
    pub session_id: Option<String>,
    pub partition_key: Option<String>,
    /// `header.ttl`, in milliseconds.
    pub time_to_live_ms: Option<u32>,
    /// `x-opt-scheduled-enqueue-time`, unix milliseconds.
    pub scheduled_enqueue_time_ms: Option<i64>,
    pub correlation_id: Option<String>,
    pub subject: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    /// String-keyed application properties, in order.
    pub application_properties: Vec<(String, Value)>,
    /// The bare message bytes to store (no header, no delivery-annotations).
    pub payload: Bytes,
}

fn section_error(section: &'static str, error: impl std::fmt::Display) -> MessageError {
    MessageError::Section {
        section,
        reason: error.to_string(),
    }
}

/// The text form of an AMQP message-id: Service Bus ids are strings, other forms are
/// rendered so duplicate detection and `message-id` fields still work.
pub fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// A string from an annotation or property value, if it is one.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

/// The text of a map key that may be a symbol or a string.
pub fn key_text(key: &Value) -> Option<&str> {
    match key {
        Value::String(s) => Some(s),
        Value::Symbol(s) => Some(&s.0),
        _ => None,
    }
}

fn decode_map(
    section: &'static str,
    value: &[u8],
) -> Result<OrderedMap<Value, Value>, MessageError> {
    match serde_amqp::from_slice::<Value>(value).map_err(|e| section_error(section, e))? {
        Value::Map(map) => Ok(map),
        Value::Null => Ok(OrderedMap::new()),
        other => Err(section_error(
            section,
            format!("expected a map, got {other:?}"),
        )),
    }
}

/// Reads a message as a producer sent it (one message, not a batch).
pub fn decode_message(bytes: &[u8]) -> Result<DecodedMessage, MessageError> {
    let sections = codec::split_sections(bytes)?;
    let mut decoded = DecodedMessage::default();
    let mut payload = Vec::with_capacity(bytes.len());
    for section in &sections {
        match section.kind {
            SectionKind::Header => {
                let header: Header = serde_amqp::from_slice(section.encoded)
                    .map_err(|e| section_error("header", e))?;
                decoded.time_to_live_ms = header.ttl;
            }
            SectionKind::DeliveryAnnotations => {}
            SectionKind::MessageAnnotations => {
                let mut map = decode_map("message-annotations", section.value)?;
                for (key, value) in map.iter() {
                    match key_text(key) {
                        Some(PARTITION_KEY) => decoded.partition_key = value_text(value),
                        Some(SCHEDULED_ENQUEUE_TIME) => {
                            decoded.scheduled_enqueue_time_ms = match value {
                                Value::Timestamp(t) => Some(t.milliseconds()),
                                Value::Long(ms) => Some(*ms),
                                _ => None,
                            }
                        }
                        _ => {}
                    }
                }
                let before = map.len();
                map.as_inner_mut()
                    .retain(|k, _| !key_text(k).is_some_and(|k| BROKER_OWNED.contains(&k)));
                if map.len() == before {
                    payload.extend_from_slice(section.encoded);
                } else if !map.is_empty() {
                    payload.extend_from_slice(&encode_map_section(0x72, map)?);
                }
            }
            SectionKind::Properties => {
                let properties: Properties = serde_amqp::from_slice(section.encoded)
                    .map_err(|e| section_error("properties", e))?;
                decoded.message_id = properties.message_id.as_ref().map(message_id_text);
                decoded.correlation_id = properties.correlation_id.as_ref().map(message_id_text);
                decoded.session_id = properties.group_id;
                decoded.subject = properties.subject;
                decoded.to = properties.to;
                decoded.reply_to = properties.reply_to;
                decoded.reply_to_session_id = properties.reply_to_group_id;
                decoded.content_type = properties.content_type.map(|s| s.0);
                payload.extend_from_slice(section.encoded);
            }
            SectionKind::ApplicationProperties => {
                let map = decode_map("application-properties", section.value)?;
                decoded.application_properties = map
                    .into_inner()
                    .into_iter()
                    .filter_map(|(k, v)| match k {
                        Value::String(k) => Some((k, v)),
                        Value::Symbol(k) => Some((k.0, v)),
                        _ => None,
                    })
                    .collect();
                payload.extend_from_slice(section.encoded);
            }
            SectionKind::Data
            | SectionKind::AmqpSequence
            | SectionKind::AmqpValue
            | SectionKind::Footer => payload.extend_from_slice(section.encoded),
        }
    }
    decoded.payload = Bytes::from(payload);
    Ok(decoded)
}

/// Splits a batched send (message-format [`BATCH_MESSAGE_FORMAT`]) into its messages. The
/// envelope's own header, annotations and properties only describe the batch and are dropped.
pub fn split_batch(bytes: &[u8]) -> Result<Vec<DecodedMessage>, MessageError> {
    let mut messages = Vec::new();
    for section in codec::split_sections(bytes)? {
        match section.kind {
            SectionKind::Data => {
                let inner = codec::binary_contents(section.value)
                    .ok_or_else(|| section_error("data", "not a binary value"))?;
                messages.push(decode_message(inner)?);
            }
            SectionKind::Header
            | SectionKind::DeliveryAnnotations
            | SectionKind::MessageAnnotations
            | SectionKind::Properties
            | SectionKind::ApplicationProperties
            | SectionKind::Footer => {}
            kind => return Err(MessageError::BatchSection(kind)),
        }
    }
    if messages.is_empty() {
        return Err(MessageError::EmptyBatch);
    }
    Ok(messages)
}

/// Decodes the messages of one transfer, batched or not.
pub fn decode_transfer(
    message_format: u32,
    bytes: &[u8],
) -> Result<Vec<DecodedMessage>, MessageError> {
    if message_format == BATCH_MESSAGE_FORMAT {
        split_batch(bytes)
    } else {
        decode_message(bytes).map(|m| vec![m])
    }
}

/// `x-opt-message-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Active = 0,
    Deferred = 1,
    Scheduled = 2,
}

/// What the broker knows about one delivery of a stored message.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStamp {
    pub sequence_number: i64,
    pub enqueued_time_ms: i64,
    /// Only for peek-lock deliveries.
    pub locked_until_ms: Option<i64>,
    /// Only for peek-lock deliveries; also sent as `x-opt-lock-token` (fallback for clients
    /// that don't read the delivery tag).
    pub lock_token: Option<uuid::Uuid>,
    /// Number of earlier delivery attempts (AMQP semantics; .NET shows this + 1).
    pub delivery_count: u32,
    pub time_to_live_ms: Option<u32>,
    pub state: Option<MessageState>,
    pub enqueue_sequence_number: Option<i64>,
    pub dead_letter_source: Option<String>,
    /// Application properties set or overwritten by abandon / defer / dead-letter
    /// (including `DeadLetterReason` and `DeadLetterErrorDescription`) or a rule action's SET.
    pub modified_properties: Vec<(String, Value)>,
    /// Application properties a rule action's REMOVE took away.
    pub removed_properties: Vec<String>,
    /// The system fields the broker holds for the message. A rule action's `SET sys.…` changes
    /// them after the payload was stored: where they differ from the payload's properties
    /// section (or partition key annotation), the delivery carries the broker's values.
    pub system: Option<SystemFields>,
}

/// The system fields of a stored message that a rule action may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemFields {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub partition_key: Option<String>,
}

/// Encodes the header by hand: serde_amqp drops trailing default fields, and .NET fails with
/// "Nullable object must have a value" when `delivery-count` is missing.
fn encode_header(stamp: &DeliveryStamp) -> Vec<u8> {
    let mut fields = vec![0x41, 0x50, 0x04];
    match stamp.time_to_live_ms {
        Some(ttl) => {
            fields.push(0x70);
            fields.extend_from_slice(&ttl.to_be_bytes());
        }
        None => fields.push(0x40),
    }
    fields.push(if stamp.delivery_count == 0 {
        0x41
    } else {
        0x42
    });
    fields.push(0x70);
    fields.extend_from_slice(&stamp.delivery_count.to_be_bytes());
    let mut out = vec![0x00, 0x53, 0x70, 0xc0, (fields.len() + 1) as u8, 0x05];
    out.extend_from_slice(&fields);
    out
}

fn encode_map_section(code: u8, map: OrderedMap<Value, Value>) -> Result<Vec<u8>, MessageError> {
    let mut out = vec![0x00, 0x53, code];
    let body =
        serde_amqp::to_vec(&Value::Map(map)).map_err(|e| MessageError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn symbol(key: &str) -> Value {
    Value::Symbol(Symbol::from(key))
}

/// Sets `key` in an annotation map whose keys may be symbols or strings.
fn set_annotation(map: &mut OrderedMap<Value, Value>, key: &str, value: Value) {
    map.as_inner_mut().retain(|k, _| key_text(k) != Some(key));
    map.insert(symbol(key), value);
}

/// An application-properties section: `existing` (an encoded map) with the stamp's modified
/// properties set on top and its removed ones taken out.
fn merged_application_properties(
    existing: Option<&[u8]>,
    stamp: &DeliveryStamp,
) -> Result<Vec<u8>, MessageError> {
    let mut map = match existing {
        Some(value) => decode_map("application-properties", value)?,
        None => OrderedMap::new(),
    };
    for (key, value) in &stamp.modified_properties {
        map.as_inner_mut()
            .retain(|k, _| key_text(k) != Some(key.as_str()));
        map.insert(Value::String(key.clone()), value.clone());
    }
    for removed in &stamp.removed_properties {
        map.as_inner_mut()
            .retain(|k, _| key_text(k) != Some(removed.as_str()));
    }
    encode_map_section(0x74, map)
}

/// Replaces `current` with `wanted` when they differ; reports whether it did.
fn replace_if_changed<T: PartialEq>(current: &mut T, wanted: T) -> bool {
    let changed = *current != wanted;
    if changed {
        *current = wanted;
    }
    changed
}

/// The properties section to deliver: `existing` as stored, or re-encoded with the broker's
/// system fields where a rule action changed them. Identifiers keep their AMQP type unless
/// their text changed (then they become strings, as Service Bus sets them).
fn delivered_properties(
    existing: Option<&[u8]>,
    system: &SystemFields,
) -> Result<Option<Vec<u8>>, MessageError> {
    let mut properties: Properties = match existing {
        Some(encoded) => {
            serde_amqp::from_slice(encoded).map_err(|e| section_error("properties", e))?
        }
        None => Properties::default(),
    };
    let as_id = |text: &Option<String>| text.clone().map(MessageId::String);
    let mut changed = false;
    if properties.message_id.as_ref().map(message_id_text) != system.message_id {
        changed |= replace_if_changed(&mut properties.message_id, as_id(&system.message_id));
    }
    if properties.correlation_id.as_ref().map(message_id_text) != system.correlation_id {
        changed |= replace_if_changed(
            &mut properties.correlation_id,
            as_id(&system.correlation_id),
        );
    }
    changed |= replace_if_changed(&mut properties.to, system.to.clone());
    changed |= replace_if_changed(&mut properties.reply_to, system.reply_to.clone());
    changed |= replace_if_changed(&mut properties.subject, system.subject.clone());
    changed |= replace_if_changed(&mut properties.group_id, system.session_id.clone());
    changed |= replace_if_changed(
        &mut properties.reply_to_group_id,
        system.reply_to_session_id.clone(),
    );
    changed |= replace_if_changed(
        &mut properties.content_type,
        system.content_type.as_deref().map(Symbol::from),
    );
    if !changed {
        return Ok(existing.map(<[u8]>::to_vec));
    }
    serde_amqp::to_vec(&properties)
        .map(Some)
        .map_err(|e| MessageError::Encode(e.to_string()))
}

/// The annotated message for a consumer (a transfer payload, or the `message` binary of a
/// peek / receive-by-sequence-number answer).
pub fn encode_delivery(payload: &[u8], stamp: &DeliveryStamp) -> Result<Vec<u8>, MessageError> {
    let sections = codec::split_sections(payload)?;
    let mut out = Vec::with_capacity(payload.len() + 256);
    out.extend_from_slice(&encode_header(stamp));
    if let Some(token) = stamp.lock_token {
        let mut delivery_annotations = OrderedMap::new();
        delivery_annotations.insert(
            symbol(LOCK_TOKEN),
            Value::Uuid(serde_amqp::primitives::Uuid::from(*token.as_bytes())),
        );
        out.extend_from_slice(&encode_map_section(0x71, delivery_annotations)?);
    }

    let mut annotations = match sections
        .iter()
        .find(|s| s.kind == SectionKind::MessageAnnotations)
    {
        Some(section) => decode_map("message-annotations", section.value)?,
        None => OrderedMap::new(),
    };
    set_annotation(
        &mut annotations,
        SEQUENCE_NUMBER,
        Value::Long(stamp.sequence_number),
    );
    set_annotation(
        &mut annotations,
        ENQUEUED_TIME,
        Value::Timestamp(Timestamp::from_milliseconds(stamp.enqueued_time_ms)),
    );
    if let Some(until) = stamp.locked_until_ms {
        set_annotation(
            &mut annotations,
            LOCKED_UNTIL,
            Value::Timestamp(Timestamp::from_milliseconds(until)),
        );
    }
    if let Some(seq) = stamp.enqueue_sequence_number {
        set_annotation(&mut annotations, ENQUEUE_SEQUENCE_NUMBER, Value::Long(seq));
    }
    if let Some(state) = stamp.state {
        set_annotation(&mut annotations, MESSAGE_STATE, Value::Int(state as i32));
    }
    if let Some(source) = &stamp.dead_letter_source {
        set_annotation(
            &mut annotations,
            DEAD_LETTER_SOURCE,
            Value::String(source.clone()),
        );
    }
    if let Some(system) = &stamp.system {
        let current = annotations
            .iter()
            .find(|(k, _)| key_text(k) == Some(PARTITION_KEY))
            .and_then(|(_, v)| value_text(v));
        if current != system.partition_key {
            annotations
                .as_inner_mut()
                .retain(|k, _| key_text(k) != Some(PARTITION_KEY));
            if let Some(key) = &system.partition_key {
                set_annotation(&mut annotations, PARTITION_KEY, Value::String(key.clone()));
            }
        }
    }
    out.extend_from_slice(&encode_map_section(0x72, annotations)?);

    // Sections in their AMQP order: properties, application properties, body, footer. The
    // stored properties and application properties are written with the broker's changes;
    // either is added before the body when the payload had none and there is something to say.
    let modified = !stamp.modified_properties.is_empty() || !stamp.removed_properties.is_empty();
    let mut wrote_properties = false;
    let mut wrote_application_properties = false;
    for section in &sections {
        match section.kind {
            SectionKind::Header
            | SectionKind::DeliveryAnnotations
            | SectionKind::MessageAnnotations => {}
            SectionKind::Properties => {
                match &stamp.system {
                    Some(system) => {
                        if let Some(bytes) = delivered_properties(Some(section.encoded), system)? {
                            out.extend_from_slice(&bytes);
                        }
                    }
                    None => out.extend_from_slice(section.encoded),
                }
                wrote_properties = true;
            }
            SectionKind::ApplicationProperties => {
                if !wrote_properties {
                    write_added_properties(&mut out, stamp)?;
                    wrote_properties = true;
                }
                if modified {
                    out.extend_from_slice(&merged_application_properties(
                        Some(section.value),
                        stamp,
                    )?);
                } else {
                    out.extend_from_slice(section.encoded);
                }
                wrote_application_properties = true;
            }
            SectionKind::Data
            | SectionKind::AmqpSequence
            | SectionKind::AmqpValue
            | SectionKind::Footer => {
                if !wrote_properties {
                    write_added_properties(&mut out, stamp)?;
                    wrote_properties = true;
                }
                if !wrote_application_properties {
                    write_added_application_properties(&mut out, stamp)?;
                    wrote_application_properties = true;
                }
                out.extend_from_slice(section.encoded);
            }
        }
    }
    if !wrote_properties {
        write_added_properties(&mut out, stamp)?;
    }
    if !wrote_application_properties {
        write_added_application_properties(&mut out, stamp)?;
    }
    Ok(out)
}

/// A properties section for a payload that had none, when a rule action set a system field.
fn write_added_properties(out: &mut Vec<u8>, stamp: &DeliveryStamp) -> Result<(), MessageError> {
    if let Some(system) = &stamp.system {
        if let Some(bytes) = delivered_properties(None, system)? {
            out.extend_from_slice(&bytes);
        }
    }
    Ok(())
}

/// An application-properties section for a payload that had none, when properties were set.
fn write_added_application_properties(
    out: &mut Vec<u8>,
    stamp: &DeliveryStamp,
) -> Result<(), MessageError> {
    if !stamp.modified_properties.is_empty() {
        out.extend_from_slice(&merged_application_properties(None, stamp)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::messaging::{ApplicationProperties, Body, Message, MessageAnnotations};
    use fe2o3_amqp_types::primitives::Binary;

    fn producer_message() -> Vec<u8> {
        let message = Message::builder()
            .header(Header {
                ttl: Some(60_000),
                durable: true,
                ..Default::default()
            })
            .message_annotations(
                MessageAnnotations::builder()
                    .insert(PARTITION_KEY, Value::String("pk".into()))
                    .insert(SEQUENCE_NUMBER, Value::Long(99))
                    .build(),
            )
            .properties(
                Properties::builder()
                    .message_id(MessageId::String("m-1".into()))
                    .group_id(String::from("s-1"))
                    .correlation_id(MessageId::Ulong(7))
                    .subject("subj")
                    .content_type(Symbol::from("application/json"))
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert("color", "red")
                    .build(),
            )
            .data(Binary::from(b"{\"a\":1}".to_vec()))
            .build();
        serde_amqp::to_vec(&fe2o3_amqp_types::messaging::message::__private::Serializable(message))
            .unwrap()
    }

    #[test]
    fn decodes_system_fields_and_strips_hop_sections() {
        let decoded = decode_message(&producer_message()).unwrap();
        assert_eq!(decoded.message_id.as_deref(), Some("m-1"));
        assert_eq!(decoded.session_id.as_deref(), Some("s-1"));
        assert_eq!(decoded.correlation_id.as_deref(), Some("7"));
        assert_eq!(decoded.partition_key.as_deref(), Some("pk"));
        assert_eq!(decoded.time_to_live_ms, Some(60_000));
        assert_eq!(decoded.subject.as_deref(), Some("subj"));
        assert_eq!(decoded.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            decoded.application_properties,
            vec![("color".into(), Value::String("red".into()))]
        );
        let kinds: Vec<_> = codec::split_sections(&decoded.payload)
            .unwrap()
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                SectionKind::MessageAnnotations,
                SectionKind::Properties,
                SectionKind::ApplicationProperties,
                SectionKind::Data
            ]
        );
        // The producer's x-opt-sequence-number is not kept.
        let annotations = codec::split_sections(&decoded.payload).unwrap()[0]
            .value
            .to_vec();
        let map = decode_map("message-annotations", &annotations).unwrap();
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn delivery_has_full_header_and_broker_annotations() {
        let decoded = decode_message(&producer_message()).unwrap();
        let token = uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let stamp = DeliveryStamp {
            sequence_number: 42,
            enqueued_time_ms: 1_700_000_000_000,
            locked_until_ms: Some(1_700_000_060_000),
            lock_token: Some(token),
            delivery_count: 0,
            time_to_live_ms: Some(60_000),
            dead_letter_source: Some("orders".into()),
            modified_properties: vec![
                (DEAD_LETTER_REASON.into(), Value::String("bad".into())),
                ("color".into(), Value::String("blue".into())),
            ],
            ..Default::default()
        };
        let bytes = encode_delivery(&decoded.payload, &stamp).unwrap();
        let sections = codec::split_sections(&bytes).unwrap();
        // Header list has all five fields, delivery-count 0 included.
        assert_eq!(&sections[0].value[..3], &[0xc0, 0x0f, 0x05]);
        assert_eq!(
            &sections[0].value[sections[0].value.len() - 5..],
            &[0x70, 0, 0, 0, 0]
        );
        let message: Message<Body<Value>> = serde_amqp::from_slice::<
            fe2o3_amqp_types::messaging::message::__private::Deserializable<Message<Body<Value>>>,
        >(&bytes)
        .unwrap()
        .0;
        assert_eq!(message.header.unwrap().delivery_count, 0);
        let annotations = message.message_annotations.unwrap();
        assert_eq!(
            annotations.get(
                &SEQUENCE_NUMBER as &dyn fe2o3_amqp_types::messaging::annotations::AnnotationKey
            ),
            Some(&Value::Long(42))
        );
        let props = message.application_properties.unwrap();
        assert_eq!(
            props.get("color"),
            Some(&fe2o3_amqp_types::primitives::SimpleValue::String(
                "blue".into()
            ))
        );
        assert_eq!(
            props.get(DEAD_LETTER_REASON),
            Some(&fe2o3_amqp_types::primitives::SimpleValue::String(
                "bad".into()
            ))
        );
        let delivery_annotations = message.delivery_annotations.unwrap();
        assert_eq!(
            delivery_annotations
                .get(&LOCK_TOKEN as &dyn fe2o3_amqp_types::messaging::annotations::AnnotationKey),
            Some(&Value::Uuid(serde_amqp::primitives::Uuid::from(
                *token.as_bytes()
            )))
        );
    }

    #[test]
    fn splits_a_batch() {
        let one = producer_message();
        let mut outer = Vec::new();
        for _ in 0..3 {
            outer.extend_from_slice(&[0x00, 0x53, 0x75, 0xb0]);
            outer.extend_from_slice(&(one.len() as u32).to_be_bytes());
            outer.extend_from_slice(&one);
        }
        let messages = decode_transfer(BATCH_MESSAGE_FORMAT, &outer).unwrap();
        assert_eq!(messages.len(), 3);
        assert!(messages
            .iter()
            .all(|m| m.message_id.as_deref() == Some("m-1")));
        assert!(decode_transfer(BATCH_MESSAGE_FORMAT, &[]).is_err());
    }

    #[test]
    fn modified_properties_without_existing_application_properties() {
        let bare = [0x00, 0x53, 0x77, 0xa1, 0x01, b'x'];
        let stamp = DeliveryStamp {
            modified_properties: vec![("k".into(), Value::Int(1))],
            ..Default::default()
        };
        let bytes = encode_delivery(&bare, &stamp).unwrap();
        let kinds: Vec<_> = codec::split_sections(&bytes)
            .unwrap()
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                SectionKind::Header,
                SectionKind::MessageAnnotations,
                SectionKind::ApplicationProperties,
                SectionKind::AmqpValue
            ]
        );
    }
}
