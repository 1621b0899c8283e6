//! Coercion of message values (JSON, application properties, broker properties) into CQL values.
//!
//! The rules are lenient where the intent is unambiguous (a numeric string into an `int`, an
//! integer into a `double`, an object into a `text` column as JSON) and strict where a silent
//! guess would corrupt data (a fractional number into an `int`, a timestamp without a zone, an
//! out-of-range integer).

use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine;
use num_bigint::BigInt;
use scylla::cluster::metadata::{CollectionType, ColumnType, NativeType};
use scylla::value::{
    CqlDate, CqlDecimal, CqlDuration, CqlTime, CqlTimestamp, CqlTimeuuid, CqlValue, CqlVarint,
};
use serde_json::Value as Json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// A value taken from a message, before it is given a CQL type.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Null,
    Json(&'a Json),
    Text(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(OffsetDateTime),
    Uuid(Uuid),
    Bytes(&'a [u8]),
}

/// Why a value cannot become the column's type. The message names the expected type and, for
/// nested values, the path inside the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoerceError {
    TypeMismatch(String),
    OutOfRange(String),
}

impl CoerceError {
    fn nested(self, step: &str) -> Self {
        match self {
            CoerceError::TypeMismatch(m) => CoerceError::TypeMismatch(format!("{step}: {m}")),
            CoerceError::OutOfRange(m) => CoerceError::OutOfRange(format!("{step}: {m}")),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CoerceError::TypeMismatch(m) | CoerceError::OutOfRange(m) => m,
        }
    }
}

const EXCERPT_CHARS: usize = 64;

/// At most 64 characters of a value, for error messages and dead-letter descriptions.
pub fn excerpt(input: &Input<'_>) -> String {
    let full = match input {
        Input::Null => "null".to_owned(),
        Input::Json(v) => v.to_string(),
        Input::Text(s) => format!("{s:?}"),
        Input::Int(i) => i.to_string(),
        Input::Float(f) => f.to_string(),
        Input::Bool(b) => b.to_string(),
        Input::Timestamp(t) => t.format(&Rfc3339).unwrap_or_else(|_| format!("{t}")),
        Input::Uuid(u) => u.to_string(),
        Input::Bytes(b) => format!("<{} bytes>", b.len()),
    };
    truncate_chars(&full, EXCERPT_CHARS)
}

/// Cuts a string to `max` characters, marking the cut with `…`.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut short: String = s.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// The CQL spelling of a type, for messages (`map<text, frozen<list<int>>>`).
pub fn type_name(typ: &ColumnType<'_>) -> String {
    match typ {
        ColumnType::Native(n) => native_name(n).to_owned(),
        ColumnType::Collection { frozen, typ } => {
            let inner = match typ {
                CollectionType::List(t) => format!("list<{}>", type_name(t)),
                CollectionType::Set(t) => format!("set<{}>", type_name(t)),
                CollectionType::Map(k, v) => format!("map<{}, {}>", type_name(k), type_name(v)),
                _ => "collection".to_owned(),
            };
            if *frozen {
                format!("frozen<{inner}>")
            } else {
                inner
            }
        }
        ColumnType::Vector { typ, dimensions } => {
            format!("vector<{}, {dimensions}>", type_name(typ))
        }
        ColumnType::UserDefinedType { frozen, definition } => {
            if *frozen {
                format!("frozen<{}>", definition.name)
            } else {
                definition.name.to_string()
            }
        }
        ColumnType::Tuple(items) => format!(
            "tuple<{}>",
            items.iter().map(type_name).collect::<Vec<_>>().join(", ")
        ),
        _ => "unknown".to_owned(),
    }
}

fn native_name(n: &NativeType) -> &'static str {
    match n {
        NativeType::Ascii => "ascii",
        NativeType::Boolean => "boolean",
        NativeType::Blob => "blob",
        NativeType::Counter => "counter",
        NativeType::Date => "date",
        NativeType::Decimal => "decimal",
        NativeType::Double => "double",
        NativeType::Duration => "duration",
        NativeType::Float => "float",
        NativeType::Int => "int",
        NativeType::BigInt => "bigint",
        NativeType::Text => "text",
        NativeType::Timestamp => "timestamp",
        NativeType::Inet => "inet",
        NativeType::SmallInt => "smallint",
        NativeType::TinyInt => "tinyint",
        NativeType::Time => "time",
        NativeType::Timeuuid => "timeuuid",
        NativeType::Uuid => "uuid",
        NativeType::Varint => "varint",
        _ => "unknown",
    }
}

fn mismatch(typ: &ColumnType<'_>, input: &Input<'_>) -> CoerceError {
    CoerceError::TypeMismatch(format!(
        "expected {}, found {}",
        type_name(typ),
        kind_of(input)
    ))
}

fn kind_of(input: &Input<'_>) -> String {
    match input {
        Input::Null => "null".into(),
        Input::Json(Json::Null) => "null".into(),
        Input::Json(Json::Bool(_)) | Input::Bool(_) => "a boolean".into(),
        Input::Json(Json::Number(_)) | Input::Int(_) | Input::Float(_) => "a number".into(),
        Input::Json(Json::String(s)) => format!("the string {}", excerpt(&Input::Text(s))),
        Input::Text(s) => format!("the string {}", excerpt(&Input::Text(s))),
        Input::Json(Json::Array(_)) => "an array".into(),
        Input::Json(Json::Object(_)) => "an object".into(),
        Input::Timestamp(_) => "a timestamp".into(),
        Input::Uuid(_) => "a uuid".into(),
        Input::Bytes(_) => "binary data".into(),
    }
}

