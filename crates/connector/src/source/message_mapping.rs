//! Turns a message as azservicebus received it (a raw AMQP 1.0 message) into our
//! [`ReceivedMessage`].
//!
//! We read the raw AMQP sections ourselves rather than through azservicebus's accessors: those
//! `unreachable!()` when a broker annotation has an unexpected type, and a connector must not
//! panic on what arrives from the network. Where Service Bus guarantees a property (sequence
//! number, enqueued time) and it is missing or mistyped, we log and fall back instead.
//!
//! Bodies: Service Bus SDKs send either one or more `data` sections (Python, .NET, our sender)
//! or an `amqp-value` (the JavaScript SDK sends a JS object as an AMQP map). `data` sections are
//! concatenated; a string or binary value is taken as is; any other value is rendered as JSON,
//! so a mapping can address its fields the same way whatever SDK produced it.

use azservicebus_amqp_types::messaging::annotations::AnnotationKey;
use azservicebus_amqp_types::messaging::{Body, Message, MessageId};
use azservicebus_amqp_types::primitives::{SimpleValue, Value};
use base64::Engine as _;
use bytes::Bytes;
use time::OffsetDateTime;

use super::{LockToken, PropertyValue, ReceivedMessage};

const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
const LOCKED_UNTIL: &str = "x-opt-locked-until";
const PARTITION_KEY: &str = "x-opt-partition-key";

/// .NET `DateTime` ticks (100 ns) at the Unix epoch; .NET encodes `DateTimeOffset` and `TimeSpan`
/// application properties as described longs of ticks.
const DOTNET_TICKS_AT_UNIX_EPOCH: i64 = 621_355_968_000_000_000;
const DOTNET_DATETIME_OFFSET: &str = "com.microsoft:datetime-offset";
const DOTNET_TIMESPAN: &str = "com.microsoft:timespan";
const DOTNET_URI: &str = "com.microsoft:uri";

/// Maps one received message. `lock_token` is the token azservicebus settles with;
/// `received_at` stands in for a missing enqueued time.
pub(crate) fn map_received_message(
    lock_token: LockToken,
    raw: &Message<Body<Value>>,
    received_at: OffsetDateTime,
) -> ReceivedMessage {
    let sequence_number = match annotation(raw, SEQUENCE_NUMBER) {
        Some(Value::Long(n)) => *n,
        other => {
            tracing::warn!(
                lock_token = %lock_token.0,
                found = ?other,
                "message without a long x-opt-sequence-number; using 0"
            );
            0
        }
    };
    let enqueued_time = match annotation(raw, ENQUEUED_TIME).and_then(timestamp_of) {
        Some(t) => t,
        None => {
            tracing::warn!(
                lock_token = %lock_token.0,
                sequence_number,
                "message without x-opt-enqueued-time; using the time it was received"
            );
            received_at
        }
    };
    let locked_until = annotation(raw, LOCKED_UNTIL).and_then(timestamp_of);
    let partition_key = match annotation(raw, PARTITION_KEY) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let properties = raw.properties.as_ref();
    // The AMQP header counts *previous* deliveries; Service Bus reports the current one too.
    let delivery_count = raw
        .header
        .as_ref()
        .map(|h| h.delivery_count.saturating_add(1))
        .unwrap_or(1);

    ReceivedMessage {
        lock_token,
        body: body_bytes(&raw.body),
        message_id: properties
            .and_then(|p| p.message_id.as_ref())
            .map(message_id_text),
        sequence_number,
        enqueued_time,
        locked_until,
        // Service Bus carries the session id in the AMQP `group-id` property.
        session_id: properties.and_then(|p| p.group_id.clone()),
        correlation_id: properties
            .and_then(|p| p.correlation_id.as_ref())
            .map(message_id_text),
        subject: properties.and_then(|p| p.subject.clone()),
        content_type: properties
            .and_then(|p| p.content_type.as_ref())
            .map(|s| s.as_str().to_string()),
        partition_key,
        delivery_count,
        application_properties: raw
            .application_properties
            .as_ref()
            .map(|props| {
                props
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), property_value(v)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn annotation<'m>(raw: &'m Message<Body<Value>>, key: &str) -> Option<&'m Value> {
    raw.message_annotations
        .as_ref()?
        .0
        .get(&key as &dyn AnnotationKey)
}

fn timestamp_of(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::Timestamp(t) => from_unix_millis(t.milliseconds()),
        _ => None,
    }
}

