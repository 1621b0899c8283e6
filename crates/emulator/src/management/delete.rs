//! `com.microsoft:batch-delete-messages`: removes up to `message-count` messages enqueued
//! before `enqueued-time-utc` (optionally only one session's), oldest first, and answers how
//! many went. Locked messages are left alone (the broker's rule).

use busdrain_broker::Timestamp;
use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;

use super::args::{as_i64, as_text, optional, required, ArgumentError};
use super::{ManagementContext, OperationError};
use crate::bridge::ARGUMENT_ERROR;
use crate::request::{Request, Response};

/// The most messages one request may delete (Service Bus's limit for `DeleteMessages`).
const MAX_MESSAGE_COUNT: i64 = 4000;

pub(crate) async fn batch_delete_messages(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let count = as_i64(required(request, "message-count")?, "message-count")?;
    if !(1..=MAX_MESSAGE_COUNT).contains(&count) {
        return Ok(Response::error(
            400,
            ARGUMENT_ERROR,
            format!("`message-count` is {count}; it must be between 1 and {MAX_MESSAGE_COUNT}"),
        ));
    }
    let enqueued_before = match required(request, "enqueued-time-utc")? {
        Value::Timestamp(t) => Timestamp::from_unix_millis(t.milliseconds()),
        _ => {
            return Err(ArgumentError::WrongType("enqueued-time-utc", "a timestamp").into());
        }
    };
    let session_id = match optional(request, "session-id") {
        Some(value) => Some(as_text(value, "session-id")?),
        None => None,
    };
    let max = usize::try_from(count).unwrap_or(0);
    let deleted = ctx
        .entity
        .delete_messages(max, enqueued_before, session_id.as_deref())
        .await?;
    tracing::info!(entity = ctx.resource, deleted, "batch-delete-messages");
    let mut body = OrderedMap::new();
    body.insert(
        Value::String("message-count".into()),
        Value::Int(i32::try_from(deleted).unwrap_or(i32::MAX)),
    );
    Ok(Response::ok(Some(Value::Map(body))))
}