/// JSON scalars become the plain inputs, so each type's rules are written once.
fn normalize(input: Input<'_>) -> Input<'_> {
    match input {
        Input::Json(Json::Null) => Input::Null,
        Input::Json(Json::Bool(b)) => Input::Bool(*b),
        Input::Json(Json::String(s)) => Input::Text(s),
        Input::Json(Json::Number(n)) => match n.as_i64() {
            Some(i) => Input::Int(i),
            None => Input::Json(input_json(input)),
        },
        other => other,
    }
}

fn input_json<'a>(input: Input<'a>) -> &'a Json {
    match input {
        Input::Json(j) => j,
        _ => &Json::Null,
    }
}

/// Coerces one value to a column type. `Ok(None)` means null.
pub fn coerce(input: Input<'_>, typ: &ColumnType<'_>) -> Result<Option<CqlValue>, CoerceError> {
    let input = normalize(input);
    if matches!(input, Input::Null) {
        return Ok(None);
    }
    match typ {
        ColumnType::Native(n) => coerce_native(input, n, typ).map(Some),
        ColumnType::Collection { typ: coll, .. } => {
            let doc = composite_json(input, typ)?;
            coerce_collection(&doc, coll, typ).map(Some)
        }
        ColumnType::Vector {
            typ: elem,
            dimensions,
        } => {
            let doc = composite_json(input, typ)?;
            let items = doc
                .as_array()
                .ok_or_else(|| mismatch(typ, &Input::Json(&doc)))?;
            if items.len() != usize::from(*dimensions) {
                return Err(CoerceError::TypeMismatch(format!(
                    "expected {} elements for {}, found {}",
                    dimensions,
                    type_name(typ),
                    items.len()
                )));
            }
            let values = non_null_elements(items, elem)?;
            Ok(Some(CqlValue::Vector(values)))
        }
        ColumnType::Tuple(types) => {
            let doc = composite_json(input, typ)?;
            let items = doc
                .as_array()
                .ok_or_else(|| mismatch(typ, &Input::Json(&doc)))?;
            if items.len() != types.len() {
                return Err(CoerceError::TypeMismatch(format!(
                    "expected {} elements for {}, found {}",
                    types.len(),
                    type_name(typ),
                    items.len()
                )));
            }
            let values = items
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, t))| {
                    coerce(Input::Json(v), t).map_err(|e| e.nested(&format!("[{i}]")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(CqlValue::Tuple(values)))
        }
        ColumnType::UserDefinedType { definition, .. } => {
            let doc = composite_json(input, typ)?;
            let object = doc
                .as_object()
                .ok_or_else(|| mismatch(typ, &Input::Json(&doc)))?;
            // Fields the type does not have are ignored (bodies often carry more than a
            // table stores); fields the body lacks are null.
            let fields = definition
                .field_types
                .iter()
                .map(|(name, t)| {
                    let value = match object.get(name.as_ref()) {
                        Some(v) => coerce(Input::Json(v), t).map_err(|e| e.nested(name))?,
                        None => None,
                    };
                    Ok((name.to_string(), value))
                })
                .collect::<Result<Vec<_>, CoerceError>>()?;
            Ok(Some(CqlValue::UserDefinedType {
                keyspace: definition.keyspace.to_string(),
                name: definition.name.to_string(),
                fields,
            }))
        }
        _ => Err(CoerceError::TypeMismatch(format!(
            "columns of type {} are not supported",
            type_name(typ)
        ))),
    }
}

/// A composite value arrives as JSON, or as a string holding JSON (an application property).
fn composite_json(input: Input<'_>, typ: &ColumnType<'_>) -> Result<Json, CoerceError> {
    match input {
        Input::Json(j) => Ok(j.clone()),
        Input::Text(s) => serde_json::from_str(s).map_err(|_| {
            CoerceError::TypeMismatch(format!(
                "expected {} (JSON), found {}",
                type_name(typ),
                kind_of(&input)
            ))
        }),
        other => Err(mismatch(typ, &other)),
    }
}

fn non_null_elements(items: &[Json], elem: &ColumnType<'_>) -> Result<Vec<CqlValue>, CoerceError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match coerce(Input::Json(v), elem) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(CoerceError::TypeMismatch(format!(
                "[{i}]: collections cannot hold null"
            ))),
            Err(e) => Err(e.nested(&format!("[{i}]"))),
        })
        .collect()
}

fn coerce_collection(
    doc: &Json,
    coll: &CollectionType<'_>,
    typ: &ColumnType<'_>,
) -> Result<CqlValue, CoerceError> {
    match coll {
        CollectionType::List(elem) => {
            let items = doc
                .as_array()
                .ok_or_else(|| mismatch(typ, &Input::Json(doc)))?;
            Ok(CqlValue::List(non_null_elements(items, elem)?))
        }
        CollectionType::Set(elem) => {
            let items = doc
                .as_array()
                .ok_or_else(|| mismatch(typ, &Input::Json(doc)))?;
            Ok(CqlValue::Set(non_null_elements(items, elem)?))
        }
        CollectionType::Map(key_type, value_type) => {
            let object = doc
                .as_object()
                .ok_or_else(|| mismatch(typ, &Input::Json(doc)))?;
            let entries = object
                .iter()
                .map(|(k, v)| {
                    let key = coerce(Input::Text(k), key_type)
                        .map_err(|e| e.nested(&format!("key {k:?}")))?
                        .ok_or_else(|| {
                            CoerceError::TypeMismatch("map keys cannot be null".into())
                        })?;
                    let value = coerce(Input::Json(v), value_type)
                        .map_err(|e| e.nested(&format!("[{k:?}]")))?
                        .ok_or_else(|| {
                            CoerceError::TypeMismatch(format!("[{k:?}]: map values cannot be null"))
                        })?;
                    Ok((key, value))
                })
                .collect::<Result<Vec<_>, CoerceError>>()?;
            Ok(CqlValue::Map(entries))
        }
        _ => Err(CoerceError::TypeMismatch(format!(
            "{} is not supported",
            type_name(typ)
        ))),
    }
}