fn from_unix_millis(millis: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

fn from_dotnet_ticks(ticks: i64) -> Option<OffsetDateTime> {
    let hundred_nanos = i128::from(ticks) - i128::from(DOTNET_TICKS_AT_UNIX_EPOCH);
    OffsetDateTime::from_unix_timestamp_nanos(hundred_nanos * 100).ok()
}

/// The text form the official SDKs show for a message or correlation id.
fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => hex(b.as_slice()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn body_bytes(body: &Body<Value>) -> Bytes {
    match body {
        Body::Data(sections) => match sections.len() {
            1 => Bytes::copy_from_slice(sections[0].0.as_slice()),
            _ => {
                let mut all = Vec::with_capacity(sections.iter().map(|d| d.0.len()).sum());
                for section in sections.iter() {
                    all.extend_from_slice(section.0.as_slice());
                }
                Bytes::from(all)
            }
        },
        Body::Value(value) => match &value.0 {
            Value::String(s) => Bytes::copy_from_slice(s.as_bytes()),
            Value::Binary(b) => Bytes::copy_from_slice(b.as_slice()),
            Value::Null => Bytes::new(),
            other => Bytes::from(json_of(other).to_string()),
        },
        Body::Sequence(sequences) => {
            let items: Vec<serde_json::Value> = sequences
                .iter()
                .flat_map(|seq| seq.0.iter().map(json_of))
                .collect();
            Bytes::from(serde_json::Value::Array(items).to_string())
        }
        Body::Empty => Bytes::new(),
    }
}

/// JSON rendering of an AMQP value, for `amqp-value` bodies. Types JSON lacks become strings:
/// timestamps as RFC 3339, uuids in canonical form, binary as base64.
fn json_of(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Ubyte(n) => J::from(*n),
        Value::Ushort(n) => J::from(*n),
        Value::Uint(n) => J::from(*n),
        Value::Ulong(n) => J::from(*n),
        Value::Byte(n) => J::from(*n),
        Value::Short(n) => J::from(*n),
        Value::Int(n) => J::from(*n),
        Value::Long(n) => J::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(f.into_inner()))
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Double(f) => serde_json::Number::from_f64(f.into_inner())
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Decimal32(_) | Value::Decimal64(_) | Value::Decimal128(_) => {
            // IEEE 754 decimal has no lossless JSON form and no SDK sends it in a body.
            J::Null
        }
        Value::Char(c) => J::String(c.to_string()),
        Value::Timestamp(t) => from_unix_millis(t.milliseconds())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(J::String)
            .unwrap_or(J::Null),
        Value::Uuid(u) => J::String(uuid::Uuid::from_bytes(*u.as_inner()).to_string()),
        Value::Binary(b) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        Value::String(s) => J::String(s.clone()),
        Value::Symbol(s) => J::String(s.as_str().to_string()),
        Value::List(items) => J::Array(items.iter().map(json_of).collect()),
        Value::Array(items) => J::Array(items.0.iter().map(json_of).collect()),
        Value::Map(map) => J::Object(map.iter().map(|(k, v)| (json_key(k), json_of(v))).collect()),
        Value::Described(described) => json_of(&described.value),
    }
}

fn json_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Symbol(s) => s.as_str().to_string(),
        other => match json_of(other) {
            serde_json::Value::String(s) => s,
            rendered => rendered.to_string(),
        },
    }
}

