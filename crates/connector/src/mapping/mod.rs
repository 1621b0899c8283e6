//! From a received message to the values of one row.
//!
//! A [`RowMapper`] is built once per route at startup, after the schema check has matched each
//! mapped column to its CQL type (see `schema.rs`). Per message it parses the body at most once,
//! pulls each column's value from its source expression and coerces it to the column's type.
//! A value that cannot be coerced makes that one message poison; the error carries the
//! [`DeadLetterReason`] and a description naming the route, the column and a value excerpt.

pub mod coerce;
pub mod expr;

use std::fmt;
use std::sync::{Arc, OnceLock};

use scylla::cluster::metadata::{ColumnType, NativeType};
use scylla::value::{CqlTimeuuid, CqlValue, MaybeUnset};
use serde_json::Value as Json;
use time::OffsetDateTime;

use crate::config::NullHandling;
use crate::source::{DeadLetter, PropertyValue, ReceivedMessage};
use coerce::{coerce, CoerceError, Input};
use expr::{resolve, BrokerProperty, SourceExpr};

/// Why a message was dead-lettered; the text is the `DeadLetterReason` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The body is not valid JSON although a mapping reads from it.
    InvalidJson,
    /// A primary-key column's source (or the writetime/ttl source) is absent or null.
    MissingField,
    /// A value cannot be read as the column's CQL type.
    TypeMismatch,
    /// A value has the right kind but does not fit the column's type.
    ValueOutOfRange,
    /// Cassandra refused the row itself (e.g. a value too large); retrying cannot help.
    WriteRejected,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 5] = [
        DeadLetterReason::InvalidJson,
        DeadLetterReason::MissingField,
        DeadLetterReason::TypeMismatch,
        DeadLetterReason::ValueOutOfRange,
        DeadLetterReason::WriteRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::InvalidJson => "InvalidJson",
            DeadLetterReason::MissingField => "MissingField",
            DeadLetterReason::TypeMismatch => "TypeMismatch",
            DeadLetterReason::ValueOutOfRange => "ValueOutOfRange",
            DeadLetterReason::WriteRejected => "WriteRejected",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route}, column {column}: {detail} (value: {excerpt})")]
pub struct MappingError {
    pub reason: DeadLetterReason,
    pub route: Arc<str>,
    pub column: String,
    pub detail: String,
    /// At most 64 characters of the offending value.
    pub excerpt: String,
}

impl MappingError {
    pub fn dead_letter(&self) -> DeadLetter {
        DeadLetter {
            reason: self.reason.as_str().to_owned(),
            description: self.to_string(),
        }
    }
}

/// One bound value: unset (the cell is left alone), null, or a value.
pub type BoundValue = MaybeUnset<Option<CqlValue>>;

/// Where the write timestamp comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WritetimeSource {
    /// The broker's enqueued time: stable across redeliveries, so a replay rewrites the same
    /// cells with the same timestamp and a late older message never wins.
    EnqueuedTime,
    /// An event time from the message (must yield a timestamp).
    Expr(SourceExpr),
}

/// Where the TTL comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TtlSource {
    /// `0` means the cells never expire.
    Fixed(u32),
    /// Whole seconds from the message; absent or null means no TTL.
    Expr(SourceExpr),
}

/// Cassandra's largest TTL (20 years).
pub const MAX_TTL_SECONDS: i64 = 630_720_000;

/// One mapped column with its resolved CQL type.
#[derive(Debug, Clone)]
pub struct ColumnBinding {
    pub name: String,
    pub expr: SourceExpr,
    pub typ: ColumnType<'static>,
    /// Part of the primary key: it must have a value.
    pub primary_key: bool,
    /// Part of the partition key: rows are grouped into batches by these.
    pub partition_key: bool,
    /// A `const:` source, coerced once at startup.
    constant: Option<Option<CqlValue>>,
}

impl ColumnBinding {
    /// Binds a column; a constant that cannot take the column's type is refused here.
    pub fn new(
        name: String,
        expr: SourceExpr,
        typ: ColumnType<'static>,
        primary_key: bool,
        partition_key: bool,
    ) -> Result<Self, CoerceError> {
        let constant = match &expr {
            SourceExpr::Const(value) => {
                let coerced = coerce(Input::Json(value), &typ)?;
                if coerced.is_none() && primary_key {
                    return Err(CoerceError::TypeMismatch(
                        "a primary-key column cannot be the constant null".into(),
                    ));
                }
                Some(coerced)
            }
            _ => None,
        };
        Ok(Self {
            name,
            expr,
            typ,
            primary_key,
            partition_key,
            constant,
        })
    }
}

