//! `com.microsoft:renew-lock`: extends message locks; answers the new expirations.

use serde_amqp::primitives::{Array, OrderedMap, Timestamp};
use serde_amqp::Value;

use super::args::{required, uuids};
use super::{ManagementContext, OperationError};
use crate::request::{Request, Response};

pub(crate) async fn renew_lock(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let tokens = uuids(required(request, "lock-tokens")?, "lock-tokens")?;
    let expirations = ctx.entity.renew_lock(&tokens)?;
    let mut body = OrderedMap::new();
    body.insert(
        Value::String("expirations".into()),
        Value::Array(Array(
            expirations
                .into_iter()
                .map(|t| Value::Timestamp(Timestamp::from_milliseconds(t.as_unix_millis())))
                .collect(),
        )),
    );
    Ok(Response::ok(Some(Value::Map(body))))
}
