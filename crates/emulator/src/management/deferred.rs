//! Settling by lock token and receiving deferred messages:
//! `com.microsoft:receive-by-sequence-number` and `com.microsoft:update-disposition`.

use busdrain_broker::{PropertyMap, ReceiveMode};
use serde_amqp::primitives::{OrderedMap, Uuid as AmqpUuid};
use serde_amqp::Value;

use super::args::{as_i64, as_text, longs, optional, required, uuids, ArgumentError};
use super::{ManagementContext, OperationError};
use crate::bridge::stamp;
use crate::message::encode_delivery;
use crate::property::property_map_from_amqp;
use crate::request::{Request, Response};

pub(crate) async fn receive_by_sequence_number(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let sequence_numbers = longs(required(request, "sequence-numbers")?, "sequence-numbers")?;
    // receiver-settle-mode 0 (first) = receive-and-delete, 1 (second) = peek-lock, as the
    // SDKs map their receive modes.
    let mode = match optional(request, "receiver-settle-mode") {
        Some(value) if as_i64(value, "receiver-settle-mode")? == 0 => ReceiveMode::ReceiveAndDelete,
        _ => ReceiveMode::PeekLock,
    };
    // A session receiver's deferred messages: the session must still be held.
    super::sessions::held_session(request, ctx)?;
    let deliveries = ctx.entity.receive_deferred(&sequence_numbers, mode).await?;
    let mut list = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        let encoded = encode_delivery(
            &delivery.message.content.payload,
            &stamp(&delivery.message, delivery.lock.as_ref()),
        )?;
        let mut entry = OrderedMap::new();
        if let Some(lock) = &delivery.lock {
            entry.insert(
                Value::String("lock-token".into()),
                Value::Uuid(AmqpUuid::from(*lock.token.as_bytes())),
            );
        }
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

/// `disposition-status` values (`defered` is misspelled on the wire by every SDK).
enum DispositionStatus {
    Completed,
    Abandoned,
    DeadLettered,
    Deferred,
    Renewed,
}

pub(crate) async fn update_disposition(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let status = match as_text(
        required(request, "disposition-status")?,
        "disposition-status",
    )?
    .to_ascii_lowercase()
    .as_str()
    {
        "completed" => DispositionStatus::Completed,
        "abandoned" => DispositionStatus::Abandoned,
        "suspended" => DispositionStatus::DeadLettered,
        "defered" | "deferred" => DispositionStatus::Deferred,
        "renewed" => DispositionStatus::Renewed,
        _ => {
            return Err(ArgumentError::WrongType(
                "disposition-status",
                "completed, abandoned, suspended, defered or renewed",
            )
            .into())
        }
    };
    super::sessions::held_session(request, ctx)?;
    let tokens = uuids(required(request, "lock-tokens")?, "lock-tokens")?;
    let properties: PropertyMap = match optional(request, "properties-to-modify") {
        Some(Value::Map(map)) => property_map_from_amqp(map.iter()),
        Some(_) => return Err(ArgumentError::WrongType("properties-to-modify", "a map").into()),
        None => PropertyMap::new(),
    };
    let reason = optional(request, "deadletter-reason")
        .map(|v| as_text(v, "deadletter-reason"))
        .transpose()?;
    let description = optional(request, "deadletter-description")
        .map(|v| as_text(v, "deadletter-description"))
        .transpose()?;
    for token in tokens {
        match status {
            DispositionStatus::Completed => ctx.entity.complete(token).await?,
            DispositionStatus::Abandoned => ctx.entity.abandon(token, properties.clone()).await?,
            DispositionStatus::Deferred => ctx.entity.defer(token, properties.clone()).await?,
            DispositionStatus::DeadLettered => {
                ctx.entity
                    .dead_letter(
                        token,
                        reason.clone(),
                        description.clone(),
                        properties.clone(),
                    )
                    .await?
            }
            DispositionStatus::Renewed => {
                ctx.entity.renew_lock(&[token])?;
            }
        }
    }
    Ok(Response::ok(Some(Value::Map(OrderedMap::new()))))
}