/// A message turned into one row's bound values.
#[derive(Debug, Clone)]
pub struct MappedRow {
    /// One value per mapped column (in [`RowMapper::columns`] order), then the write timestamp
    /// (µs) and the TTL (s) — the order of the prepared INSERT's markers.
    pub values: Vec<BoundValue>,
    /// The partition-key values, encoded so equal partitions compare equal.
    pub partition: Vec<u8>,
    /// A rough size of the row on the wire, for the batch byte cap.
    pub approx_bytes: usize,
}

/// Turns messages of one route into rows.
#[derive(Debug)]
pub struct RowMapper {
    route: Arc<str>,
    columns: Vec<ColumnBinding>,
    writetime: WritetimeSource,
    ttl: TtlSource,
    nulls: NullHandling,
    /// Some source reads the parsed JSON body (so a body that is not JSON is poison).
    needs_json: bool,
}

impl RowMapper {
    pub fn new(
        route: Arc<str>,
        columns: Vec<ColumnBinding>,
        writetime: WritetimeSource,
        ttl: TtlSource,
        nulls: NullHandling,
    ) -> Self {
        let reads_json = |expr: &SourceExpr, typ: Option<&ColumnType<'_>>| match expr {
            SourceExpr::Body(path) if path.is_empty() => !matches!(
                typ,
                Some(ColumnType::Native(
                    NativeType::Text | NativeType::Ascii | NativeType::Blob
                ))
            ),
            SourceExpr::Body(_) => true,
            _ => false,
        };
        let needs_json = columns.iter().any(|c| reads_json(&c.expr, Some(&c.typ)))
            || matches!(&writetime, WritetimeSource::Expr(e) if reads_json(e, None))
            || matches!(&ttl, TtlSource::Expr(e) if reads_json(e, None));
        Self {
            route,
            columns,
            writetime,
            ttl,
            nulls,
            needs_json,
        }
    }

    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    pub fn columns(&self) -> &[ColumnBinding] {
        &self.columns
    }

    fn error(
        &self,
        reason: DeadLetterReason,
        column: &str,
        detail: String,
        excerpt: String,
    ) -> MappingError {
        MappingError {
            reason,
            route: self.route.clone(),
            column: column.to_owned(),
            detail,
            excerpt,
        }
    }

    /// Maps one message. `now` is the value of `now()` sources.
    pub fn map(
        &self,
        msg: &ReceivedMessage,
        now: OffsetDateTime,
    ) -> Result<MappedRow, MappingError> {
        let json = if self.needs_json {
            match serde_json::from_slice::<Json>(&msg.body) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    let text = String::from_utf8_lossy(&msg.body);
                    return Err(self.error(
                        DeadLetterReason::InvalidJson,
                        "(body)",
                        format!("the body is not valid JSON: {e}"),
                        coerce::truncate_chars(&text, 64),
                    ));
                }
            }
        } else {
            None
        };
        let mut values = Vec::with_capacity(self.columns.len() + 2);
        let mut partition = Vec::new();
        let mut approx_bytes = 0;
        for column in &self.columns {
            let value = match &column.constant {
                Some(constant) => constant.clone(),
                None => self.column_value(column, msg, json.as_ref(), now)?,
            };
            let bound = match value {
                Some(v) => {
                    approx_bytes += approx_size(&v);
                    if column.partition_key {
                        encode_partition_part(&v, &mut partition);
                    }
                    MaybeUnset::Set(Some(v))
                }
                None if column.primary_key => {
                    return Err(self.error(
                        DeadLetterReason::MissingField,
                        &column.name,
                        format!(
                            "primary-key column has no value: {} is absent or null",
                            column.expr
                        ),
                        "null".into(),
                    ));
                }
                None => match self.nulls {
                    NullHandling::Unset => MaybeUnset::Unset,
                    NullHandling::Null => MaybeUnset::Set(None),
                },
            };
            values.push(bound);
        }
        let writetime = self.writetime_micros(msg, json.as_ref(), now)?;
        let ttl = self.ttl_seconds(msg, json.as_ref(), now)?;
        values.push(MaybeUnset::Set(Some(CqlValue::BigInt(writetime))));
        values.push(MaybeUnset::Set(Some(CqlValue::Int(ttl))));
        Ok(MappedRow {
            values,
            partition,
            approx_bytes: approx_bytes + 12,
        })
    }

    fn column_value(
        &self,
        column: &ColumnBinding,
        msg: &ReceivedMessage,
        json: Option<&Json>,
        now: OffsetDateTime,
    ) -> Result<Option<CqlValue>, MappingError> {
        if column.expr == SourceExpr::Now && column.typ == ColumnType::Native(NativeType::Timeuuid)
        {
            return Ok(Some(CqlValue::Timeuuid(CqlTimeuuid::from_bytes(
                *uuid::Uuid::now_v1(node_id()).as_bytes(),
            ))));
        }
        let Some(input) = extract(&column.expr, msg, json, now) else {
            return Ok(None);
        };
        coerce(input, &column.typ).map_err(|e| {
            let reason = match e {
                CoerceError::TypeMismatch(_) => DeadLetterReason::TypeMismatch,
                CoerceError::OutOfRange(_) => DeadLetterReason::ValueOutOfRange,
            };
            self.error(
                reason,
                &column.name,
                format!("{}: {}", column.expr, e.message()),
                coerce::excerpt(&input),
            )
        })
    }

    fn writetime_micros(
        &self,
        msg: &ReceivedMessage,
        json: Option<&Json>,
        now: OffsetDateTime,
    ) -> Result<i64, MappingError> {
        let expr = match &self.writetime {
            WritetimeSource::EnqueuedTime => return Ok(coerce::epoch_micros(msg.enqueued_time)),
            WritetimeSource::Expr(expr) => expr,
        };
        let typ = ColumnType::Native(NativeType::Timestamp);
        let input = extract(expr, msg, json, now)
            .filter(|i| !matches!(i, Input::Null | Input::Json(Json::Null)))
            .ok_or_else(|| {
                self.error(
                    DeadLetterReason::MissingField,
                    "(writetime)",
                    format!("the write timestamp source {expr} is absent or null"),
                    "null".into(),
                )
            })?;
        let input = match input {
            Input::Json(j) => match j {
                Json::String(s) => Input::Text(s),
                Json::Number(n) if n.is_i64() => Input::Int(n.as_i64().unwrap_or_default()),
                _ => input,
            },
            other => other,
        };
        coerce::as_timestamp(input, &typ)
            .map(coerce::epoch_micros)
            .map_err(|e| {
                self.error(
                    DeadLetterReason::TypeMismatch,
                    "(writetime)",
                    format!("{expr}: {}", e.message()),
                    coerce::excerpt(&input),
                )
            })
    }

    fn ttl_seconds(
        &self,
        msg: &ReceivedMessage,
        json: Option<&Json>,
        now: OffsetDateTime,
    ) -> Result<i32, MappingError> {
        let expr = match &self.ttl {
            TtlSource::Fixed(s) => return Ok(i32::try_from(*s).unwrap_or(i32::MAX)),
            TtlSource::Expr(expr) => expr,
        };
        let typ = ColumnType::Native(NativeType::BigInt);
        let Some(input) = extract(expr, msg, json, now) else {
            return Ok(0);
        };
        let seconds = match coerce(input, &typ) {
            Ok(Some(CqlValue::BigInt(s))) => s,
            Ok(_) => return Ok(0),
            Err(e) => {
                return Err(self.error(
                    DeadLetterReason::TypeMismatch,
                    "(ttl)",
                    format!("{expr}: {}", e.message()),
                    coerce::excerpt(&input),
                ))
            }
        };
        if !(0..=MAX_TTL_SECONDS).contains(&seconds) {
            return Err(self.error(
                DeadLetterReason::ValueOutOfRange,
                "(ttl)",
                format!("{expr}: a TTL must be between 0 and {MAX_TTL_SECONDS} seconds"),
                seconds.to_string(),
            ));
        }
        Ok(seconds as i32)
    }
}

