//! `com.microsoft:peek-message`: reads messages from a sequence number on, without locking.
//! An empty result is `204 No Content` (the SDKs treat it as "no messages"). With `session-id`
//! only that session's messages are read.

use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;

use super::args::{as_i64, as_text, optional, required};
use super::{ManagementContext, OperationError};
use crate::bridge::stamp;
use crate::message::encode_delivery;
use crate::request::{Request, Response};

/// Upper bound of one peek, whatever the client asks for.
const MAX_PEEK: usize = 1000;

pub(crate) async fn peek_message(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let from = as_i64(
        required(request, "from-sequence-number")?,
        "from-sequence-number",
    )?;
    let count = match optional(request, "message-count") {
        Some(value) => as_i64(value, "message-count")?,
        None => 1,
    };
    let count = usize::try_from(count.max(0)).unwrap_or(0).min(MAX_PEEK);
    // Peeking a session needs no lock on it.
    let messages = match optional(request, "session-id") {
        Some(value) => {
            let session_id = as_text(value, "session-id")?;
            ctx.entity.peek_session(&session_id, from, count).await?
        }
        None => ctx.entity.peek(from, count).await?,
    };
    if messages.is_empty() {
        return Ok(Response {
            status_code: 204,
            description: "No Content".into(),
            error_condition: None,
            body: None,
        });
    }
    let mut list = Vec::with_capacity(messages.len());
    for message in &messages {
        let encoded = encode_delivery(&message.content.payload, &stamp(message, None))?;
        let mut entry = OrderedMap::new();
        entry.insert(
            Value::String("message".into()),
            Value::Binary(serde_bytes::ByteBuf::from(encoded)),
        );
        list.push(Value::Map(entry));
    }
    let mut body = OrderedMap::new();
    body.insert(Value::String("messages".into()), Value::List(list));
    Ok(Response::ok(Some(Value::Map(body))))
}
