//! Session operations on `$management`: `renew-session-lock`, `get-session-state`,
//! `set-session-state`, `get-message-sessions`.
//!
//! The requests name only the session id: they act on the session's current lock, and answer
//! `com.microsoft:session-lock-lost` when nobody holds it (expired or released).

use busdrain_broker::{BrokerError, SessionLock, Timestamp};
use serde_amqp::primitives::{Array, OrderedMap, Timestamp as AmqpTimestamp};
use serde_amqp::Value;

use super::args::{as_i64, as_text, optional, required, ArgumentError};
use super::{ManagementContext, OperationError};
use crate::request::{Request, Response};

/// Largest page of `get-message-sessions`, whatever `top` asks for.
const MAX_SESSIONS_PAGE: usize = 1000;
/// .NET `DateTime.MaxValue` in Unix milliseconds: as `last-updated-time` (the SDKs' default)
/// it asks for every session with messages rather than those updated since a time.
const DEFAULT_LISTING_MILLIS: i64 = 253_402_300_800_000;

/// The `session-id` argument, required.
pub(crate) fn session_id(request: &Request) -> Result<String, ArgumentError> {
    as_text(required(request, "session-id")?, "session-id")
}

/// The current lock of the request's `session-id` when the request names one: operations on
/// a session's messages (peek excepted) need the session held.
pub(crate) fn held_session(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Option<SessionLock>, OperationError> {
    let Some(value) = optional(request, "session-id") else {
        return Ok(None);
    };
    let id = as_text(value, "session-id")?;
    match ctx.entity.session_holder(&id) {
        Some(lock) => Ok(Some(lock)),
        None => Err(session_lock_lost(ctx, id).into()),
    }
}

fn session_lock_lost(ctx: &ManagementContext<'_>, session_id: String) -> BrokerError {
    BrokerError::SessionLockLost {
        entity: ctx.entity.path().to_string(),
        session_id,
    }
}

fn timestamp(value: Timestamp) -> Value {
    Value::Timestamp(AmqpTimestamp::from_milliseconds(value.as_unix_millis()))
}

pub(crate) async fn renew_session_lock(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let id = session_id(request)?;
    let Some(lock) = ctx.entity.session_holder(&id) else {
        return Err(session_lock_lost(ctx, id).into());
    };
    let expiration = ctx.entity.renew_session_lock(&id, lock.token)?;
    let mut body = OrderedMap::new();
    body.insert(Value::String("expiration".into()), timestamp(expiration));
    Ok(Response::ok(Some(Value::Map(body))))
}

pub(crate) async fn get_session_state(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let id = session_id(request)?;
    let state = ctx.entity.session_state(&id)?;
    let mut body = OrderedMap::new();
    body.insert(
        Value::String("session-state".into()),
        match state {
            Some(blob) => Value::Binary(serde_bytes::ByteBuf::from(blob.to_vec())),
            None => Value::Null,
        },
    );
    Ok(Response::ok(Some(Value::Map(body))))
}

pub(crate) async fn set_session_state(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let id = session_id(request)?;
    let blob = match optional(request, "session-state") {
        None => None,
        Some(Value::Binary(bytes)) => Some(bytes::Bytes::from(bytes.to_vec())),
        // Some clients hand the state over as text; keep its UTF-8 bytes.
        Some(Value::String(text)) => Some(bytes::Bytes::from(text.clone().into_bytes())),
        Some(_) => {
            return Err(ArgumentError::WrongType("session-state", "binary or null").into());
        }
    };
    ctx.entity.set_session_state(&id, blob).await?;
    Ok(Response::ok(Some(Value::Map(OrderedMap::new()))))
}

pub(crate) async fn get_message_sessions(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let skip = match optional(request, "skip") {
        Some(value) => as_i64(value, "skip")?.max(0),
        None => 0,
    };
    let top = match optional(request, "top") {
        Some(value) => as_i64(value, "top")?.max(0),
        None => MAX_SESSIONS_PAGE as i64,
    };
    let since_millis = match optional(request, "last-updated-time") {
        None => None,
        Some(Value::Timestamp(t)) => Some(t.milliseconds()),
        Some(value) => Some(as_i64(value, "last-updated-time")?),
    };
    let since = since_millis
        .filter(|millis| *millis < DEFAULT_LISTING_MILLIS - 1000)
        .map(Timestamp::from_unix_millis);
    let skip_count = usize::try_from(skip).unwrap_or(usize::MAX);
    let top_count = usize::try_from(top)
        .unwrap_or(MAX_SESSIONS_PAGE)
        .min(MAX_SESSIONS_PAGE);
    let ids: Vec<Value> = ctx
        .entity
        .message_sessions(since)?
        .into_iter()
        .skip(skip_count)
        .take(top_count)
        .map(Value::String)
        .collect();
    if ids.is_empty() {
        // As for peek: no sessions is `204 No Content`.
        return Ok(Response {
            status_code: 204,
            description: "No Content".into(),
            error_condition: None,
            body: None,
        });
    }
    let mut body = OrderedMap::new();
    // `skip` is where the next page starts.
    let next_skip = skip.saturating_add(ids.len() as i64);
    body.insert(
        Value::String("skip".into()),
        Value::Int(i32::try_from(next_skip).unwrap_or(i32::MAX)),
    );
    body.insert(
        Value::String("sessions-ids".into()),
        Value::Array(Array(ids)),
    );
    Ok(Response::ok(Some(Value::Map(body))))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod session_tests;