/// The value a source expression points at; `None` when absent.
fn extract<'a>(
    expr: &'a SourceExpr,
    msg: &'a ReceivedMessage,
    json: Option<&'a Json>,
    now: OffsetDateTime,
) -> Option<Input<'a>> {
    match expr {
        SourceExpr::Body(path) if path.is_empty() && json.is_none() => {
            // The whole body into a text or blob column: the raw bytes, no JSON parse.
            Some(Input::Bytes(&msg.body))
        }
        SourceExpr::Body(path) => json.and_then(|doc| resolve(doc, path)).map(Input::Json),
        SourceExpr::Property(name) => msg.application_properties.get(name).map(property_input),
        SourceExpr::Broker(p) => broker_input(*p, msg),
        // Constants are coerced once in `ColumnBinding::new`; here only for writetime/ttl.
        SourceExpr::Const(v) => Some(Input::Json(v)),
        SourceExpr::Now => Some(Input::Timestamp(now)),
    }
}

fn property_input(value: &PropertyValue) -> Input<'_> {
    match value {
        PropertyValue::Null => Input::Null,
        PropertyValue::Bool(b) => Input::Bool(*b),
        PropertyValue::Long(i) => Input::Int(*i),
        PropertyValue::Double(f) => Input::Float(*f),
        PropertyValue::String(s) => Input::Text(s),
        PropertyValue::Timestamp(t) => Input::Timestamp(*t),
        PropertyValue::Uuid(u) => Input::Uuid(*u),
        PropertyValue::Binary(b) => Input::Bytes(b),
    }
}