fn out_of_range(typ: &ColumnType<'_>, shown: impl std::fmt::Display) -> CoerceError {
    CoerceError::OutOfRange(format!("{shown} does not fit in {}", type_name(typ)))
}

/// A whole number from an integer, an integral float or a numeric string.
fn whole_number(input: Input<'_>, typ: &ColumnType<'_>) -> Result<i128, CoerceError> {
    match input {
        Input::Int(i) => Ok(i128::from(i)),
        Input::Json(Json::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                float_to_whole(f, typ)
            }
        }
        Input::Float(f) => float_to_whole(f, typ),
        Input::Text(s) => {
            let t = s.trim();
            t.parse::<i128>().or_else(|_| {
                let f: f64 = t.parse().map_err(|_| mismatch(typ, &input))?;
                float_to_whole(f, typ)
            })
        }
        other => Err(mismatch(typ, &other)),
    }
}

fn float_to_whole(f: f64, typ: &ColumnType<'_>) -> Result<i128, CoerceError> {
    if !f.is_finite() {
        return Err(out_of_range(typ, f));
    }
    if f.fract() != 0.0 {
        return Err(CoerceError::TypeMismatch(format!(
            "expected {}, found the fractional number {f}",
            type_name(typ)
        )));
    }
    if f.abs() >= 1.7e38 {
        return Err(out_of_range(typ, f));
    }
    Ok(f as i128)
}

fn fixed_int<T: TryFrom<i128>>(input: Input<'_>, typ: &ColumnType<'_>) -> Result<T, CoerceError> {
    let n = whole_number(input, typ)?;
    T::try_from(n).map_err(|_| out_of_range(typ, n))
}

fn float_of(input: Input<'_>, typ: &ColumnType<'_>) -> Result<f64, CoerceError> {
    match input {
        Input::Int(i) => Ok(i as f64),
        Input::Float(f) => Ok(f),
        Input::Json(Json::Number(n)) => n.as_f64().ok_or_else(|| mismatch(typ, &input)),
        Input::Text(s) => s.trim().parse::<f64>().map_err(|_| mismatch(typ, &input)),
        other => Err(mismatch(typ, &other)),
    }
}

