//! `com.microsoft:schedule-message` and `com.microsoft:cancel-scheduled-message`.
//!
//! A scheduled message is an ordinary send whose `x-opt-scheduled-enqueue-time` lies in the
//! future; the broker keeps it in state Scheduled until then.

use serde_amqp::primitives::{Array, OrderedMap};
use serde_amqp::Value;

use super::args::{items, longs, required, ArgumentError};
use super::{ManagementContext, OperationError};
use crate::bridge::new_message;
use crate::message::decode_message;
use crate::request::{Request, Response};

pub(crate) async fn schedule_message(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let mut messages = Vec::new();
    for entry in items(required(request, "messages")?, "messages")? {
        let Value::Map(map) = entry else {
            return Err(ArgumentError::WrongType("messages", "a list of maps").into());
        };
        let encoded = map
            .iter()
            .find(|(k, _)| crate::message::key_text(k) == Some("message"))
            .map(|(_, v)| v);
        let Some(Value::Binary(bytes)) = encoded else {
            return Err(ArgumentError::Missing("message").into());
        };
        messages.push(new_message(decode_message(bytes)?));
    }
    let sequence_numbers = ctx.entity.send(messages).await?;
    let mut body = OrderedMap::new();
    body.insert(
        Value::String("sequence-numbers".into()),
        Value::Array(Array(
            sequence_numbers.into_iter().map(Value::Long).collect(),
        )),
    );
    Ok(Response::ok(Some(Value::Map(body))))
}

pub(crate) async fn cancel_scheduled(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let sequence_numbers = longs(required(request, "sequence-numbers")?, "sequence-numbers")?;
    ctx.entity.cancel_scheduled(&sequence_numbers).await?;
    Ok(Response::ok(Some(Value::Map(OrderedMap::new()))))
}