fn property_value(value: &SimpleValue) -> PropertyValue {
    match value {
        SimpleValue::Null => PropertyValue::Null,
        SimpleValue::Bool(b) => PropertyValue::Bool(*b),
        SimpleValue::Ubyte(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Ushort(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Uint(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Ulong(n) => match i64::try_from(*n) {
            Ok(n) => PropertyValue::Long(n),
            // Beyond i64: keep every digit rather than round through a double.
            Err(_) => PropertyValue::String(n.to_string()),
        },
        SimpleValue::Byte(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Short(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Int(n) => PropertyValue::Long(i64::from(*n)),
        SimpleValue::Long(n) => PropertyValue::Long(*n),
        SimpleValue::Float(f) => PropertyValue::Double(f64::from(f.into_inner())),
        SimpleValue::Double(f) => PropertyValue::Double(f.into_inner()),
        SimpleValue::Decimal32(_) | SimpleValue::Decimal64(_) | SimpleValue::Decimal128(_) => {
            PropertyValue::Null
        }
        SimpleValue::Char(c) => PropertyValue::String(c.to_string()),
        SimpleValue::Timestamp(t) => from_unix_millis(t.milliseconds())
            .map(PropertyValue::Timestamp)
            .unwrap_or(PropertyValue::Null),
        SimpleValue::Uuid(u) => PropertyValue::Uuid(uuid::Uuid::from_bytes(*u.as_inner())),
        SimpleValue::Binary(b) => PropertyValue::Binary(Bytes::copy_from_slice(b.as_slice())),
        SimpleValue::String(s) => PropertyValue::String(s.clone()),
        SimpleValue::Symbol(s) => PropertyValue::String(s.as_str().to_string()),
        SimpleValue::Described(described) => dotnet_described_property(described),
    }
}

/// .NET sends `DateTimeOffset`, `TimeSpan` and `Uri` properties as described types.
fn dotnet_described_property(
    described: &azservicebus_serde_amqp::described::Described<Value>,
) -> PropertyValue {
    use azservicebus_serde_amqp::descriptor::Descriptor;
    let name = match &described.descriptor {
        Descriptor::Name(name) => name.as_str(),
        Descriptor::Code(_) => "",
    };
    match (name, &described.value) {
        (DOTNET_DATETIME_OFFSET, Value::Long(ticks)) => from_dotnet_ticks(*ticks)
            .map(PropertyValue::Timestamp)
            .unwrap_or(PropertyValue::Null),
        // A TimeSpan becomes its length in milliseconds.
        (DOTNET_TIMESPAN, Value::Long(ticks)) => PropertyValue::Long(ticks / 10_000),
        (DOTNET_URI, Value::String(uri)) => PropertyValue::String(uri.clone()),
        _ => PropertyValue::Null,
    }
}

/// Application properties in the form a sender passes to azservicebus.
pub(crate) fn simple_value_of(value: &PropertyValue) -> SimpleValue {
    use azservicebus_amqp_types::primitives::Timestamp;
    match value {
        PropertyValue::Null => SimpleValue::Null,
        PropertyValue::Bool(b) => SimpleValue::Bool(*b),
        PropertyValue::Long(n) => SimpleValue::Long(*n),
        PropertyValue::Double(f) => SimpleValue::from(*f),
        PropertyValue::String(s) => SimpleValue::String(s.clone()),
        PropertyValue::Timestamp(t) => {
            let millis = (t.unix_timestamp_nanos() / 1_000_000)
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            SimpleValue::Timestamp(Timestamp::from_milliseconds(millis as i64))
        }
        PropertyValue::Uuid(u) => SimpleValue::Uuid(
            azservicebus_amqp_types::primitives::Uuid::from(*u.as_bytes()),
        ),
        PropertyValue::Binary(b) => SimpleValue::Binary(b.to_vec().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azservicebus_amqp_types::messaging::annotations::OwnedKey;
    use azservicebus_amqp_types::messaging::{
        AmqpValue, ApplicationProperties, Data, Header, MessageAnnotations, Properties,
    };
    use azservicebus_amqp_types::primitives::{OrderedMap, Symbol, Timestamp};
    use azservicebus_serde_amqp::described::Described;
    use azservicebus_serde_amqp::descriptor::Descriptor;

    fn token() -> LockToken {
        LockToken(uuid::Uuid::from_u128(7))
    }

    fn full_message(body: Body<Value>) -> Message<Body<Value>> {
        let mut annotations = OrderedMap::new();
        annotations.insert(OwnedKey::from(SEQUENCE_NUMBER), Value::Long(42));
        annotations.insert(
            OwnedKey::from(ENQUEUED_TIME),
            Value::Timestamp(Timestamp::from_milliseconds(1_795_000_000_123)),
        );
        annotations.insert(
            OwnedKey::from(LOCKED_UNTIL),
            Value::Timestamp(Timestamp::from_milliseconds(1_795_000_060_123)),
        );
        annotations.insert(OwnedKey::from(PARTITION_KEY), Value::String("pk-1".into()));
        let mut app = OrderedMap::new();
        app.insert("tenant".to_string(), SimpleValue::String("acme".into()));
        app.insert("attempt".to_string(), SimpleValue::Int(3));
        app.insert("big".to_string(), SimpleValue::Ulong(u64::MAX));
        app.insert("ratio".to_string(), SimpleValue::from(0.5f64));
        app.insert(
            "at".to_string(),
            SimpleValue::Timestamp(Timestamp::from_milliseconds(1_000)),
        );
        app.insert(
            "when".to_string(),
            SimpleValue::Described(Box::new(Described {
                descriptor: Descriptor::Name(Symbol::from(DOTNET_DATETIME_OFFSET)),
                value: Value::Long(DOTNET_TICKS_AT_UNIX_EPOCH + 20_000),
            })),
        );
        Message {
            header: Some(Header {
                delivery_count: 1,
                ..Default::default()
            }),
            delivery_annotations: None,
            message_annotations: Some(MessageAnnotations(annotations)),
            properties: Some(Properties {
                message_id: Some(MessageId::String("m-1".into())),
                correlation_id: Some(MessageId::Ulong(99)),
                subject: Some("telemetry".into()),
                content_type: Some(Symbol::from("application/json")),
                group_id: Some("session-3".into()),
                ..Default::default()
            }),
            application_properties: Some(ApplicationProperties(app)),
            body,
            footer: None,
        }
    }

    #[test]
    fn maps_every_broker_and_application_property() {
        let body = Body::Data(vec![Data(br#"{"a":1}"#.to_vec().into())].into());
        let raw = full_message(body);
        let m = map_received_message(token(), &raw, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(m.lock_token, token());
        assert_eq!(&m.body[..], br#"{"a":1}"#);
        assert_eq!(m.message_id.as_deref(), Some("m-1"));
        assert_eq!(m.sequence_number, 42);
        assert_eq!(
            m.enqueued_time.unix_timestamp_nanos(),
            1_795_000_000_123_000_000
        );
        assert_eq!(
            m.locked_until.map(|t| t.unix_timestamp_nanos()),
            Some(1_795_000_060_123_000_000)
        );
        assert_eq!(m.session_id.as_deref(), Some("session-3"));
        assert_eq!(m.correlation_id.as_deref(), Some("99"));
        assert_eq!(m.subject.as_deref(), Some("telemetry"));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.partition_key.as_deref(), Some("pk-1"));
        assert_eq!(m.delivery_count, 2, "header counts previous deliveries");
        let p = &m.application_properties;
        assert_eq!(p["tenant"], PropertyValue::String("acme".into()));
        assert_eq!(p["attempt"], PropertyValue::Long(3));
        assert_eq!(p["big"], PropertyValue::String(u64::MAX.to_string()));
        assert_eq!(p["ratio"], PropertyValue::Double(0.5));
        assert_eq!(
            p["at"],
            PropertyValue::Timestamp(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1))
        );
        assert_eq!(
            p["when"],
            PropertyValue::Timestamp(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(2))
        );
    }

    #[test]
    fn missing_broker_annotations_fall_back_without_panicking() {
        let mut raw = full_message(Body::Empty);
        raw.message_annotations = None;
        raw.header = None;
        raw.properties = None;
        let received_at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let m = map_received_message(token(), &raw, received_at);
        assert_eq!(m.sequence_number, 0);
        assert_eq!(m.enqueued_time, received_at);
        assert_eq!(m.locked_until, None);
        assert_eq!(m.delivery_count, 1);
        assert!(m.body.is_empty());
        assert_eq!(m.message_id, None);

        // Mistyped annotations are treated as missing, not as a crash.
        let mut annotations = OrderedMap::new();
        annotations.insert(OwnedKey::from(SEQUENCE_NUMBER), Value::String("x".into()));
        annotations.insert(OwnedKey::from(ENQUEUED_TIME), Value::Long(5));
        annotations.insert(OwnedKey::from(LOCKED_UNTIL), Value::Bool(true));
        raw.message_annotations = Some(MessageAnnotations(annotations));
        let m = map_received_message(token(), &raw, received_at);
        assert_eq!(m.sequence_number, 0);
        assert_eq!(m.enqueued_time, received_at);
        assert_eq!(m.locked_until, None);
    }

    #[test]
    fn bodies_of_every_sdk_become_bytes() {
        let two_sections =
            Body::Data(vec![Data(b"ab".to_vec().into()), Data(b"cd".to_vec().into())].into());
        assert_eq!(&body_bytes(&two_sections)[..], b"abcd");

        let text = Body::Value(AmqpValue(Value::String("{\"x\":1}".into())));
        assert_eq!(&body_bytes(&text)[..], b"{\"x\":1}");

        // What @azure/service-bus sends for `body: { device_id: "d", temperature: 21.5, tags: [1] }`.
        let mut map = OrderedMap::new();
        map.insert(Value::String("device_id".into()), Value::String("d".into()));
        map.insert(Value::String("temperature".into()), Value::from(21.5f64));
        map.insert(
            Value::String("tags".into()),
            Value::List(vec![Value::Int(1)]),
        );
        let js = Body::Value(AmqpValue(Value::Map(map)));
        let parsed: serde_json::Value = serde_json::from_slice(&body_bytes(&js)).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"device_id": "d", "temperature": 21.5, "tags": [1]})
        );
    }

    #[test]
    fn message_ids_render_like_the_sdks() {
        let u = uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let id = MessageId::Uuid(azservicebus_amqp_types::primitives::Uuid::from(
            *u.as_bytes(),
        ));
        assert_eq!(message_id_text(&id), "01020304-0506-0708-090a-0b0c0d0e0f10");
        assert_eq!(
            message_id_text(&MessageId::Binary(vec![0xab, 0x01].into())),
            "ab01"
        );
    }

    #[test]
    fn property_values_round_trip_through_the_sender_form() {
        let values = [
            PropertyValue::Null,
            PropertyValue::Bool(true),
            PropertyValue::Long(-5),
            PropertyValue::Double(2.25),
            PropertyValue::String("s".into()),
            PropertyValue::Timestamp(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(9)),
            PropertyValue::Uuid(uuid::Uuid::from_u128(12345)),
            PropertyValue::Binary(Bytes::from_static(b"\x00\x01")),
        ];
        for value in values {
            assert_eq!(property_value(&simple_value_of(&value)), value);
        }
    }
}