fn coerce_native(
    input: Input<'_>,
    native: &NativeType,
    typ: &ColumnType<'_>,
) -> Result<CqlValue, CoerceError> {
    match native {
        NativeType::Text => Ok(CqlValue::Text(as_text(input, typ)?)),
        NativeType::Ascii => {
            let text = as_text(input, typ)?;
            if !text.is_ascii() {
                return Err(CoerceError::TypeMismatch(format!(
                    "expected ascii, found non-ASCII text {}",
                    excerpt(&Input::Text(&text))
                )));
            }
            Ok(CqlValue::Ascii(text))
        }
        NativeType::TinyInt => fixed_int::<i8>(input, typ).map(CqlValue::TinyInt),
        NativeType::SmallInt => fixed_int::<i16>(input, typ).map(CqlValue::SmallInt),
        NativeType::Int => fixed_int::<i32>(input, typ).map(CqlValue::Int),
        NativeType::BigInt => match input {
            Input::Timestamp(t) => Ok(CqlValue::BigInt(epoch_millis(t))),
            other => fixed_int::<i64>(other, typ).map(CqlValue::BigInt),
        },
        NativeType::Varint => {
            let big = match input {
                Input::Text(s) => BigInt::from_str(s.trim()).map_err(|_| mismatch(typ, &input))?,
                other => BigInt::from(whole_number(other, typ)?),
            };
            Ok(CqlValue::Varint(CqlVarint::from_signed_bytes_be(
                big.to_signed_bytes_be(),
            )))
        }
        NativeType::Float => {
            let f = float_of(input, typ)?;
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(out_of_range(typ, f));
            }
            Ok(CqlValue::Float(f as f32))
        }
        NativeType::Double => float_of(input, typ).map(CqlValue::Double),
        NativeType::Decimal => {
            let text = match input {
                Input::Int(i) => i.to_string(),
                Input::Float(f) => f.to_string(),
                Input::Json(Json::Number(n)) => n.to_string(),
                Input::Text(s) => s.trim().to_owned(),
                other => return Err(mismatch(typ, &other)),
            };
            parse_decimal(&text).ok_or_else(|| mismatch(typ, &input))
        }
        NativeType::Boolean => match input {
            Input::Bool(b) => Ok(CqlValue::Boolean(b)),
            Input::Int(0) => Ok(CqlValue::Boolean(false)),
            Input::Int(1) => Ok(CqlValue::Boolean(true)),
            Input::Text(s) if s.trim().eq_ignore_ascii_case("true") => Ok(CqlValue::Boolean(true)),
            Input::Text(s) if s.trim().eq_ignore_ascii_case("false") => {
                Ok(CqlValue::Boolean(false))
            }
            other => Err(mismatch(typ, &other)),
        },
        NativeType::Uuid => as_uuid(input, typ).map(CqlValue::Uuid),
        NativeType::Timeuuid => {
            let uuid = as_uuid(input, typ)?;
            if uuid.get_version_num() != 1 {
                return Err(CoerceError::TypeMismatch(format!(
                    "expected timeuuid (a version 1 uuid), found version {} uuid {uuid}",
                    uuid.get_version_num()
                )));
            }
            Ok(CqlValue::Timeuuid(CqlTimeuuid::from_bytes(
                *uuid.as_bytes(),
            )))
        }
        NativeType::Timestamp => {
            as_timestamp(input, typ).map(|t| CqlValue::Timestamp(CqlTimestamp(epoch_millis(t))))
        }
        NativeType::Date => {
            let date = match input {
                Input::Timestamp(t) => t.to_offset(time::UtcOffset::UTC).date(),
                Input::Text(s) => {
                    let format = time::macros::format_description!("[year]-[month]-[day]");
                    time::Date::parse(s.trim(), format).map_err(|_| {
                        CoerceError::TypeMismatch(format!(
                            "expected date as YYYY-MM-DD, found {}",
                            kind_of(&input)
                        ))
                    })?
                }
                other => return Err(mismatch(typ, &other)),
            };
            let days = i64::from(date.to_julian_day()) - i64::from(UNIX_EPOCH_JULIAN_DAY);
            let shifted = days + (1i64 << 31);
            u32::try_from(shifted)
                .map(|d| CqlValue::Date(CqlDate(d)))
                .map_err(|_| out_of_range(typ, date))
        }
        NativeType::Time => {
            let nanos = match input {
                Input::Int(n) => n,
                Input::Text(s) => parse_time_of_day(s.trim()).ok_or_else(|| {
                    CoerceError::TypeMismatch(format!(
                        "expected time as HH:MM:SS[.fffffffff], found {}",
                        kind_of(&input)
                    ))
                })?,
                other => return Err(mismatch(typ, &other)),
            };
            if !(0..86_400_000_000_000).contains(&nanos) {
                return Err(out_of_range(typ, nanos));
            }
            Ok(CqlValue::Time(CqlTime(nanos)))
        }
        NativeType::Duration => match input {
            Input::Text(s) => parse_duration(s.trim())
                .map(CqlValue::Duration)
                .map_err(|why| CoerceError::TypeMismatch(format!("expected duration: {why}"))),
            other => Err(mismatch(typ, &other)),
        },
        NativeType::Inet => match input {
            Input::Text(s) => IpAddr::from_str(s.trim())
                .map(CqlValue::Inet)
                .map_err(|_| mismatch(typ, &input)),
            other => Err(mismatch(typ, &other)),
        },
        NativeType::Blob => match input {
            Input::Bytes(b) => Ok(CqlValue::Blob(b.to_vec())),
            Input::Text(s) => decode_blob(s.trim()).map(CqlValue::Blob).ok_or_else(|| {
                CoerceError::TypeMismatch(format!(
                    "expected blob as base64 or 0x-hex, found {}",
                    kind_of(&input)
                ))
            }),
            other => Err(mismatch(typ, &other)),
        },
        _ => Err(CoerceError::TypeMismatch(format!(
            "columns of type {} cannot be written by an INSERT",
            type_name(typ)
        ))),
    }
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

pub fn epoch_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn epoch_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

fn as_text(input: Input<'_>, typ: &ColumnType<'_>) -> Result<String, CoerceError> {
    Ok(match input {
        Input::Text(s) => s.to_owned(),
        Input::Int(i) => i.to_string(),
        Input::Float(f) => f.to_string(),
        Input::Bool(b) => b.to_string(),
        Input::Uuid(u) => u.to_string(),
        Input::Timestamp(t) => t.format(&Rfc3339).map_err(|_| mismatch(typ, &input))?,
        // Objects, arrays and big numbers are stored as their JSON text.
        Input::Json(j) => j.to_string(),
        Input::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| {
            CoerceError::TypeMismatch(format!(
                "expected {}, found non-UTF-8 bytes",
                type_name(typ)
            ))
        })?,
        Input::Null => return Err(mismatch(typ, &input)),
    })
}

fn as_uuid(input: Input<'_>, typ: &ColumnType<'_>) -> Result<Uuid, CoerceError> {
    match input {
        Input::Uuid(u) => Ok(u),
        Input::Text(s) => Uuid::parse_str(s.trim()).map_err(|_| mismatch(typ, &input)),
        other => Err(mismatch(typ, &other)),
    }
}

/// A point in time from an ISO-8601 string with a zone, or from epoch milliseconds.
pub fn as_timestamp(input: Input<'_>, typ: &ColumnType<'_>) -> Result<OffsetDateTime, CoerceError> {
    match input {
        Input::Timestamp(t) => Ok(t),
        Input::Int(ms) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|_| out_of_range(typ, ms)),
        Input::Text(s) => {
            let t = s.trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                if let Ok(ms) = t.parse::<i64>() {
                    return as_timestamp(Input::Int(ms), typ);
                }
            }
            parse_iso_timestamp(t).ok_or_else(|| {
                CoerceError::TypeMismatch(format!(
                    "expected {} as ISO-8601 with a zone (2024-05-01T12:00:00Z) or epoch \
                     milliseconds, found {}",
                    type_name(typ),
                    kind_of(&input)
                ))
            })
        }
        other => Err(mismatch(typ, &other)),
    }
}

