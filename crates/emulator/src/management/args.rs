//! Typed reads of request arguments; every mismatch is an [`ArgumentError`], never a panic.

use serde_amqp::Value;

use crate::request::Request;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("the request lacks `{0}`")]
    Missing(&'static str),
    #[error("`{0}` has the wrong type; expected {1}")]
    WrongType(&'static str, &'static str),
}

pub(crate) fn required<'a>(
    request: &'a Request,
    name: &'static str,
) -> Result<&'a Value, ArgumentError> {
    match request.body_entry(name) {
        Some(Value::Null) | None => Err(ArgumentError::Missing(name)),
        Some(value) => Ok(value),
    }
}

/// A present, non-null entry.
pub(crate) fn optional<'a>(request: &'a Request, name: &'static str) -> Option<&'a Value> {
    request
        .body_entry(name)
        .filter(|v| !matches!(v, Value::Null))
}

pub(crate) fn as_i64(value: &Value, name: &'static str) -> Result<i64, ArgumentError> {
    let wrong = || ArgumentError::WrongType(name, "an integer");
    Ok(match value {
        Value::Long(v) => *v,
        Value::Int(v) => i64::from(*v),
        Value::Short(v) => i64::from(*v),
        Value::Byte(v) => i64::from(*v),
        Value::Ulong(v) => i64::try_from(*v).map_err(|_| wrong())?,
        Value::Uint(v) => i64::from(*v),
        Value::Ushort(v) => i64::from(*v),
        Value::Ubyte(v) => i64::from(*v),
        _ => return Err(wrong()),
    })
}

pub(crate) fn as_text(value: &Value, name: &'static str) -> Result<String, ArgumentError> {
    crate::message::value_text(value).ok_or(ArgumentError::WrongType(name, "a string"))
}

/// The items of an AMQP array or list.
pub(crate) fn items<'a>(
    value: &'a Value,
    name: &'static str,
) -> Result<&'a [Value], ArgumentError> {
    match value {
        Value::Array(array) => Ok(array.as_slice()),
        Value::List(list) => Ok(list.as_slice()),
        _ => Err(ArgumentError::WrongType(name, "an array")),
    }
}

pub(crate) fn uuids(value: &Value, name: &'static str) -> Result<Vec<uuid::Uuid>, ArgumentError> {
    items(value, name)?
        .iter()
        .map(|item| match item {
            Value::Uuid(u) => Ok(uuid::Uuid::from_bytes(*u.as_inner())),
            _ => Err(ArgumentError::WrongType(name, "an array of uuid")),
        })
        .collect()
}

pub(crate) fn longs(value: &Value, name: &'static str) -> Result<Vec<i64>, ArgumentError> {
    items(value, name)?
        .iter()
        .map(|item| as_i64(item, name))
        .collect()
}
