//! Conversions between AMQP values and the broker's AMQP-free [`PropertyValue`].

use busdrain_broker::{PropertyMap, PropertyValue, Timestamp};
use serde_amqp::primitives::{Symbol, Timestamp as AmqpTimestamp, Uuid as AmqpUuid};
use serde_amqp::Value;

use crate::message::key_text;

/// The broker's form of an application property value; `None` for AMQP types Service Bus
/// does not allow in application properties (lists, maps, arrays, described values).
pub fn from_amqp(value: &Value) -> Option<PropertyValue> {
    Some(match value {
        Value::Null => PropertyValue::Null,
        Value::Bool(b) => PropertyValue::Bool(*b),
        Value::Ubyte(v) => PropertyValue::UByte(*v),
        Value::Ushort(v) => PropertyValue::UShort(*v),
        Value::Uint(v) => PropertyValue::UInt(*v),
        Value::Ulong(v) => PropertyValue::ULong(*v),
        Value::Byte(v) => PropertyValue::Byte(*v),
        Value::Short(v) => PropertyValue::Short(*v),
        Value::Int(v) => PropertyValue::Int(*v),
        Value::Long(v) => PropertyValue::Long(*v),
        Value::Float(v) => PropertyValue::Float(v.into_inner()),
        Value::Double(v) => PropertyValue::Double(v.into_inner()),
        Value::Char(c) => PropertyValue::Char(*c),
        Value::Timestamp(t) => {
            PropertyValue::Timestamp(Timestamp::from_unix_millis(t.milliseconds()))
        }
        Value::Uuid(u) => PropertyValue::Uuid(uuid::Uuid::from_bytes(*u.as_inner())),
        Value::Binary(b) => PropertyValue::Binary(bytes::Bytes::copy_from_slice(b)),
        Value::String(s) => PropertyValue::String(s.clone()),
        Value::Symbol(s) => PropertyValue::Symbol(s.0.clone()),
        _ => return None,
    })
}

/// The AMQP encoding of a broker property value, with the type it arrived with.
pub fn to_amqp(value: &PropertyValue) -> Value {
    match value {
        PropertyValue::Null => Value::Null,
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::UByte(v) => Value::Ubyte(*v),
        PropertyValue::UShort(v) => Value::Ushort(*v),
        PropertyValue::UInt(v) => Value::Uint(*v),
        PropertyValue::ULong(v) => Value::Ulong(*v),
        PropertyValue::Byte(v) => Value::Byte(*v),
        PropertyValue::Short(v) => Value::Short(*v),
        PropertyValue::Int(v) => Value::Int(*v),
        PropertyValue::Long(v) => Value::Long(*v),
        PropertyValue::Float(v) => Value::Float((*v).into()),
        PropertyValue::Double(v) => Value::Double((*v).into()),
        PropertyValue::Char(c) => Value::Char(*c),
        PropertyValue::Timestamp(t) => {
            Value::Timestamp(AmqpTimestamp::from_milliseconds(t.as_unix_millis()))
        }
        PropertyValue::Uuid(u) => Value::Uuid(AmqpUuid::from(*u.as_bytes())),
        PropertyValue::Binary(b) => Value::Binary(serde_bytes::ByteBuf::from(b.to_vec())),
        PropertyValue::String(s) => Value::String(s.clone()),
        PropertyValue::Symbol(s) => Value::Symbol(Symbol::from(s.as_str())),
        // A removal marker has no value; `property_pairs` leaves it out.
        PropertyValue::Removed => Value::Null,
    }
}

/// A map of properties to modify as sent by a client (string or symbol keys); entries whose
/// key is not text or whose value is not a simple type are dropped.
pub fn property_map_from_amqp<'a>(
    entries: impl IntoIterator<Item = (&'a Value, &'a Value)>,
) -> PropertyMap {
    entries
        .into_iter()
        .filter_map(|(k, v)| Some((key_text(k)?.to_string(), from_amqp(v)?)))
        .collect()
}

/// Decoded application properties as the broker's map; non-simple values are dropped.
pub fn property_map_from_pairs(pairs: &[(String, Value)]) -> PropertyMap {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), from_amqp(v)?)))
        .collect()
}

/// The properties a modification map sets, as `(name, AMQP value)` pairs for the message
/// encoder (removals are left out: see [`removed_properties`]).
pub fn property_pairs(map: &PropertyMap) -> Vec<(String, Value)> {
    map.iter()
        .filter(|(_, v)| **v != PropertyValue::Removed)
        .map(|(k, v)| (k.clone(), to_amqp(v)))
        .collect()
}

/// The properties a modification map removes (a rule action's `REMOVE`).
pub fn removed_properties(map: &PropertyMap) -> Vec<String> {
    map.iter()
        .filter(|(_, v)| **v == PropertyValue::Removed)
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_simple_type() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Ubyte(1),
            Value::Ushort(2),
            Value::Uint(3),
            Value::Ulong(4),
            Value::Byte(-1),
            Value::Short(-2),
            Value::Int(-3),
            Value::Long(-4),
            Value::Double(1.5.into()),
            Value::Char('x'),
            Value::Timestamp(AmqpTimestamp::from_milliseconds(5)),
            Value::Uuid(AmqpUuid::from([9u8; 16])),
            Value::Binary(serde_bytes::ByteBuf::from(vec![1, 2])),
            Value::String("s".into()),
            Value::Symbol(Symbol::from("y")),
        ];
        for value in values {
            let converted = from_amqp(&value).unwrap();
            assert_eq!(to_amqp(&converted), value);
        }
        assert!(from_amqp(&Value::List(vec![])).is_none());
    }

    #[test]
    fn removals_are_split_from_values() {
        let map: PropertyMap = [
            ("kept".to_owned(), PropertyValue::Null),
            ("gone".to_owned(), PropertyValue::Removed),
        ]
        .into_iter()
        .collect();
        assert_eq!(property_pairs(&map), vec![("kept".to_owned(), Value::Null)]);
        assert_eq!(removed_properties(&map), vec!["gone".to_owned()]);
    }
}