fn parse_iso_timestamp(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // `2024-05-01 12:00:00Z` and a `+0000` style offset are common ISO-8601 spellings that
    // RFC 3339 does not accept; rewrite them rather than guessing further.
    let mut fixed = text.replacen(' ', "T", 1);
    let bytes = fixed.as_bytes();
    if bytes.len() > 5 {
        let tail = &fixed[fixed.len() - 5..];
        let sign = tail.as_bytes()[0];
        if (sign == b'+' || sign == b'-') && tail[1..].bytes().all(|b| b.is_ascii_digit()) {
            let (head, offset) = fixed.split_at(fixed.len() - 2);
            fixed = format!("{head}:{offset}");
        }
    }
    OffsetDateTime::parse(&fixed, &Rfc3339).ok()
}

/// `HH:MM:SS[.fraction]` → nanoseconds since midnight.
fn parse_time_of_day(text: &str) -> Option<i64> {
    let (hms, fraction) = match text.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (text, None),
    };
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    if parts.next().is_some() || h > 23 || m > 59 || s > 59 || h < 0 || m < 0 || s < 0 {
        return None;
    }
    let mut nanos = 0i64;
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32);
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000_000 + nanos)
}

/// CQL duration literals: `1h30m`, `-2d`, `3mo`, `1y2mo`, `500ms`, `10us`, and ISO 8601
/// `P1Y2M3DT4H5M6S` / `P2W`.
pub fn parse_duration(text: &str) -> Result<CqlDuration, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut nanos: i128 = 0;
    if let Some(iso) = body.strip_prefix('P') {
        let (date_part, time_part) = match iso.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (iso, None),
        };
        for (n, unit) in units(date_part)? {
            match unit {
                "Y" => months += n * 12,
                "M" => months += n,
                "W" => days += n * 7,
                "D" => days += n,
                _ => return Err(format!("unknown ISO-8601 date unit {unit:?} in {text:?}")),
            }
        }
        for (n, unit) in units(time_part.unwrap_or(""))? {
            nanos += i128::from(n)
                * match unit {
                    "H" => 3_600_000_000_000,
                    "M" => 60_000_000_000,
                    "S" => 1_000_000_000,
                    _ => return Err(format!("unknown ISO-8601 time unit {unit:?} in {text:?}")),
                };
        }
        if date_part.is_empty() && time_part.is_none_or(str::is_empty) {
            return Err(format!("{text:?} has no components"));
        }
    } else {
        let parsed = units(body)?;
        if parsed.is_empty() {
            return Err(format!("{text:?} is empty; write e.g. 1h30m or P1DT2H"));
        }
        for (n, unit) in parsed {
            match unit.to_ascii_lowercase().as_str() {
                "y" => months += n * 12,
                "mo" => months += n,
                "w" => days += n * 7,
                "d" => days += n,
                "h" => nanos += i128::from(n) * 3_600_000_000_000,
                "m" => nanos += i128::from(n) * 60_000_000_000,
                "s" => nanos += i128::from(n) * 1_000_000_000,
                "ms" => nanos += i128::from(n) * 1_000_000,
                "us" | "µs" => nanos += i128::from(n) * 1_000,
                "ns" => nanos += i128::from(n),
                other => return Err(format!("unknown unit {other:?} in {text:?}")),
            }
        }
    }
    let sign = if negative { -1 } else { 1 };
    Ok(CqlDuration {
        months: i32::try_from(months * sign).map_err(|_| format!("{text:?} is too long"))?,
        days: i32::try_from(days * sign).map_err(|_| format!("{text:?} is too long"))?,
        nanoseconds: i64::try_from(nanos * i128::from(sign))
            .map_err(|_| format!("{text:?} is too long"))?,
    })
}

/// Splits `1h30m` into `[(1, "h"), (30, "m")]`.
fn units(text: &str) -> Result<Vec<(i64, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large at {rest:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("missing unit after {n}"));
        }
        out.push((n, &rest[..unit_len]));
        rest = &rest[unit_len..];
    }
    Ok(out)
}

/// `-12.345e2` → unscaled integer and scale.
fn parse_decimal(text: &str) -> Option<CqlValue> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let unsigned = int_part.trim_start_matches(['-', '+']);
    if (unsigned.is_empty() && frac_part.is_empty())
        || !unsigned.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || int_part.len() > unsigned.len() + 1
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let unscaled = BigInt::from_str(&digits).ok()?;
    let scale = i32::try_from(frac_part.len()).ok()?.checked_sub(exponent)?;
    Some(CqlValue::Decimal(
        CqlDecimal::from_signed_be_bytes_and_exponent(unscaled.to_signed_bytes_be(), scale),
    ))
}