fn broker_input(p: BrokerProperty, msg: &ReceivedMessage) -> Option<Input<'_>> {
    fn text(s: &Option<String>) -> Option<Input<'_>> {
        s.as_deref().map(Input::Text)
    }
    match p {
        BrokerProperty::MessageId => text(&msg.message_id),
        BrokerProperty::SequenceNumber => Some(Input::Int(msg.sequence_number)),
        BrokerProperty::EnqueuedTime => Some(Input::Timestamp(msg.enqueued_time)),
        BrokerProperty::SessionId => text(&msg.session_id),
        BrokerProperty::CorrelationId => text(&msg.correlation_id),
        BrokerProperty::Subject => text(&msg.subject),
        BrokerProperty::ContentType => text(&msg.content_type),
        BrokerProperty::PartitionKey => text(&msg.partition_key),
        BrokerProperty::DeliveryCount => Some(Input::Int(i64::from(msg.delivery_count))),
    }
}

/// A random node id for `now()` timeuuids, fixed for the process.
fn node_id() -> &'static [u8; 6] {
    static NODE: OnceLock<[u8; 6]> = OnceLock::new();
    NODE.get_or_init(|| {
        let random = uuid::Uuid::new_v4();
        let mut node = [0u8; 6];
        node.copy_from_slice(&random.as_bytes()[..6]);
        // Multicast bit set: the id is not a real MAC address (RFC 9562, 6.10).
        node[0] |= 0x01;
        node
    })
}

/// Roughly what a value costs in a batch, for the byte cap (exactness is not needed: the cap
/// sits well under Cassandra's warn threshold).
pub fn approx_size(value: &CqlValue) -> usize {
    4 + match value {
        CqlValue::Ascii(s) | CqlValue::Text(s) => s.len(),
        CqlValue::Blob(b) => b.len(),
        CqlValue::Boolean(_) | CqlValue::TinyInt(_) => 1,
        CqlValue::SmallInt(_) => 2,
        CqlValue::Int(_) | CqlValue::Float(_) | CqlValue::Date(_) => 4,
        CqlValue::BigInt(_)
        | CqlValue::Double(_)
        | CqlValue::Timestamp(_)
        | CqlValue::Time(_)
        | CqlValue::Counter(_) => 8,
        CqlValue::Uuid(_) | CqlValue::Timeuuid(_) | CqlValue::Inet(_) => 16,
        CqlValue::Duration(_) => 16,
        CqlValue::Decimal(_) | CqlValue::Varint(_) => 16,
        CqlValue::List(items) | CqlValue::Set(items) | CqlValue::Vector(items) => {
            items.iter().map(approx_size).sum::<usize>()
        }
        CqlValue::Map(entries) => entries
            .iter()
            .map(|(k, v)| approx_size(k) + approx_size(v))
            .sum(),
        CqlValue::Tuple(items) => items.iter().flatten().map(approx_size).sum(),
        CqlValue::UserDefinedType { fields, .. } => fields
            .iter()
            .filter_map(|(_, v)| v.as_ref())
            .map(approx_size)
            .sum(),
        _ => 16,
    }
}

/// Appends a self-delimiting encoding of a partition-key value (equal values, equal bytes).
fn encode_partition_part(value: &CqlValue, out: &mut Vec<u8>) {
    let mut put = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => put(1, s.as_bytes()),
        CqlValue::Blob(b) => put(2, b),
        CqlValue::Int(i) => put(3, &i.to_be_bytes()),
        CqlValue::BigInt(i) => put(4, &i.to_be_bytes()),
        CqlValue::Uuid(u) => put(5, u.as_bytes()),
        CqlValue::Timeuuid(u) => put(6, u.as_bytes()),
        CqlValue::Timestamp(t) => put(7, &t.0.to_be_bytes()),
        CqlValue::Date(d) => put(8, &d.0.to_be_bytes()),
        CqlValue::SmallInt(i) => put(9, &i.to_be_bytes()),
        CqlValue::TinyInt(i) => put(10, &i.to_be_bytes()),
        CqlValue::Boolean(b) => put(11, &[u8::from(*b)]),
        // Rare partition-key types: their debug form is deterministic and exact enough.
        other => put(255, format!("{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests;