fn decode_blob(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.len() % 2 != 0 {
            return None;
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;
    use std::sync::Arc;

    fn native(n: NativeType) -> ColumnType<'static> {
        ColumnType::Native(n)
    }

    fn c(v: Json, t: &ColumnType<'_>) -> Result<Option<CqlValue>, CoerceError> {
        coerce(Input::Json(&v), t)
    }

    fn ok(v: Json, t: &ColumnType<'_>) -> CqlValue {
        match c(v.clone(), t) {
            Ok(Some(value)) => value,
            other => panic!("{v} into {}: {other:?}", type_name(t)),
        }
    }

    fn mismatch_of(v: Json, t: &ColumnType<'_>) -> String {
        match c(v.clone(), t) {
            Err(CoerceError::TypeMismatch(m)) => m,
            other => panic!("{v} into {} should mismatch: {other:?}", type_name(t)),
        }
    }

    fn range_of(v: Json, t: &ColumnType<'_>) -> String {
        match c(v.clone(), t) {
            Err(CoerceError::OutOfRange(m)) => m,
            other => panic!(
                "{v} into {} should be out of range: {other:?}",
                type_name(t)
            ),
        }
    }

    #[test]
    fn text_and_ascii() {
        let text = native(NativeType::Text);
        assert_eq!(ok(json!("hé"), &text), CqlValue::Text("hé".into()));
        assert_eq!(ok(json!(12), &text), CqlValue::Text("12".into()));
        assert_eq!(
            ok(json!({"a": 1}), &text),
            CqlValue::Text(r#"{"a":1}"#.into())
        );
        let ascii = native(NativeType::Ascii);
        assert_eq!(ok(json!("abc"), &ascii), CqlValue::Ascii("abc".into()));
        assert!(mismatch_of(json!("hé"), &ascii).contains("non-ASCII"));
    }

    #[test]
    fn integers_and_their_ranges() {
        assert_eq!(
            ok(json!(127), &native(NativeType::TinyInt)),
            CqlValue::TinyInt(127)
        );
        range_of(json!(128), &native(NativeType::TinyInt));
        range_of(json!(-129), &native(NativeType::TinyInt));
        assert_eq!(
            ok(json!(-32768), &native(NativeType::SmallInt)),
            CqlValue::SmallInt(-32768)
        );
        range_of(json!(32768), &native(NativeType::SmallInt));
        assert_eq!(ok(json!("42"), &native(NativeType::Int)), CqlValue::Int(42));
        assert_eq!(ok(json!(7.0), &native(NativeType::Int)), CqlValue::Int(7));
        range_of(json!(2_147_483_648i64), &native(NativeType::Int));
        assert!(mismatch_of(json!(1.5), &native(NativeType::Int)).contains("fractional"));
        mismatch_of(json!("x"), &native(NativeType::Int));
        mismatch_of(json!(true), &native(NativeType::Int));
        assert_eq!(
            ok(json!(i64::MAX), &native(NativeType::BigInt)),
            CqlValue::BigInt(i64::MAX)
        );
        range_of(json!(u64::MAX), &native(NativeType::BigInt));
        range_of(json!("9223372036854775808"), &native(NativeType::BigInt));
    }

    #[test]
    fn varint_keeps_big_values() {
        let varint = native(NativeType::Varint);
        assert_eq!(
            ok(json!("123456789012345678901234567890"), &varint),
            CqlValue::Varint(CqlVarint::from_signed_bytes_be(
                BigInt::from_str("123456789012345678901234567890")
                    .expect("literal")
                    .to_signed_bytes_be()
            ))
        );
        assert_eq!(
            ok(json!(-1), &varint),
            CqlValue::Varint(CqlVarint::from_signed_bytes_be(vec![0xff]))
        );
        assert_eq!(
            ok(json!(u64::MAX), &varint),
            CqlValue::Varint(CqlVarint::from_signed_bytes_be(
                BigInt::from(u64::MAX).to_signed_bytes_be()
            ))
        );
        mismatch_of(json!("12a"), &varint);
    }

    #[test]
    fn floats_doubles_decimals() {
        assert_eq!(
            ok(json!(1.5), &native(NativeType::Float)),
            CqlValue::Float(1.5)
        );
        range_of(json!(1e300), &native(NativeType::Float));
        assert_eq!(
            ok(json!(3), &native(NativeType::Double)),
            CqlValue::Double(3.0)
        );
        assert_eq!(
            ok(json!("2.25"), &native(NativeType::Double)),
            CqlValue::Double(2.25)
        );
        mismatch_of(json!("two"), &native(NativeType::Double));
        let decimal = native(NativeType::Decimal);
        assert_eq!(
            ok(json!("-12.345"), &decimal),
            CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(
                BigInt::from(-12345).to_signed_bytes_be(),
                3
            ))
        );
        assert_eq!(
            ok(json!(0.1), &decimal),
            CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(vec![1], 1))
        );
        assert_eq!(
            ok(json!("1.5e3"), &decimal),
            CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(vec![15], -2))
        );
        for bad in ["", ".", "1.2.3", "--1", "1e", "abc"] {
            mismatch_of(json!(bad), &decimal);
        }
    }

    #[test]
    fn booleans() {
        let b = native(NativeType::Boolean);
        assert_eq!(ok(json!(true), &b), CqlValue::Boolean(true));
        assert_eq!(ok(json!("FALSE"), &b), CqlValue::Boolean(false));
        assert_eq!(ok(json!(1), &b), CqlValue::Boolean(true));
        mismatch_of(json!(2), &b);
        mismatch_of(json!("yes"), &b);
    }

    #[test]
    fn uuids_and_timeuuids() {
        let u = "6f1c1b8e-8d4e-4a4b-9c3e-2f1a0b9c8d7e";
        assert_eq!(
            ok(json!(u), &native(NativeType::Uuid)),
            CqlValue::Uuid(Uuid::parse_str(u).expect("literal"))
        );
        mismatch_of(json!("not-a-uuid"), &native(NativeType::Uuid));
        mismatch_of(json!("6f1c1b8e-8d4e-4a4b-9c3e"), &native(NativeType::Uuid));
        let v1 = "e8f3a7a0-0c1d-11ef-9262-0242ac120002";
        assert!(matches!(
            ok(json!(v1), &native(NativeType::Timeuuid)),
            CqlValue::Timeuuid(_)
        ));
        assert!(mismatch_of(json!(u), &native(NativeType::Timeuuid)).contains("version 4"));
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let ts = native(NativeType::Timestamp);
        let expect = CqlValue::Timestamp(CqlTimestamp(1_714_564_800_123));
        assert_eq!(ok(json!("2024-05-01T12:00:00.123Z"), &ts), expect);
        assert_eq!(ok(json!("2024-05-01T14:00:00.123+02:00"), &ts), expect);
        assert_eq!(ok(json!("2024-05-01 12:00:00.123Z"), &ts), expect);
        assert_eq!(ok(json!("2024-05-01T12:00:00.123+0000"), &ts), expect);
        assert_eq!(ok(json!(1_714_564_800_123i64), &ts), expect);
        assert_eq!(ok(json!("1714564800123"), &ts), expect);
        assert_eq!(
            ok(json!(-1000), &ts),
            CqlValue::Timestamp(CqlTimestamp(-1000))
        );
        assert!(mismatch_of(json!("2024-05-01T12:00:00"), &ts).contains("with a zone"));
        mismatch_of(json!("yesterday"), &ts);
        mismatch_of(json!(1.5), &ts);
        let now = OffsetDateTime::from_unix_timestamp(1_714_564_800).expect("valid");
        assert_eq!(
            coerce(Input::Timestamp(now), &ts),
            Ok(Some(CqlValue::Timestamp(CqlTimestamp(1_714_564_800_000))))
        );
    }

    #[test]
    fn dates_and_times() {
        let date = native(NativeType::Date);
        assert_eq!(
            ok(json!("1970-01-01"), &date),
            CqlValue::Date(CqlDate(1 << 31))
        );
        assert_eq!(
            ok(json!("1970-01-02"), &date),
            CqlValue::Date(CqlDate((1 << 31) + 1))
        );
        assert_eq!(
            ok(json!("1969-12-31"), &date),
            CqlValue::Date(CqlDate((1 << 31) - 1))
        );
        mismatch_of(json!("2024-13-01"), &date);
        mismatch_of(json!("01/02/2024"), &date);
        let t = native(NativeType::Time);
        assert_eq!(
            ok(json!("00:00:01"), &t),
            CqlValue::Time(CqlTime(1_000_000_000))
        );
        assert_eq!(
            ok(json!("12:34:56.789"), &t),
            CqlValue::Time(CqlTime(45_296_789_000_000))
        );
        assert_eq!(ok(json!(5), &t), CqlValue::Time(CqlTime(5)));
        range_of(json!(86_400_000_000_000i64), &t);
        mismatch_of(json!("24:00:00"), &t);
        mismatch_of(json!("12:00:00.1234567890"), &t);
    }

    #[test]
    fn durations_cql_and_iso() {
        let d = native(NativeType::Duration);
        assert_eq!(
            ok(json!("1h30m"), &d),
            CqlValue::Duration(CqlDuration {
                months: 0,
                days: 0,
                nanoseconds: 5_400_000_000_000
            })
        );
        assert_eq!(
            ok(json!("1y2mo3d"), &d),
            CqlValue::Duration(CqlDuration {
                months: 14,
                days: 3,
                nanoseconds: 0
            })
        );
        assert_eq!(
            ok(json!("-2w"), &d),
            CqlValue::Duration(CqlDuration {
                months: 0,
                days: -14,
                nanoseconds: 0
            })
        );
        assert_eq!(
            ok(json!("P1Y2M3DT4H5M6S"), &d),
            CqlValue::Duration(CqlDuration {
                months: 14,
                days: 3,
                nanoseconds: 14_706_000_000_000
            })
        );
        for bad in ["", "P", "5", "1x", "h1"] {
            mismatch_of(json!(bad), &d);
        }
    }

    #[test]
    fn inet_and_blob() {
        assert_eq!(
            ok(json!("10.0.0.1"), &native(NativeType::Inet)),
            CqlValue::Inet("10.0.0.1".parse().expect("literal"))
        );
        assert!(matches!(
            ok(json!("::1"), &native(NativeType::Inet)),
            CqlValue::Inet(_)
        ));
        mismatch_of(json!("10.0.0.256"), &native(NativeType::Inet));
        let blob = native(NativeType::Blob);
        assert_eq!(
            ok(json!("aGVsbG8="), &blob),
            CqlValue::Blob(b"hello".to_vec())
        );
        assert_eq!(ok(json!("0xcafe"), &blob), CqlValue::Blob(vec![0xca, 0xfe]));
        mismatch_of(json!("0xcaf"), &blob);
        mismatch_of(json!("!!"), &blob);
        assert_eq!(
            coerce(Input::Bytes(&[1, 2]), &blob),
            Ok(Some(CqlValue::Blob(vec![1, 2])))
        );
    }

    #[test]
    fn null_is_none_for_every_type() {
        for t in [NativeType::Int, NativeType::Text, NativeType::Uuid] {
            assert_eq!(c(Json::Null, &native(t)), Ok(None));
        }
        assert_eq!(coerce(Input::Null, &native(NativeType::Int)), Ok(None));
    }

    fn list_of(t: ColumnType<'static>) -> ColumnType<'static> {
        ColumnType::Collection {
            frozen: false,
            typ: CollectionType::List(Box::new(t)),
        }
    }

    #[test]
    fn collections() {
        assert_eq!(
            ok(json!([1, 2]), &list_of(native(NativeType::Int))),
            CqlValue::List(vec![CqlValue::Int(1), CqlValue::Int(2)])
        );
        let set = ColumnType::Collection {
            frozen: false,
            typ: CollectionType::Set(Box::new(native(NativeType::Text))),
        };
        assert_eq!(
            ok(json!(["a"]), &set),
            CqlValue::Set(vec![CqlValue::Text("a".into())])
        );
        let map = ColumnType::Collection {
            frozen: false,
            typ: CollectionType::Map(
                Box::new(native(NativeType::Int)),
                Box::new(native(NativeType::Double)),
            ),
        };
        assert_eq!(
            ok(json!({"1": 2.5}), &map),
            CqlValue::Map(vec![(CqlValue::Int(1), CqlValue::Double(2.5))])
        );
        assert!(mismatch_of(json!({"x": 2.5}), &map).contains("key \"x\""));
        assert!(mismatch_of(json!([1, null]), &list_of(native(NativeType::Int))).contains("[1]"));
        assert!(mismatch_of(json!([1, "a"]), &list_of(native(NativeType::Int))).contains("[1]"));
        mismatch_of(json!({"a": 1}), &list_of(native(NativeType::Int)));
        // A JSON string holding an array (e.g. an application property) is parsed.
        assert_eq!(
            coerce(Input::Text("[3]"), &list_of(native(NativeType::Int))),
            Ok(Some(CqlValue::List(vec![CqlValue::Int(3)])))
        );
        let nested = list_of(ColumnType::Collection {
            frozen: true,
            typ: CollectionType::List(Box::new(native(NativeType::Int))),
        });
        assert_eq!(
            ok(json!([[1], []]), &nested),
            CqlValue::List(vec![
                CqlValue::List(vec![CqlValue::Int(1)]),
                CqlValue::List(vec![])
            ])
        );
    }

    #[test]
    fn tuples_and_vectors() {
        let tuple = ColumnType::Tuple(vec![native(NativeType::Int), native(NativeType::Text)]);
        assert_eq!(
            ok(json!([1, null]), &tuple),
            CqlValue::Tuple(vec![Some(CqlValue::Int(1)), None])
        );
        assert!(mismatch_of(json!([1]), &tuple).contains("expected 2 elements"));
        let vector = ColumnType::Vector {
            typ: Box::new(native(NativeType::Float)),
            dimensions: 2,
        };
        assert_eq!(
            ok(json!([1, 2]), &vector),
            CqlValue::Vector(vec![CqlValue::Float(1.0), CqlValue::Float(2.0)])
        );
        mismatch_of(json!([1, 2, 3]), &vector);
    }

    fn udt(
        name: &'static str,
        fields: Vec<(&'static str, ColumnType<'static>)>,
    ) -> ColumnType<'static> {
        ColumnType::UserDefinedType {
            frozen: true,
            definition: Arc::new(scylla::cluster::metadata::UserDefinedType {
                name: Cow::Borrowed(name),
                keyspace: Cow::Borrowed("ks"),
                field_types: fields
                    .into_iter()
                    .map(|(n, t)| (Cow::Borrowed(n), t))
                    .collect(),
            }),
        }
    }

    #[test]
    fn nested_udts() {
        let point = udt(
            "point",
            vec![
                ("x", native(NativeType::Int)),
                ("y", native(NativeType::Int)),
            ],
        );
        let shape = udt(
            "shape",
            vec![
                ("name", native(NativeType::Text)),
                ("points", list_of(point.clone())),
            ],
        );
        let value = ok(
            json!({"name": "tri", "points": [{"x": 1, "y": 2}, {"x": 3}], "extra": true}),
            &shape,
        );
        let expected_point = |x: i32, y: Option<i32>| CqlValue::UserDefinedType {
            keyspace: "ks".into(),
            name: "point".into(),
            fields: vec![
                ("x".into(), Some(CqlValue::Int(x))),
                ("y".into(), y.map(CqlValue::Int)),
            ],
        };
        assert_eq!(
            value,
            CqlValue::UserDefinedType {
                keyspace: "ks".into(),
                name: "shape".into(),
                fields: vec![
                    ("name".into(), Some(CqlValue::Text("tri".into()))),
                    (
                        "points".into(),
                        Some(CqlValue::List(vec![
                            expected_point(1, Some(2)),
                            expected_point(3, None)
                        ]))
                    ),
                ],
            }
        );
        let err = mismatch_of(json!({"points": [{"x": "a"}]}), &shape);
        assert!(err.contains("points: [0]: x: expected int"), "{err}");
        mismatch_of(json!([1]), &point);
    }

    #[test]
    fn excerpts_are_at_most_64_chars() {
        let long = "x".repeat(500);
        let shown = excerpt(&Input::Text(&long));
        assert_eq!(shown.chars().count(), 64);
        assert!(shown.ends_with('…'));
        assert_eq!(excerpt(&Input::Int(5)), "5");
        assert_eq!(truncate_chars("ééé", 2), "é…");
    }

    #[test]
    fn counters_are_refused() {
        mismatch_of(json!(1), &native(NativeType::Counter));
    }
}
